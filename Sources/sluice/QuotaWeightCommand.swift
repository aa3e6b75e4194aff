import ArgumentParser
import Sluice

/// `sluice quota weight ROOT TENANT [WEIGHT] [--remove] [--json]`
struct QuotaWeightCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weight",
        abstract: "Set, show or remove a tenant's weight in the batch line (shows exit 1 when none is set).",
        discussion: """
            Batch callers waiting in line take turns by tenant (the quota path's second scope), in proportion to
            their weights: a tenant of weight 3 gets about three places for every one of a tenant of weight 1.
              sluice quota weight global=openai tenant=acme 3
            The weight applies to every process of the fleet at once, over the weights a process was configured
            with. A weight is a number from 0.001 to 1000; without one a tenant's weight is 1.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: KeyNamespaceOptions
    @Argument(help: "The root scope (global=NAME): the partition of the line.") var root: String
    @Argument(help: "The tenant, KIND=NAME: the second scope of its callers' quota paths.") var tenant: String
    @Argument(help: "The weight to set, 0.001 to 1000; without it the weight set now is shown.") var weight: Double?
    @Flag(help: "Remove the tenant's weight (it is 1 again, or what each process was configured with).")
    var remove = false
    @Flag(help: "Print one JSON object instead of text: {\"root\", \"tenant\", \"weight\"}.") var json = false

    func validate() throws {
        do {
            for scope in [try Scope(parsing: root), try Scope(parsing: tenant)] where scope.name == "*" {
                throw ValidationError("a weight is for one tenant of one root: \(scope) names no single one")
            }
        } catch let error as QuotaError {
            throw ValidationError(error.message)
        }
        if remove && weight != nil { throw ValidationError("give a weight or --remove, not both") }
        if let weight, !(weight.isFinite && (0.001...1000).contains(weight)) {
            throw ValidationError("a tenant's weight is a number from 0.001 to 1000")
        }
    }

    private struct Output: Encodable {
        var root: String
        var tenant: String
        var weight: OrNull<Double>
    }

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let store = QuotaStore(client: client, namespace: keys.namespace)
        let root = try Scope(parsing: root)
        let tenant = try Scope(parsing: tenant)
        if remove || weight != nil {
            try await store.setTenantWeight(weight, tenant: tenant, root: root)
        }
        let current = try await store.tenantWeight(tenant: tenant, root: root)
        if json {
            print(try JSONOutput.line(Output(root: "\(root)", tenant: "\(tenant)", weight: OrNull(current))))
        } else if let current {
            print("\(tenant) weighs \(current) in the batch line of \(root)")
        } else {
            print("\(tenant) has no weight set in \(root): 1, or what each process was configured with")
        }
        if current == nil && !remove { throw ExitCode(1) }
    }
}
