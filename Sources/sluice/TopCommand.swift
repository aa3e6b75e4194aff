import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice top [PARTITION...]`: the fleet's state in Redis, live in the terminal.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live view of the fleet: queues, leases, breakers, ceilings, pauses, trees and events.",
        discussion: """
            Shows the named partitions, or every partition found in Redis, refreshed every second.
            Keys: ↑/↓ or j/k select a partition, Enter shows it in detail, Esc goes back, q quits.
              sluice top
              sluice top openai anthropic --redis redis://10.0.0.5:6379
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Partitions to show (default: every partition found).") var partitions: [String] = []
    @Option(help: "Seconds between refreshes.") var interval: Double = 1
    @Option(help: "The most SCAN calls (COUNT 1000) per refresh, on each primary.") var scanCalls = 100

    func validate() throws {
        guard interval >= 0.1, interval <= 3_600 else { throw ValidationError("--interval is 0.1...3600 seconds") }
        guard scanCalls >= 1 else { throw ValidationError("--scan-calls is at least 1") }
        guard partitions.allSatisfy({ !$0.isEmpty }) else { throw ValidationError("a partition is not empty") }
    }

    func run() async throws {
        let client = try connection.makeClient(poolSize: 1)
        defer { client.close() }
        let reader = FleetReader(redis: client, configuration: .init(scanCalls: scanCalls))
        let terminal = try Terminal()
        defer { terminal.restore() }

        enum Event: Sendable {
            case tick
            case key(Terminal.Key)
        }
        let (events, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let keys = terminal.keys()
        let typing = Task {
            for await key in keys { continuation.yield(.key(key)) }
            continuation.yield(.key(.quit))  // standard input closed
        }
        let period = Duration.milliseconds(Int(interval * 1_000))
        let ticking = Task {
            while !Task.isCancelled {
                continuation.yield(.tick)
                try? await Task.sleep(for: period)
            }
        }
        defer {
            typing.cancel()
            ticking.cancel()
        }

        var screen = TopScreen(source: Self.redacted(connection.resolvedURL))
        let only = partitions.isEmpty ? nil : partitions
        for await event in events {
            switch event {
            case .tick:
                do {
                    screen.update(try await reader.snapshots(only))
                } catch {
                    screen.error = "reading Redis failed: \(error)"
                }
            case .key(let key):
                guard screen.handle(key) else { return }
            }
            let size = terminal.size
            terminal.write(screen.frame(columns: size.columns, rows: size.rows))
        }
    }

    /// The URL without its password.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else {
            return url
        }
        return String(url[..<scheme.upperBound]) + "***@" + String(url[url.index(after: at)...])
    }
}
