import Foundation
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The processes and directories a storm started, so that they are stopped and removed on every way out: a normal
/// end, an error, or Ctrl-C / SIGTERM (``installSignalHandlers()``).
public final class ChildProcesses: Sendable {
    public static let shared = ChildProcesses()

    private struct State {
        var pids: Set<Int32> = []
        var directories: Set<String> = []
    }

    /// Kept alive for the life of the process; written once, from ``installSignalHandlers()``.
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    private let state = SluiceMutex(State())

    func add(pid: Int32) { state.withLock { _ = $0.pids.insert(pid) } }
    func remove(pid: Int32) { state.withLock { _ = $0.pids.remove(pid) } }
    func add(directory: String) { state.withLock { _ = $0.directories.insert(directory) } }
    func remove(directory: String) { state.withLock { _ = $0.directories.remove(directory) } }

    /// Kills every child still registered (SIGKILL: children spawned from dispatch threads inherit a signal mask
    /// that blocks SIGTERM) and reaps them; removes the directories.
    public func stopAll() {
        let (pids, directories) = state.withLock { state in
            defer {
                state.pids = []
                state.directories = []
            }
            return (state.pids, state.directories)
        }
        for pid in pids { kill(pid, SIGKILL) }
        for pid in pids {
            var status: Int32 = 0
            for _ in 0..<40 where waitpid(pid, &status, WNOHANG) == 0 { usleep(25_000) }
        }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// On SIGINT or SIGTERM: stop every child, remove the temporary directories, exit with 128 + the signal.
    public func installSignalHandlers() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                FileHandle.standardError.write(Data("\ninterrupted: stopping workers and Redis\n".utf8))
                stopAll()
                exit(128 + number)
            }
            source.resume()
            Self.signalSources.append(source)
        }
    }
}
