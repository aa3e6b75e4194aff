import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A throwaway `redis-server` for one storm: no persistence, on a unix socket in a temporary directory (no port
/// to collide with), stopped by ``stop()`` or by ``ChildProcesses`` on any way out.
final class RedisProcess: Sendable {
    let url: String
    private let process: Process
    private let directory: String

    private init(url: String, process: Process, directory: String) {
        self.url = url
        self.process = process
        self.directory = directory
    }

    static func start() async throws -> RedisProcess {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-storm-redis-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        ChildProcesses.shared.add(directory: directory)
        let socket = directory + "/redis.sock"
        guard let server = Self.locate("redis-server") else {
            throw StormError("redis-server is not installed (apt-get install redis-server), and no --redis was given")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", directory, "--logfile", directory + "/redis.log",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        ChildProcesses.shared.add(pid: process.processIdentifier)
        let url = "unix://" + socket
        for _ in 0..<100 {
            if FileManager.default.fileExists(atPath: socket), let client = try? RedisClient(url: url),
                (try? await client.send("PING")) != nil
            {
                client.close()
                return RedisProcess(url: url, process: process, directory: directory)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? ""
        kill(process.processIdentifier, SIGKILL)
        throw StormError("redis-server did not start:\n\(log.suffix(2_000))")
    }

    /// Kills the server: a throwaway server has nothing to save, and a child spawned from a dispatch thread
    /// inherits a signal mask that blocks SIGTERM.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        ChildProcesses.shared.remove(pid: process.processIdentifier)
        try? FileManager.default.removeItem(atPath: directory)
        ChildProcesses.shared.remove(directory: directory)
    }

    /// The full path of an executable on `PATH` (and the usual sbin directories).
    static func locate(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
