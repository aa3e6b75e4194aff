/// A scope's fleet-wide queue at one moment (``AdmissionQueue/status()``).
public struct QueueStatus: Sendable, Hashable {
    /// Callers waiting for admission.
    public var waiting: Int
    /// Admitted calls still running.
    public var inFlight: Int
    /// Callers that joined the queue in the current window.
    public var joined: Int
    /// Callers that left it (admitted or not) in the current window.
    public var left: Int
    /// Callers shed (overloaded) in the current window.
    public var shed: Int
}
