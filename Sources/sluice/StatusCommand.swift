import ArgumentParser
import Sluice

/// `sluice status SCOPE`: what the reconciler knows about a partition's provider.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the reconciler's view of a partition: stated limits, ceilings, cuts and pauses.",
        discussion: """
            Name the partition's root scope (or a whole path: its root counts):
              sluice status global=openai
            The ceiling is the provider's stated limit x the safety factor x what the last cut left as it \
            climbs back; the configured buckets of the root cap it too.
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The root scope, KIND=NAME (e.g. global=openai), or a path starting with it.")
    var scopes: [String]
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        do {
            _ = try ScopePath(parsing: scopes)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let limiter = try Limiter(client: try connection.makeClient(poolSize: 1))
        defer { limiter.client.close() }
        let status = try await Reconciler(limiter: limiter).status(try ScopePath(parsing: scopes))
        print(json ? try Self.json(status) : Self.text(status))
    }

    static func json(_ status: ReconcilerStatus) throws -> String { try JSONOutput.line(StatusJSON(status)) }

    /// The reconciler's view of a partition as `--json` prints it; null where nothing is known.
    struct StatusJSON: Encodable {
        struct Resource: Encodable {
            var resource: String
            var statedLimit: OrNull<Int64>
            var windowMs: Int64
            var pendingLimit: OrNull<Int64>
            var safetyFactor: Figure
            var share: Figure
            var ceiling: Figure
            var lastRemaining: OrNull<Int64>
            var lastRemainingSentAtMs: OrNull<Int64>

            init(_ resource: ReconcilerStatus.Resource) {
                self.resource = resource.name
                statedLimit = OrNull(resource.statedLimit)
                windowMs = resource.window.wholeMilliseconds
                pendingLimit = OrNull(resource.pendingLimit)
                safetyFactor = Figure(resource.safetyFactor)
                share = Figure(resource.share)
                ceiling = Figure(resource.ceiling)
                lastRemaining = OrNull(resource.lastRemaining?.amount)
                lastRemainingSentAtMs = OrNull(resource.lastRemaining?.sentAt)
            }

            enum CodingKeys: String, CodingKey {
                case resource, share, ceiling
                case statedLimit = "stated_limit"
                case windowMs = "window_ms"
                case pendingLimit = "pending_limit"
                case safetyFactor = "safety_factor"
                case lastRemaining = "last_remaining"
                case lastRemainingSentAtMs = "last_remaining_sent_at_ms"
            }
        }

        var root: String
        var nowMs: Int64
        var pausedUntilMs: OrNull<Int64>
        var lastCutMs: OrNull<Int64>
        var cuts: Int64
        var resources: [Resource]

        init(_ status: ReconcilerStatus) {
            root = status.root.description
            nowMs = status.now
            pausedUntilMs = OrNull(status.pausedUntil)
            lastCutMs = OrNull(status.lastCut)
            cuts = status.cuts
            resources = status.resources.map(Resource.init)
        }

        enum CodingKeys: String, CodingKey {
            case root, cuts, resources
            case nowMs = "now_ms"
            case pausedUntilMs = "paused_until_ms"
            case lastCutMs = "last_cut_ms"
        }
    }

    static func text(_ status: ReconcilerStatus) -> String {
        func ago(_ ms: Int64) -> String { "\(formatSeconds(status.now - ms)) ago" }
        var lines = ["\(status.root)"]
        lines.append(
            "  paused     "
                + (status.pausedUntil.map { "yes, for \(formatSeconds($0 - status.now)) more" } ?? "no"))
        lines.append(
            "  last cut   "
                + (status.lastCut.map { "\(ago($0)) (\(status.cuts) cut\(status.cuts == 1 ? "" : "s"))" } ?? "never"))
        guard !status.resources.isEmpty else {
            lines.append("  no provider response recorded (or the state expired)")
            return lines.joined(separator: "\n")
        }
        var rows = [["resource", "stated", "window", "safety", "share", "ceiling", "pending", "last remaining"]]
        for resource in status.resources {
            rows.append([
                resource.name, resource.statedLimit.map(String.init) ?? "-",
                formatSeconds(resource.window.wholeMilliseconds), String(resource.safetyFactor),
                "\(Int((resource.share * 100).rounded()))%",
                resource.ceiling.map { String(Int($0.rounded(.down))) } ?? "-",
                resource.pendingLimit.map(String.init) ?? "-",
                resource.lastRemaining.map { "\($0.amount), sent \(ago($0.sentAt))" } ?? "-",
            ])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let cells = row.indices.map { row[$0] + String(repeating: " ", count: widths[$0] - row[$0].count) }
            lines.append("  " + cells.joined(separator: "  ").trimmingTrailingSpaces())
        }
        return lines.joined(separator: "\n")
    }

    /// `850ms`, `12.5s`
    static func formatSeconds(_ ms: Int64) -> String {
        ms < 1000 ? "\(max(0, ms))ms" : "\(Double(ms / 100) / 10)s"
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var out = self
        while out.hasSuffix(" ") { out.removeLast() }
        return out
    }
}
