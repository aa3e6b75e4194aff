import Foundation
import SluiceRedis
import Testing

/// A worker process whose connections the server keeps killing while hundreds of callers write
/// and read values larger than the socket buffers: the case where a plain `write` raises SIGPIPE.
@Suite("Connections killed under load never take the host process down", .serialized)
struct ConnectionChurnProcessTests {
    @Test(
        "A worker with hundreds of callers in flight survives CLIENT KILL; every caller gets a reply or a typed error")
    func workerSurvivesKilledConnections() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let admin = try RedisClient(url: server.url)
        defer { admin.close() }

        // The worker runs until the test has killed its connections enough times (a loaded machine may
        // starve it for seconds: a fixed duration would end before the kills it is meant to survive).
        let stopFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sluice-churn-stop-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: stopFile) }
        let worker = try WorkerProcess.start(
            [
                "connection-churn", "--callers", "300", "--duration-ms", "90000", "--stop-file", stopFile,
                "--value-bytes", "40000",
            ],
            redisURL: server.url)
        // Wait until the worker is connected (a loaded machine may take seconds to start it).
        let startBy = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < startBy {
            let clients = try await admin.send("CLIENT", "LIST", "TYPE", "normal").string ?? ""
            if clients.split(separator: "\n").count > 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Kill the worker's connections again and again while its callers are writing, until it exits.
        var killed = 0
        var exited: Int32?
        let end = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < end {
            var raw: Int32 = 0
            if waitpid(worker.pid, &raw, WNOHANG) == worker.pid {
                exited = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                break
            }
            try await Task.sleep(for: .milliseconds(40))
            // The admin connection is skipped (SKIPME yes is the default).
            killed += Int(try await admin.send("CLIENT", "KILL", "TYPE", "normal").integer ?? 0)
            if killed >= 20, !FileManager.default.fileExists(atPath: stopFile) {
                _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
            }
        }
        _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
        let status: Int32
        if let exited { status = exited } else { status = await worker.exitStatus() }
        let text = (try? String(contentsOfFile: worker.out, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: worker.out)

        #expect(status == 0, "the worker died with status \(status) (141 is SIGPIPE)")
        #expect(killed >= 20, "the server killed the worker's connection \(killed) times")
        let outcomes = try #require(jsonObject(text)?["outcomes"] as? [String: Int], "result: \(text)")
        #expect(outcomes["reply", default: 0] > 0, "\(outcomes)")
        #expect(outcomes["wrong"] == nil, "no caller got someone else's reply: \(outcomes)")
        let typedErrors: Set<String> = ["io", "endOfFile", "timeout", "unavailable", "connect"]
        let unexpected = outcomes.keys.filter { $0 != "reply" && !typedErrors.contains($0) }
        #expect(unexpected.isEmpty, "only replies and connection errors: \(outcomes)")
        #expect(
            outcomes.filter { typedErrors.contains($0.key) }.values.reduce(0, +) > 0, "the kills were seen: \(outcomes)"
        )
    }
}
