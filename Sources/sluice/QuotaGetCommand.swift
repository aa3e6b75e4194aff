import ArgumentParser
import Sluice

/// `sluice quota get SCOPE...`
struct QuotaGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Show the limits set for one scope or scope pattern (exits 1 when none).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: KeyNamespaceOptions
    @Argument(help: "The scope pattern, root first: KIND=NAME or KIND=*.") var scopes: [String] = []
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        do { _ = try ScopePattern(parsing: scopes) } catch { throw ValidationError(error.message) }
    }

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let pattern = try ScopePattern(parsing: scopes)
        guard let field = try await QuotaStore(client: client, namespace: keys.namespace).get(pattern) else {
            print(json ? "null" : "no quota set for \(pattern)")
            throw ExitCode(1)
        }
        print(json ? try QuotaListCommand.json(field) : QuotaListCommand.text(field))
    }
}
