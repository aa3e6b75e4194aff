import SluiceRedis
import Synchronization
import Testing

@testable import Sluice

/// `withDeadline` as a structured race on a mock clock, and the cancellation shield for cleanup.
@Suite("Deadlines: a structured race that cancels and awaits the operation", .timeLimit(.minutes(1)))
struct DeadlineTests {
    struct TimedOut: Error {}

    /// An operation that waits until cancelled (or `release()`d), recording that it stopped.
    final class Operation: Sendable {
        private let state = SluiceMutex<(started: Bool, stopped: Bool, gate: CheckedContinuation<Void, any Error>?)>(
            (false, false, nil))
        var started: Bool { state.withLock { $0.started } }
        var stopped: Bool { state.withLock { $0.stopped } }

        func run() async throws -> Int {
            defer { state.withLock { $0.stopped = true } }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let cancelled = state.withLock { state in
                        state.started = true
                        if Task.isCancelled { return true }
                        state.gate = continuation
                        return false
                    }
                    if cancelled { continuation.resume(throwing: CancellationError()) }
                }
            } onCancel: {
                state.withLock { state in
                    defer { state.gate = nil }; return state.gate
                }?.resume(
                    throwing: CancellationError())
            }
            return 42
        }

        func release() {
            state.withLock { state in
                defer { state.gate = nil }; return state.gate
            }?.resume()
        }
    }

    @Test("The operation's value when it finishes first")
    func finishesFirst() async throws {
        let clock = MockClock()
        let operation = Operation()
        let task = Task {
            try await withDeadline(clock.now.advanced(by: .seconds(1)), clock: clock, onTimeout: { TimedOut() }) {
                try await operation.run()
            }
        }
        await eventually("the operation started") { operation.started }
        operation.release()
        #expect(try await task.value == 42)
        #expect(clock.sleeping == 0, "the timer was stopped")
    }

    @Test("At the deadline the operation is cancelled and has stopped before the caller gets the timeout")
    func deadlineCancelsAndAwaits() async throws {
        let clock = MockClock()
        let operation = Operation()
        let task = Task {
            do {
                _ = try await withDeadline(
                    clock.now.advanced(by: .seconds(1)), clock: clock, onTimeout: { TimedOut() }
                ) { try await operation.run() }
                return "returned"
            } catch is TimedOut {
                return operation.stopped ? "timed out after it stopped" : "timed out while it still ran"
            }
        }
        await eventually("the operation and the timer started") { operation.started && clock.sleeping == 1 }
        clock.advance(by: .seconds(1))
        #expect(try await task.value == "timed out after it stopped")
    }

    @Test("An operation that ignores the cancellation is awaited, and its late value is kept")
    func lateValueKept() async throws {
        let clock = MockClock()
        let release = SluiceMutex<CheckedContinuation<Void, Never>?>(nil)
        let task = Task {
            try await withDeadline(clock.now.advanced(by: .seconds(1)), clock: clock, onTimeout: { TimedOut() }) {
                await withCheckedContinuation { continuation in release.withLock { $0 = continuation } }
                return 7
            }
        }
        await eventually("the operation and the timer started") {
            release.withLock { $0 != nil } && clock.sleeping == 1
        }
        clock.advance(by: .seconds(2))
        try? await Task.sleep(for: .milliseconds(20))
        release.withLock { $0 }?.resume()
        #expect(try await task.value == 7)
    }

    @Test("A caller cancelled before it starts never runs the operation")
    func cancelledBeforeStart() async {
        let ran = Atomic(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await withDeadline(.now + .seconds(5), onTimeout: { TimedOut() }) {
                ran.store(true, ordering: .relaxed)
                return 1
            }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        let didRun = ran.load(ordering: .relaxed)
        #expect(!didRun, "the operation ran for a cancelled caller")
    }

    @Test("A deadline already passed never runs the operation")
    func deadlinePassed() async {
        let clock = MockClock()
        let ran = Atomic(false)
        await #expect(throws: TimedOut.self) {
            try await withDeadline(clock.now, clock: clock, onTimeout: { TimedOut() }) {
                ran.store(true, ordering: .relaxed)
                return 1
            }
        }
        let didRun = ran.load(ordering: .relaxed)
        #expect(!didRun)
    }

    @Test("A caller cancelled while the operation runs cancels it and gets its cancellation")
    func cancelledWhileRunning() async {
        let clock = MockClock()
        let operation = Operation()
        let task = Task {
            try await withDeadline(clock.now.advanced(by: .seconds(60)), clock: clock, onTimeout: { TimedOut() }) {
                try await operation.run()
            }
        }
        await eventually("the operation started") { operation.started }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(operation.stopped)
    }

    @Test("Cleanup under the shield runs to its end in a cancelled task")
    func shield() async {
        let finished = Atomic(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await withCancellationShield { () async -> Bool in
                // Sleeping throws in a cancelled task; under the shield it does not.
                let slept = (try? await Task.sleep(for: .milliseconds(1))) != nil
                finished.store(true, ordering: .relaxed)
                return slept && !Task.isCancelled
            }
        }
        #expect(await task.value, "the shielded cleanup saw the caller's cancellation")
        let didFinish = finished.load(ordering: .relaxed)
        #expect(didFinish)
    }

    @Test("The abandoning race returns at the deadline while an operation that ignores cancellation still runs")
    func abandoningReturnsAtTheDeadline() async throws {
        let gate = SluiceMutex<CheckedContinuation<Void, Never>?>(nil)
        let finished = Atomic(false)
        await #expect(throws: TimedOut.self) {
            try await withDeadlineAbandoning(.now + .milliseconds(50), onTimeout: { TimedOut() }) {
                await withCheckedContinuation { continuation in gate.withLock { $0 = continuation } }
                finished.store(true, ordering: .relaxed)
                return 1
            }
        }
        let finishedEarly = finished.load(ordering: .relaxed)
        #expect(!finishedEarly, "the operation finished although nothing released it")
        await eventually("the operation is waiting") { gate.withLock { $0 != nil } }
        gate.withLock { $0 }?.resume()
        await eventually("the abandoned operation finishes behind the caller") { finished.load(ordering: .relaxed) }
    }

    @Test("The abandoning race never starts an operation for a caller already cancelled")
    func abandoningCancelledBeforeStart() async {
        let ran = Atomic(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await withDeadlineAbandoning(.now + .seconds(5), onTimeout: { TimedOut() }) {
                ran.store(true, ordering: .relaxed)
                return 1
            }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        let didRun = ran.load(ordering: .relaxed)
        #expect(!didRun)
    }

    @Test("The abandoning race returns a cancelled caller's CancellationError while the operation runs")
    func abandoningCancelledWhileRunning() async {
        let operation = Operation()
        let task = Task {
            try await withDeadlineAbandoning(.now + .seconds(60), onTimeout: { TimedOut() }) {
                try await operation.run()
            }
        }
        await eventually("the operation started") { operation.started }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        await eventually("the operation was cancelled too") { operation.stopped }
    }

    @Test("A shielded race keeps a cancelled caller waiting, and leaves the operation running at the deadline")
    func shieldedRace() async throws {
        let operation = Operation()
        let started = ContinuousClock.now
        let task = Task {
            try await withDeadlineAbandoning(.now + .milliseconds(300), shielded: true, onTimeout: { TimedOut() }) {
                try await operation.run()
            }
        }
        await eventually("the operation started") { operation.started }
        task.cancel()
        await #expect(throws: TimedOut.self) { try await task.value }
        #expect(ContinuousClock.now - started >= .milliseconds(300), "the cancelled caller stopped waiting early")
        #expect(!operation.stopped, "the shielded operation was cancelled")
        operation.release()
        await eventually("the operation finishes in the background") { operation.stopped }
    }

    @Test("A shielded race starts its operation even when the deadline already passed, without waiting for it")
    func shieldedRacePastDeadline() async {
        let ran = Atomic(false)
        await #expect(throws: TimedOut.self) {
            try await withDeadlineAbandoning(.now - .seconds(1), shielded: true, onTimeout: { TimedOut() }) {
                try await Task.sleep(for: .milliseconds(100))
                ran.store(true, ordering: .relaxed)
                return 1
            }
        }
        await eventually("the bookkeeping ran behind the caller") { ran.load(ordering: .relaxed) }
    }

    @Test("The deadline timer runs actions in deadline order, never a cancelled one, and wakes for an earlier one")
    func deadlineTimer() async {
        let timer = DeadlineTimer.shared
        let fired = SluiceMutex<[(order: Int, at: ContinuousClock.Instant)]>([])
        let start = ContinuousClock.now
        _ = timer.schedule(at: start - .seconds(1)) { fired.withLock { $0.append((0, .now)) } }  // due: at once
        await eventually("an action already due runs at once") { fired.withLock { $0.count } == 1 }
        // Latest first: each new one is the earliest, so the sleeping thread must wake for it.
        for (order, delay) in [(3, 2000), (2, 1500), (1, 100)] {
            _ = timer.schedule(at: start + .milliseconds(delay)) { fired.withLock { $0.append((order, .now)) } }
        }
        let cancelled = timer.schedule(at: start + .milliseconds(1200)) { fired.withLock { $0.append((99, .now)) } }
        cancelled.cancel()
        await eventually("every action ran") { fired.withLock { $0.count } == 4 }
        let runs = fired.withLock { $0 }
        #expect(runs.map(\.order) == [0, 1, 2, 3], "not in deadline order, or the cancelled one ran")
        // Woken for the earliest: the first one ran long before the one the thread first slept for.
        #expect(runs[1].at < start + .milliseconds(1400), "the thread slept past an earlier deadline")
        #expect(runs[3].at >= start + .milliseconds(2000))
    }

    @Test("Entries cancelled long before their deadlines are dropped from the timer's heap")
    func deadlineTimerDropsCancelled() async {
        let timer = DeadlineTimer.shared
        let ran = Atomic(0)
        for _ in 0..<10_000 {
            timer.schedule(at: .now + .seconds(3600)) { ran.add(1, ordering: .relaxed) }.cancel()
        }
        #expect(timer.entries < 1_000, "cancelled entries piled up: \(timer.entries)")
        #expect(ran.load(ordering: .relaxed) == 0)
    }
}
