import Foundation
import Sluice
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#endif

/// A `SluiceTestWorker ...` process (a real OS process sharing the test's Redis) and its result file.
struct WorkerProcess {
    let pid: pid_t
    let out: String

    /// Starts `SluiceTestWorker <arguments> --redis URL --out <file>` with a clean signal mask.
    static func start(_ arguments: [String], redisURL: String = TestRedis.url) throws -> WorkerProcess {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sluice-worker-\(UUID().uuidString).json"
        ).path
        let pid = try ChildProcess.spawn(
            SluiceBinary.testWorkerPath, ["SluiceTestWorker"] + arguments + ["--redis", redisURL, "--out", out])
        return WorkerProcess(pid: pid, out: out)
    }

    /// The worker's result line, once written (polled; `nil` after `timeout`).
    func result(timeout: Duration = .seconds(60)) async throws -> [String: Any]? {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let text = try? String(contentsOfFile: out, encoding: .utf8), let object = jsonObject(text) {
                return object
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Waits for the process to exit; returns its status (128 + signal when killed).
    @discardableResult
    func wait() async -> Int32 {
        let status = await exitStatus()
        try? FileManager.default.removeItem(atPath: out)
        return status
    }

    /// SIGKILL, then reap.
    func kill9() async {
        kill(pid, SIGKILL)
        await wait()
    }

    /// Reaps the process without blocking a thread of the shared cooperative pool (a blocking
    /// `waitpid` there would stall every other test of the run): polls with `WNOHANG`.
    func exitStatus() async -> Int32 {
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { return -1 }
            try? await Task.sleep(for: .milliseconds(10))
        }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    /// Runs workers to completion and returns their results (missing ones as empty objects).
    static func runAll(_ argumentLists: [[String]], redisURL: String = TestRedis.url) async throws -> [[String: Any]] {
        let workers = try argumentLists.map { try start($0, redisURL: redisURL) }
        var results: [[String: Any]] = []
        for worker in workers {
            let status = await worker.exitStatus()
            let text = (try? String(contentsOfFile: worker.out, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: worker.out)
            results.append(status == 0 ? jsonObject(text) ?? [:] : ["exit": Int(status)])
        }
        return results
    }
}

/// One test's own partition on the shared test server; ``cleanUp()`` deletes its keys.
struct BackpressureFixture {
    let client: RedisClient
    let partition: String

    init(_ test: String = #function) throws {
        client = try TestRedis.client()
        partition = "bp-\(test.prefix { $0 != "(" })-\(UUID().uuidString.prefix(8))"
    }

    /// The events of the partition, oldest first.
    func events(_ type: String? = nil) async throws -> [SluiceEvent] {
        let all = try await EventLog(redis: client).recent(partition: partition, count: 1_000)
        return type.map { type in all.filter { $0.type == type } } ?? all
    }

    /// Every key of the partition (on every primary of a cluster).
    func keys() async throws -> [String] {
        try await client.scanKeys(matching: "sluice:{\(KeyPattern.escape(partition))}:*")
    }

    func cleanUp() async {
        for key in (try? await keys()) ?? [] { _ = try? await client.send("DEL", RedisArgument(key)) }
        client.close()
    }
}

/// Test partitions are plain names (letters, digits, `-`), so their escaped form is themselves.
enum KeyPattern {
    static func escape(_ name: String) -> String { name }
}

/// Integers out of a worker's JSON result.
extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int { self[key] as? Int ?? 0 }
    func outcomes() -> [String: Int] { self["outcomes"] as? [String: Int] ?? [:] }
}

/// Sums the `outcomes` objects of several workers.
func totalOutcomes(_ results: [[String: Any]]) -> [String: Int] {
    var total: [String: Int] = [:]
    for result in results {
        for (name, count) in result.outcomes() { total[name, default: 0] += count }
    }
    return total
}
