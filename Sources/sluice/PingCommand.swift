import ArgumentParser
import SluiceRedis

struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ping", abstract: "Check that Redis answers.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let configuration = try connection.configuration()
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let start = ContinuousClock.now
        let reply = try await client.send("PING")
        let micros = (ContinuousClock.now - start) / .microseconds(1)
        print("\(reply.string ?? "?") from \(configuration.redactedURL) in \(Int(micros)) µs")
    }
}
