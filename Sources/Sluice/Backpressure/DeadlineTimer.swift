import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs actions at their deadlines from one thread the whole process shares. A Redis step's deadline
/// (``withDeadlineAbandoning(_:shielded:awaitingReply:onTimeout:_:)``) costs an entry in a heap, instead of a task
/// sleeping on a dispatch timer: on the happy path every step's deadline is set and cancelled, and the
/// task, its timer and the thread hand-offs they took were a large part of a provider call's client CPU.
///
/// An entry cancelled before its deadline never runs. The thread sleeps until the earliest entry (or until
/// one earlier is scheduled), drops cancelled entries it finds at the top of the heap, and the heap is
/// rebuilt without the cancelled ones once they are half of it, so entries cancelled long before their
/// deadlines (a cleanup's, up to the call's timeout) do not pile up. It waits on the monotonic clock, so a
/// step of the wall clock moves no deadline. Actions run on the timer's thread, one after another: they
/// must be short and never block (today: resuming a continuation, and cancelling a task, which runs the
/// task's cancellation handlers there — the Redis client's only mark a reply slot or a pool waiter).
final class DeadlineTimer: @unchecked Sendable {  // heap, thread and entries' actions: guarded by `lock`
    static let shared = DeadlineTimer()

    /// One scheduled action.
    final class Entry: @unchecked Sendable {  // `action`: guarded by the timer's lock
        fileprivate let deadline: ContinuousClock.Instant
        fileprivate var action: (@Sendable () -> Void)?
        private let timer: DeadlineTimer

        fileprivate init(
            deadline: ContinuousClock.Instant, action: @escaping @Sendable () -> Void, timer: DeadlineTimer
        ) {
            self.deadline = deadline
            self.action = action
            self.timer = timer
        }

        /// Keeps the action from running, unless it already runs or ran.
        func cancel() { timer.cancel(self) }
    }

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wakeUp = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var heap: [Entry] = []
    /// How many entries in `heap` are cancelled (their action is nil): fired ones are no longer in it.
    private var cancelledInHeap = 0
    private var started = false
    /// The longest single wait: the loop looks at the clock again after it (no overflow for far deadlines).
    private static let longestWait: Duration = .seconds(3600)

    private init() {
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        wakeUp.initialize(to: pthread_cond_t())
        #if canImport(Darwin)
            pthread_cond_init(wakeUp, nil)  // timed waits are relative (pthread_cond_timedwait_relative_np)
        #else
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(wakeUp, &attributes)
            pthread_condattr_destroy(&attributes)
        #endif
    }

    /// Runs `action` on the timer's thread at `deadline` (at once if it passed), unless cancelled first.
    func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Entry {
        let entry = Entry(deadline: deadline, action: action, timer: self)
        pthread_mutex_lock(lock)
        push(entry)
        let earliest = heap[0] === entry
        if !started {
            started = true
            Thread.detachNewThread { [self] in run() }
        }
        pthread_mutex_unlock(lock)
        // The thread sleeps until the earliest deadline it knew, or without a deadline: this one comes first.
        if earliest { pthread_cond_signal(wakeUp) }
        return entry
    }

    /// How many entries the heap holds, cancelled ones included (for tests).
    var entries: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return heap.count
    }

    private func cancel(_ entry: Entry) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard entry.action != nil else { return }  // it ran, or was cancelled before
        entry.action = nil
        cancelledInHeap += 1
        if cancelledInHeap > 64, cancelledInHeap * 2 > heap.count { dropCancelled() }
    }

    private func run() {
        pthread_mutex_lock(lock)
        while true {
            while let top = heap.first, top.action == nil {
                popEarliest()
                cancelledInHeap -= 1
            }
            guard let top = heap.first else {
                pthread_cond_wait(wakeUp, lock)
                continue
            }
            let now = ContinuousClock.now
            if top.deadline <= now {
                popEarliest()
                let action = top.action
                top.action = nil
                pthread_mutex_unlock(lock)
                action?()
                pthread_mutex_lock(lock)
                continue
            }
            wait(for: min(top.deadline - now, Self.longestWait))
        }
    }

    /// Sleeps (releasing the lock) for `duration` at most, or until signalled.
    private func wait(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = Int(attoseconds / 1_000_000_000) + 1
        #if canImport(Darwin)
            var relative = timespec(tv_sec: Int(seconds), tv_nsec: nanoseconds % 1_000_000_000)
            relative.tv_sec += nanoseconds / 1_000_000_000
            pthread_cond_timedwait_relative_np(wakeUp, lock, &relative)
        #else
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let total = now.tv_nsec + nanoseconds
            var until = timespec(
                tv_sec: now.tv_sec + Int(seconds) + total / 1_000_000_000, tv_nsec: total % 1_000_000_000)
            pthread_cond_timedwait(wakeUp, lock, &until)
        #endif
    }

    // MARK: The heap, ordered by deadline (earliest first); called with the lock held.

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func popEarliest() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    /// The heap without its cancelled entries.
    private func dropCancelled() {
        heap.removeAll { $0.action == nil }
        cancelledInHeap = 0
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var earliest = parent
            if left < heap.count, heap[left].deadline < heap[earliest].deadline { earliest = left }
            if right < heap.count, heap[right].deadline < heap[earliest].deadline { earliest = right }
            guard earliest != parent else { return }
            heap.swapAt(parent, earliest)
            parent = earliest
        }
    }
}
