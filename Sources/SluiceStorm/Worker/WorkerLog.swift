import Foundation
import SluiceRedis

/// A worker's diagnostics, on its standard error (the coordinator keeps it in the worker's log file and shows its
/// tail when the worker fails). Each distinct message is written once.
enum WorkerLog {
    private static let seen = SluiceMutex<Set<String>>([])

    static func once(_ message: String) {
        guard seen.withLock({ $0.insert(message).inserted }) else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
