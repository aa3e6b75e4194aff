import ArgumentParser
import Sluice

/// `sluice quota set SCOPE... --resource R (--rate | --window | --budget) ...`
struct QuotaSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set one limit of one resource for a scope or scope pattern (other limits stay).",
        discussion: """
              sluice quota set global=openai --resource tokens --rate 90000/min --burst 90000
              sluice quota set global=openai tenant=* --resource requests --window 600/min
              sluice quota set global=openai tenant=acme --resource tokens --rate 20000/min --ceiling 60000/min
              sluice quota set global=openai tenant=* tree=* --resource tokens --budget 200000 --shadow
              sluice quota set global=openai --resource tokens --rate 90000/min --burst 90000 --shards 8
            Units: s, min, h, d (and N/10s style multiples); budget periods: s, min, h, d, w, mo.
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: KeyNamespaceOptions
    @Argument(help: "The scope pattern, root first: KIND=NAME or KIND=*.") var scopes: [String] = []
    @Option(help: "The resource the limit applies to (requests, tokens, ...).") var resource: String
    @Option(help: "Token bucket: refill rate N/UNIT.") var rate: String?
    @Option(help: "Token bucket: the most it holds (default: the rate's N).") var burst: Int64?
    @Option(help: "Token bucket: how deep scheduled admissions may run into debt (default: the burst).") var debt:
        Int64?
    @Option(help: "Sliding window: at most N per UNIT.") var window: String?
    @Flag(help: "Sliding window: the exact log (limits up to 100).") var exact = false
    @Flag(help: "Sliding window: the two-window approximation even for small limits.") var approx = false
    @Option(help: "Budget: a total that does not refill.") var budget: Int64?
    @Option(help: "Budget: reset every s, min, h, d, w or mo (UTC calendar).") var period: String?
    @Option(help: "Budget without a period: how long an idle total is kept (default 7d).") var ttl: String?
    @Option(help: "HTB: borrow above the rate up to this rate, N/UNIT, while the parent keeps its headroom.")
    var ceiling: String?
    @Option(help: "Percent of this bucket's burst reserved for admissions within their guarantee.") var headroom: Int64?
    @Flag(help: "Shadow mode: count would-deny decisions, never deny.") var shadow = false
    @Option(
        help: """
            A root scope only: split its token buckets across N shards on different hash slots (tenants map \
            to one shard each; shares move to the demand, never summing past the limit). Setting the root \
            again keeps its shard count.
            """)
    var shards: Int?

    func limit() throws -> QuotaLimit {
        let kinds = [rate != nil, window != nil, budget != nil].filter { $0 }.count
        guard kinds == 1 else { throw ValidationError("give exactly one of --rate, --window or --budget") }
        var limit: QuotaLimit
        if let rate {
            limit = QuotaLimit(kind: .bucket, rate: try Rate(parsing: rate), burst: burst, debt: debt)
            limit.ceiling = try ceiling.map { try Rate(parsing: $0) }
            limit.headroom = headroom
        } else if let window {
            limit = QuotaLimit(
                kind: .window, rate: try Rate(parsing: window), exact: exact ? true : approx ? false : nil)
        } else {
            limit = QuotaLimit(kind: .budget, total: budget, period: period, ttl: ttl)
        }
        guard rate != nil || (burst == nil && debt == nil && ceiling == nil && headroom == nil) else {
            throw ValidationError("--burst, --debt, --ceiling and --headroom are for --rate (a token bucket)")
        }
        guard window != nil || (!exact && !approx) else {
            throw ValidationError("--exact and --approx are for --window")
        }
        guard budget != nil || (period == nil && ttl == nil) else {
            throw ValidationError("--period and --ttl are for --budget")
        }
        limit.shadow = shadow
        // The text the script will read must parse: check it here, with the script's rules.
        _ = try QuotaSpec(parsing: "\(resource): \(limit)")
        return limit
    }

    func validate() throws {
        do {
            let pattern = try ScopePattern(parsing: scopes)
            _ = try limit()
            if let shards {
                guard pattern.levels.count == 1 else { throw ValidationError("--shards is for a root scope alone") }
                guard (2...1024).contains(shards) else { throw ValidationError("--shards is 2 to 1024") }
                guard rate != nil, ceiling == nil else {
                    throw ValidationError("--shards splits token buckets (--rate) without a --ceiling")
                }
            }
        } catch let error as QuotaError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let pattern = try ScopePattern(parsing: scopes)
        let store = QuotaStore(client: client, namespace: keys.namespace)
        let spec = try await store.set(pattern, resource: resource, limit: try limit())
        if let shards { try await store.setShards(pattern, count: shards) }
        print("\(pattern.field)  \(spec)" + (shards.map { "  (\($0) shards)" } ?? ""))
    }
}
