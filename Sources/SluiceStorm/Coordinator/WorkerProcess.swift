import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One worker: a child process running `sluice storm-worker --assignment FILE`.
final class WorkerProcess {
    let assignment: WorkerAssignment
    private let process: Process
    private let logPath: String

    private init(assignment: WorkerAssignment, process: Process, logPath: String) {
        self.assignment = assignment
        self.process = process
        self.logPath = logPath
    }

    static func spawn(_ assignment: WorkerAssignment, executable: String, in directory: String) throws -> WorkerProcess
    {
        let path = directory + "/worker-\(assignment.workerIndex).assignment.json"
        try JSONEncoder().encode(assignment).write(to: URL(fileURLWithPath: path))
        let logPath = directory + "/worker-\(assignment.workerIndex).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["storm-worker", "--assignment", path]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw StormError("cannot start worker \(executable): \(error)")
        }
        try? log.close()
        ChildProcesses.shared.add(pid: process.processIdentifier)
        return WorkerProcess(assignment: assignment, process: process, logPath: logPath)
    }

    var isRunning: Bool { process.isRunning }

    /// SIGKILL: a child spawned from a dispatch thread inherits a signal mask that blocks SIGTERM.
    func forceStop() {
        _ = kill(process.processIdentifier, SIGKILL)
    }

    /// Reads the worker's records after it exited: its calls, its queue gauge, and why it failed if it did.
    func collect() -> (calls: [CallRecord], waiting: [(Int, Int)], failure: String?) {
        process.waitUntilExit()
        ChildProcesses.shared.remove(pid: process.processIdentifier)
        var calls: [CallRecord] = []
        var waiting: [(Int, Int)] = []
        var failure: String?
        var finished = false
        let decoder = JSONDecoder()
        let text = (try? String(contentsOfFile: assignment.recordsPath, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let decoded = try? decoder.decode(WorkerLine.self, from: Data(line.utf8)) else { continue }
            switch decoded {
            case .call(let record): calls.append(record)
            case .queue(let bin, let count, _): waiting.append((bin, count))
            case .done(let error):
                finished = true
                failure = error.map { "worker \(assignment.workerIndex): \($0)" }
            }
        }
        let status = process.terminationStatus
        if !finished || status != 0 || process.terminationReason != .exit {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let how = process.terminationReason == .exit ? "exited with \(status)" : "was killed by signal \(status)"
            failure = failure ?? "worker \(assignment.workerIndex) \(how): \(log.suffix(400))"
        }
        return (calls, waiting, failure)
    }
}
