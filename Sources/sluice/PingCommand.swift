import ArgumentParser
import SluiceRedis

struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ping", abstract: "Check that Redis answers.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let start = ContinuousClock.now
        let reply = try await client.send("PING")
        let micros = (ContinuousClock.now - start) / .microseconds(1)
        print("\(reply.string ?? "?") from \(connection.resolvedURL) in \(Int(micros)) µs")
    }
}
