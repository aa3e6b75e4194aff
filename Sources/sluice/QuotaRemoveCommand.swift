import ArgumentParser
import Sluice

/// `sluice quota rm SCOPE... [--resource R]`
struct QuotaRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove a scope pattern's quotas, or only one resource's (exits 1 when none).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: KeyNamespaceOptions
    @Argument(help: "The scope pattern, root first: KIND=NAME or KIND=*.") var scopes: [String] = []
    @Option(help: "Remove only this resource's limits.") var resource: String?

    func validate() throws {
        do { _ = try ScopePattern(parsing: scopes) } catch { throw ValidationError(error.message) }
    }

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let pattern = try ScopePattern(parsing: scopes)
        let removed = try await QuotaStore(client: client, namespace: keys.namespace).remove(
            pattern, resource: resource)
        print(removed ? "removed" : "nothing to remove")
        if !removed { throw ExitCode(1) }
    }
}
