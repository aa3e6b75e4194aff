import ArgumentParser
import Sluice

/// `sluice reserve SCOPE... --cost R=N ... [--ttl 60s] [--id ID] [--json]`: charges an estimate ahead
/// of a call, to be settled (`sluice settle`) or cancelled (`sluice cancel`) by its id.
struct ReserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reserve",
        abstract: "Reserve an estimate on a path; settle or cancel it later by its id.",
        discussion: """
            Charges the estimate now on every limit of the path (all or nothing), as a worker does \
            before a call whose cost is known only afterwards. Unsettled, the reservation expires \
            after --ttl with the estimate charged. Reserving again under the same --id charges \
            nothing more. Exits 0 when allowed, 1 when denied.
              sluice reserve global=openai tenant=acme --cost tokens=4000 --cost requests=1 --ttl 2min --json
              sluice settle global=openai tenant=acme --id ID --actual tokens=1234
              sluice cancel global=openai tenant=acme --id ID
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var decision: QuotaDecisionOptions
    @Option(help: "How long the reservation holds unsettled: N followed by ms, s, min, h or d (at most 7d).")
    var ttl = "60s"
    @Option(help: "The reservation's id (default: a new random one).") var id: String?
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard ReservationOptions.duration(ttl) != nil else {
            throw ValidationError("--ttl is N followed by ms, s, min, h or d, from 1 ms to 7 d (e.g. 60s)")
        }
        if let id, id.isEmpty { throw ValidationError("--id is not empty") }
    }

    func run() async throws {
        let limiter = try Limiter(client: try connection.makeClient(), configuration: decision.limiterConfiguration())
        defer { limiter.client.close() }
        let reservation = try await limiter.reserve(
            try decision.path(), estimate: try decision.cost(), ttl: ReservationOptions.duration(ttl) ?? .seconds(60),
            id: id, priority: decision.priority, reportLimits: true)
        let result = reservation.decision
        if json {
            // The decision's fields as `sluice check --json` prints them, and the id.
            print(try JSONOutput.line(CheckCommand.DecisionJSON(result, id: reservation.id)))
        } else {
            print("reservation \(reservation.id)")
            print(CheckCommand.text(result))
        }
        if !result.allowed { throw ExitCode(1) }
    }
}

/// `sluice settle SCOPE... --id ID --actual R=N ...`: closes a reservation with what the call cost.
struct SettleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settle",
        abstract: "Settle a reservation with the actual costs: refunds the rest, or charges the overrun.",
        discussion: """
            Resources not named keep their estimate. Idempotent: a second settle changes nothing. \
            Exits 0 when settled (or already closed), 1 when the reservation is unknown (never made, \
            denied, or expired with its estimate charged).
              sluice settle global=openai tenant=acme --id ID --actual tokens=1234 --actual requests=1
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var reservation: ReservationOptions
    @Option(name: .customLong("actual"), help: "An actual cost, RESOURCE=N (repeat for several resources).")
    var actual: [String] = []

    func validate() throws {
        guard !actual.isEmpty else { throw ValidationError("give at least one --actual RESOURCE=N") }
        do {
            _ = try Cost(parsing: actual)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        try await reservation.close(connection) { try await $0.settle(actual: try Cost(parsing: actual)) }
    }
}

/// `sluice cancel SCOPE... --id ID`: closes a reservation, refunding its whole estimate.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a reservation: refunds its whole estimate.",
        discussion: """
            Idempotent, like settle. Exits 0 when cancelled (or already closed), 1 when the \
            reservation is unknown.
              sluice cancel global=openai tenant=acme --id ID
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var reservation: ReservationOptions

    func run() async throws {
        try await reservation.close(connection) { try await $0.cancel() }
    }
}

/// What `settle` and `cancel` share: the path the reservation was made on, and its id.
struct ReservationOptions: ParsableArguments {
    @Argument(help: "The path the reservation was made on, root first: KIND=NAME ...") var scopes: [String] = []
    @Option(help: "The reservation's id, as `sluice reserve` printed it.") var id: String
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard !scopes.isEmpty else { throw ValidationError("name the path: KIND=NAME ...") }
        guard !id.isEmpty else { throw ValidationError("--id is not empty") }
        do {
            _ = try ScopePath(parsing: scopes)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func close(_ connection: ConnectionOptions, _ body: (Reservation) async throws -> SettleOutcome) async throws {
        let limiter = try Limiter(client: try connection.makeClient())
        defer { limiter.client.close() }
        let outcome = try await body(try limiter.reservation(id: id, path: try ScopePath(parsing: scopes)))
        print(json ? try JSONOutput.line(OutcomeJSON(outcome: outcome.description, id: id)) : outcome.description)
        if outcome == .unknown { throw ExitCode(1) }
    }

    /// `{"outcome", "id"}`
    struct OutcomeJSON: Encodable {
        var outcome: String
        var id: String
    }

    /// `60s`, `1500ms`, `2min`, `1h`, `7d`: from 1 ms to 7 days.
    static func duration(_ text: String) -> Duration? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 12, let value = Int64(digits) else { return nil }
        let units: [String: Int64] = ["ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000]
        guard let unit = units[String(text.dropFirst(digits.count))] else { return nil }
        let milliseconds = value * unit
        guard milliseconds >= 1, milliseconds <= 7 * 86_400_000 else { return nil }
        return .milliseconds(milliseconds)
    }
}
