import ArgumentParser
import Sluice

/// What `check` and `bench decide` share: the path, the cost, and defaults for scope kinds (the
/// config hash in Redis overrides them, as it does a worker's).
struct QuotaDecisionOptions: ParsableArguments {
    @Argument(help: "The path, root first: KIND=NAME ... (e.g. global=openai tenant=acme tree=req-1).")
    var scopes: [String] = []

    @Option(name: .customLong("cost"), help: "A cost, RESOURCE=N (repeat for several resources).")
    var costs: [String] = []

    @Option(
        name: .customLong("default"),
        help: ArgumentHelp(
            "Default limits for a scope kind, KIND=SPEC (e.g. 'tenant=tokens: bucket rate=600/min').",
            valueName: "kind=spec"))
    var defaults: [String] = []

    @Flag(help: "Decide as a batch admission: leave every bucket's headroom alone.")
    var batch = false

    func path() throws -> ScopePath { try ScopePath(parsing: scopes) }
    func cost() throws -> Cost { try Cost(parsing: costs) }

    func limiterConfiguration() throws -> Limiter.Configuration {
        var kinds: [String: String] = [:]
        for item in defaults {
            guard let equals = item.firstIndex(of: "=") else {
                throw ValidationError("--default is KIND=SPEC, e.g. 'tenant=tokens: bucket rate=600/min'")
            }
            kinds[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        return Limiter.Configuration(defaults: kinds)
    }

    var priority: Priority { batch ? .batch : .interactive }

    func validate() throws {
        guard !scopes.isEmpty else { throw ValidationError("name the path: KIND=NAME ...") }
        guard !costs.isEmpty else { throw ValidationError("give at least one --cost RESOURCE=N") }
        do {
            _ = try path()
            _ = try cost()
            try limiterConfiguration().validate()
        } catch let error as QuotaError {
            throw ValidationError(error.message)
        }
    }
}

/// `--namespace NS`: the first part of Sluice's keys (`NS:{P}:...`), as the workers' limiter configuration names it
/// (`Limiter.Configuration.namespace`); `sluice` unless they name another.
struct KeyNamespaceOptions: ParsableArguments {
    @Option(help: "The first part of the keys, as the workers' limiter configuration names it.")
    var namespace: String = "sluice"

    func validate() throws {
        guard !namespace.isEmpty, !namespace.contains(where: { "{}*?[]\\ ".contains($0) }) else {
            throw ValidationError("--namespace is a non-empty name without braces, spaces or glob characters")
        }
    }
}
