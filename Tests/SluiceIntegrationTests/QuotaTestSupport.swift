import Foundation
import Sluice
import SluiceRedis

/// One test's own partition (a unique root scope name) on the shared test server, so tests never
/// see each other's keys; ``cleanUp()`` deletes its keys.
struct QuotaFixture {
    let client: RedisClient
    let root: String

    init(_ test: String = #function) throws {
        client = try TestRedis.client()
        root = "t-\(test.prefix { $0 != "(" })-\(UUID().uuidString.prefix(8))"
    }

    var quotasKey: String { "sluice:{\(root)}:quotas" }

    func limiter(_ defaults: [String: String] = [:]) throws -> Limiter {
        try Limiter(client: client, configuration: .init(defaults: defaults))
    }

    func path(_ rest: String...) throws -> ScopePath {
        try ScopePath(parsing: ["global=\(root)"] + rest)
    }

    /// Operator-style config: `HSET sluice:{root}:quotas "<field>" "<spec>"`; `field` is the
    /// pattern after the root (empty for the root itself).
    func configure(_ field: String, _ spec: String) async throws {
        let full = field.isEmpty ? "global=\(root)" : "global=\(root) \(field)"
        _ = try await client.send(
            RedisCommand("HSET", RedisArgument(quotasKey), RedisArgument(full), RedisArgument(spec)))
    }

    /// Every key of the partition (on every primary of a cluster).
    func keys() async throws -> [String] {
        try await client.scanKeys(matching: "sluice:{\(root)}:*")
    }

    func cleanUp() async {
        for key in (try? await keys()) ?? [] { _ = try? await client.send(RedisCommand("DEL", RedisArgument(key))) }
        client.close()
    }
}

/// The built `sluice` executable, next to the test bundle (or `$SLUICE_BIN`).
enum SluiceBinary {
    static var path: String {
        if let path = ProcessInfo.processInfo.environment["SLUICE_BIN"] { return path }
        return built("sluice")
    }

    /// The tests' own worker processes (`SluiceTestWorker`), built next to `sluice`.
    static var testWorkerPath: String {
        if let sluice = ProcessInfo.processInfo.environment["SLUICE_BIN"] {
            return URL(fileURLWithPath: sluice).deletingLastPathComponent().appendingPathComponent("SluiceTestWorker")
                .path
        }
        return built("SluiceTestWorker")
    }

    private static func built(_ name: String) -> String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            directory = directory.deletingLastPathComponent()
        }
        return name
    }

    /// Starts `sluice arguments...` with `REDIS_URL` set; `wait()` gives its status and output.
    static func start(_ arguments: [String]) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REDIS_URL"] = TestRedis.url
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return Running(process: process, output: output)
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try start(arguments).wait()
    }

    struct Running {
        let process: Process
        let output: Pipe
        /// What ``output(containing:within:)`` read while the process ran; ``wait()`` returns it with the rest.
        private let received = ReceivedBytes()

        /// Waits, polling without blocking a thread, until the output so far contains `text`; false when the
        /// process closed its output or `timeout` passed first.
        func output(containing text: String, within timeout: Duration) async -> Bool {
            let descriptor = output.fileHandleForReading.fileDescriptor
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
            defer { _ = fcntl(descriptor, F_SETFL, flags) }
            let end = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 4_096)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count > 0 {
                    received.append(buffer[0..<count])
                    continue
                }
                if received.text.contains(text) { return true }
                if count == 0 || ContinuousClock.now >= end { return false }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }

        func wait() -> (status: Int32, output: String) {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            received.append(data)
            return (process.terminationStatus, received.text)
        }
    }

    final class ReceivedBytes: Sendable {
        private let bytes = SluiceMutex<[UInt8]>([])
        func append(_ more: some Sequence<UInt8>) { bytes.withLock { $0.append(contentsOf: more) } }
        var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
    }
}

/// The first JSON object printed.
func jsonObject(_ text: String) -> [String: Any]? {
    for line in text.split(separator: "\n") where line.hasPrefix("{") {
        if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] { return object }
    }
    return nil
}
