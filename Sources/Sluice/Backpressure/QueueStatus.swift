/// A scope's fleet-wide queue at one moment (``AdmissionQueue/status()``).
package struct QueueStatus: Sendable, Hashable {
    /// Callers waiting for admission.
    package var waiting: Int
    /// Admitted calls still running.
    package var inFlight: Int
    /// Callers that joined the queue in the current window.
    package var joined: Int
    /// Callers that left it (admitted or not) in the current window.
    package var left: Int
    /// Callers shed (overloaded) in the current window.
    package var shed: Int
}
