import Foundation
import Testing

/// The chaos soak end to end, short: `scripts/soak.sh --duration 20 --workers 2 --json` with its own AOF
/// redis-server, mock provider and worker processes (the script starts and stops them all by pid). Twenty seconds
/// leave room for two faults of the seeded schedule; the full soak is `scripts/soak.sh --duration 120`.
@Suite("Soak: a short chaos run", .serialized)
struct SoakIntegrationTests {
    @Test("Two workers under a seeded fault schedule: nothing over a limit, leaked, without expiry, crashed or late")
    func shortSoak() async throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-soak-\(UUID()).json").path
        let progress = output + ".log"
        defer {
            try? FileManager.default.removeItem(atPath: output)
            try? FileManager.default.removeItem(atPath: progress)
        }
        let command =
            "SLUICE=\(WorkerProcess.quote(SluiceBinary.path)) \(WorkerProcess.quote(repository + "/scripts/soak.sh"))"
            + " --duration 20 --workers 2 --seed 3 --json >\(WorkerProcess.quote(output))"
            + " 2>\(WorkerProcess.quote(progress)) </dev/null"
        let pid = try ChildProcess.spawn("/bin/sh", ["sh", "-c", command])
        let status = await WorkerProcess(pid: pid, out: "/dev/null/none").exitStatus()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: progress, encoding: .utf8)) ?? ""
        let report = try #require(
            try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            "soak.sh printed: \(text)\nand logged: \(log.suffix(2000))")
        for figure in ["over_admitted", "leaked_leases", "keys_without_expiry", "crashed", "late_calls", "quota_lost"] {
            #expect(report[figure] as? Int == 0, "\(figure): \(text)")
        }
        #expect((report["admissions_checked"] as? Int ?? 0) > 0)
        #expect(!((report["faults"] as? [String: Any]) ?? [:]).isEmpty)
        #expect(report["passed"] as? Bool == true)
        #expect(status == 0)
    }
}

extension WorkerProcess {
    /// `word` quoted for `sh -c`.
    static func quote(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
