import ArgumentParser
import Sluice

/// `sluice scripts`: the Redis function library of this version of Sluice.
struct ScriptsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scripts", abstract: "Load or prune Sluice's Redis function library.",
        subcommands: [ScriptsLoadCommand.self, ScriptsPruneCommand.self])
}

struct ScriptsLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load this version's function library (calls load it when missing anyway).")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        try await SluiceFunctions.load(on: client)
        print("loaded \(SluiceFunctions.libraryName)")
    }
}

struct ScriptsPruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete the function libraries of other Sluice versions from the server.",
        discussion: "Workers of another version reload their library on their next call: prune once they are gone.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let removed = try await SluiceFunctions.pruneOthers(on: client)
        if json {
            print(try JSONOutput.line(PruneJSON(kept: SluiceFunctions.libraryName, removed: removed)))
        } else {
            print(
                "kept \(SluiceFunctions.libraryName); removed \(removed.isEmpty ? "none" : removed.joined(separator: ", "))"
            )
        }
    }

    /// `{"kept": LIBRARY, "removed": [LIBRARY, ...]}`
    struct PruneJSON: Encodable {
        var kept: String
        var removed: [String]
    }
}
