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
            let names = removed.map { JSONLine.render(.string($0)) }.joined(separator: ", ")
            print(JSONLine([("kept", .string(SluiceFunctions.libraryName)), ("removed", .raw("[\(names)]"))]).text)
        } else {
            print(
                "kept \(SluiceFunctions.libraryName); removed \(removed.isEmpty ? "none" : removed.joined(separator: ", "))"
            )
        }
    }
}
