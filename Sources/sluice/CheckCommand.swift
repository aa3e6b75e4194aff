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
        print(json ? try Self.json(result) : Self.text(result))
        if !result.allowed { throw ExitCode(1) }
    }

    static func json(_ decision: Decision) throws -> String { try JSONOutput.line(DecisionJSON(decision)) }

    /// A decision as `--json` prints it (`sluice reserve --json` adds the reservation's `id`).
    struct DecisionJSON: Encodable {
        struct Limit: Encodable {
            var scope: String
            var scopeIndex: Int
            var resource: String
            var kind: String
            var remaining: Int64
            var limit: Int64
            var verdict: String

            init(_ status: LimitStatus) {
                scope = status.scope.description
                scopeIndex = status.scopeIndex
                resource = status.resource
                kind = status.kind.name
                remaining = status.remaining
                limit = status.limit
                verdict = status.verdict.description
            }

            enum CodingKeys: String, CodingKey {
                case scope, resource, kind, remaining, limit, verdict
                case scopeIndex = "scope_index"
            }
        }

        struct Warning: Encodable {
            var code: String
            var scopeIndex: Int
            var field: String
            var reason: String

            enum CodingKeys: String, CodingKey {
                case code, field, reason
                case scopeIndex = "scope_index"
            }
        }

        var allowed: Bool
        /// The reservation's id, for `sluice reserve`; `sluice check` has no such key.
        var id: String?
        var deniedBy: OrNull<Limit>
        /// 0 when allowed, null when retrying will not help.
        var retryAfterMs: OrNull<Int64>
        var waitMs: Int64
        var remaining: [Limit]
        var wouldDeny: [Limit]
        var warnings: [Warning]

        init(_ decision: Decision, id: String? = nil) {
            allowed = decision.allowed
            self.id = id
            deniedBy = OrNull(decision.deniedBy.map(Limit.init))
            retryAfterMs = OrNull(
                decision.allowed ? 0 : decision.retryable ? decision.retryAfter.wholeMilliseconds : nil)
            waitMs = decision.wait.wholeMilliseconds
            remaining = decision.limits.map(Limit.init)
            wouldDeny = decision.wouldDeny.map(Limit.init)
            warnings = decision.warnings.map {
                Warning(code: $0.code.description, scopeIndex: $0.scopeIndex, field: $0.field, reason: $0.reason)
            }
        }

        enum CodingKeys: String, CodingKey {
            case allowed, id, remaining, warnings
            case deniedBy = "denied_by"
            case retryAfterMs = "retry_after_ms"
            case waitMs = "wait_ms"
            case wouldDeny = "would_deny"
        }
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
