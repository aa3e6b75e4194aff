import ArgumentParser
import Sluice

/// `sluice check SCOPE... --cost R=N ...`: one real decision (it charges when allowed), printed.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Make one decision for a path and print it (an allowed decision is charged).",
        discussion: """
            Limits come from the partition's config hash (sluice quota set) and --default. Exits 0 \
            when allowed, 1 when denied.
              sluice check global=openai tenant=acme tree=req-1 --cost requests=1 --cost tokens=1200 --json
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var decision: QuotaDecisionOptions
    @Option(help: "Schedule instead of deciding now: wait at most this many milliseconds.")
    var maxWait: Int64 = 0
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard maxWait >= 0, maxWait <= 86_400_000 else { throw ValidationError("--max-wait is 0 to 86400000 ms") }
    }

    func run() async throws {
        let limiter = try Limiter(client: try connection.makeClient(), configuration: decision.limiterConfiguration())
        defer { limiter.client.close() }
        let path = try decision.path()
        let result: Decision
        if maxWait > 0 {
            result = try await limiter.schedule(
                path, cost: try decision.cost(), maxWait: .milliseconds(maxWait), priority: decision.priority,
                reportLimits: true
            ).decision
        } else {
            result = try await limiter.decide(
                path, cost: try decision.cost(), priority: decision.priority, reportLimits: true)
        }
        print(json ? Self.json(result) : Self.text(result))
        if !result.allowed { throw ExitCode(1) }
    }

    static func json(_ decision: Decision) -> String { JSONLine(jsonFields(decision)).text }

    /// The fields of ``json(_:)``, for commands that print a decision among other fields.
    static func jsonFields(_ decision: Decision) -> [(String, JSONLine.Value)] {
        func limit(_ status: LimitStatus) -> String {
            JSONLine([
                ("scope", .string(status.scope.description)), ("scope_index", .int(status.scopeIndex)),
                ("resource", .string(status.resource)), ("kind", .string(status.kind.name)),
                ("remaining", .int(Int(status.remaining))), ("limit", .int(Int(status.limit))),
                ("verdict", .string(status.verdict.description)),
            ]).text
        }
        let warnings = decision.warnings.map {
            JSONLine([
                ("code", .string($0.code.description)), ("scope_index", .int($0.scopeIndex)),
                ("field", .string($0.field)),
                ("reason", .string($0.reason)),
            ]).text
        }
        return [
            ("allowed", .bool(decision.allowed)),
            ("denied_by", decision.deniedBy.map { .raw(limit($0)) } ?? .null),
            (
                "retry_after_ms",
                decision.allowed
                    ? .int(0) : decision.retryable ? .int(Int(decision.retryAfter.wholeMilliseconds)) : .null
            ),
            ("wait_ms", .int(Int(decision.wait.wholeMilliseconds))),
            ("remaining", .raw("[" + decision.limits.map(limit).joined(separator: ", ") + "]")),
            ("would_deny", .raw("[" + decision.wouldDeny.map(limit).joined(separator: ", ") + "]")),
            ("warnings", .raw("[" + warnings.joined(separator: ", ") + "]")),
        ]
    }

    static func text(_ decision: Decision) -> String {
        var lines: [String] = []
        if decision.allowed {
            lines.append(
                decision.wait > .zero ? "allowed: proceed in \(decision.wait.wholeMilliseconds) ms" : "allowed")
        } else if let denied = decision.deniedBy {
            let retry =
                decision.retryable
                ? "retry after \(decision.retryAfter.wholeMilliseconds) ms" : "retrying will not help"
            lines.append("denied by \(denied.scope) \(denied.resource) \(denied.kind): \(retry)")
        } else {
            lines.append("denied")
        }
        for status in decision.limits {
            lines.append(
                "  \(status.scope)  \(status.resource) \(status.kind): \(status.remaining) of \(status.limit) left"
                    + (status.verdict == .allows ? "" : "  (\(status.verdict))"))
        }
        for warning in decision.warnings { lines.append("  warning: \(warning)") }
        return lines.joined(separator: "\n")
    }
}

extension Duration {
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
