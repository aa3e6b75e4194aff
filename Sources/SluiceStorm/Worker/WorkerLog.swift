import Foundation
import Synchronization

/// A worker's diagnostics, on its standard error (the coordinator keeps it in the worker's log file and shows its
/// tail when the worker fails). Each distinct message is written once.
enum WorkerLog {
    private static let seen = Mutex<Set<String>>([])

    static func once(_ message: String) {
        guard seen.withLock({ $0.insert(message).inserted }) else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
