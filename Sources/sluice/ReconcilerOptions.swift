import ArgumentParser
import Sluice

/// The reconciler's settings on the command line (`observe --apply`); every worker of a fleet should use the same.
struct ReconcilerOptions: ParsableArguments {
    @Option(help: "The period of the provider's stated limits, in seconds.")
    var window: Double = 60

    @Option(help: "The share of the stated limit the fleet aims for, 0.01 to 1.")
    var safety: Double = 0.9

    @Option(name: .customLong("cut"), help: "What a 429 leaves of the ceiling, in (0, 1).")
    var cutFactor: Double = 0.7

    @Option(help: "Seconds for the ceiling to climb back from one cut.")
    var recovery: Double = 120

    func configuration() throws -> Reconciler.Configuration {
        guard window.isFinite, recovery.isFinite, window > 0, recovery > 0 else {
            throw ValidationError("--window and --recovery are positive seconds")
        }
        let configuration = Reconciler.Configuration(
            window: .milliseconds(Int64((window * 1000).rounded(.up))), safetyFactor: safety, cutFactor: cutFactor,
            recovery: .milliseconds(Int64((recovery * 1000).rounded(.up))))
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
        return configuration
    }
}
