import ArgumentParser
import SluiceRedis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice worker connection-churn`: keeps --callers callers busy on one shared connection for
/// --duration-ms (or until --stop-file exists, when given), each writing and reading values of --value-bytes (replies larger than the
/// socket buffers), while the test kills the connection from the server side. Reports how many
/// calls got their own reply, a wrong reply, or which typed error. A process killed by a signal
/// (SIGPIPE: status 141) writes nothing: the test sees its exit status.
struct WorkerConnectionChurnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connection-churn", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var callers = 300
    @Option(name: .customLong("duration-ms")) var durationMillis = 3000
    @Option var valueBytes = 20_000
    @Option(help: "Stop as soon as this file exists (checked between calls).") var stopFile: String?

    func run() async throws {
        var configuration = try options.configuration()
        configuration.commandTimeout = .seconds(10)
        configuration.reconnectBackoff = .init(initial: .milliseconds(5), maximum: .milliseconds(50))
        let client = try RedisClient(configuration: configuration)
        defer { client.close() }
        let counts = SharedCounts()
        let end = ContinuousClock.now + .milliseconds(durationMillis)
        let size = valueBytes
        let prefix = "{\(options.partition)}:churn:\(getpid()):"
        let stopFile = stopFile
        let running: @Sendable () -> Bool = {
            ContinuousClock.now < end && (stopFile.map { access($0, F_OK) != 0 } ?? true)
        }
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var round = 0
                    while running() {
                        round += 1
                        // Each caller's own value, so that a reply given to the wrong caller shows.
                        let tag = Array("\(caller)-\(round)-".utf8)
                        let value = tag + [UInt8](repeating: UInt8(ascii: "a") + UInt8(caller % 26), count: size)
                        let key = RedisArgument(prefix + String(caller))
                        do throws(RedisError) {
                            let replies = try await client.pipeline([
                                RedisCommand("SET", key, RedisArgument(bytes: value), "PX", 60000),
                                RedisCommand("GET", key),
                            ])
                            if replies.count == 2, replies[0] == .simpleString("OK"), replies[1].bytes == value {
                                counts.add("reply")
                            } else {
                                counts.add("wrong")
                            }
                        } catch {
                            counts.add(error.code.description)
                        }
                    }
                }
            }
        }
        try options.write(["outcomes": counts.snapshot.json])
    }
}
