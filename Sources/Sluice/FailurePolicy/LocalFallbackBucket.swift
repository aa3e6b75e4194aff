import SluiceRedis

/// A token bucket in this process, for deciding without Redis (``FailurePolicy/localFallback(fleetCeiling:burst:)``).
/// Its rate is this worker's share of the fleet's ceiling and follows the ceiling and the number of
/// live workers as they change.
package final class LocalFallbackBucket: Sendable {
    private struct State {
        var rate: Double  // tokens per second
        var capacity: Double
        var level: Double
        var updated: ContinuousClock.Instant
    }

    private let state: SluiceMutex<State>
    private let burst: Duration

    /// A full bucket of `rate` tokens per second holding `burst` worth of it (at least 1).
    package init(rate: Double, burst: Duration) {
        let capacity = max(1, rate * (burst / .seconds(1)))
        self.burst = burst
        self.state = SluiceMutex(State(rate: max(0, rate), capacity: capacity, level: capacity, updated: .now))
    }

    /// The current rate in tokens per second.
    package var rate: Double { state.withLock { $0.rate } }

    /// Changes the rate (a new share); the level is kept, capped at the new capacity.
    package func update(rate: Double) {
        state.withLock { state in
            refill(&state, now: .now)
            state.rate = max(0, rate)
            state.capacity = max(1, state.rate * (burst / .seconds(1)))
            state.level = min(state.level, state.capacity)
        }
    }

    /// Takes one token now if there is one; otherwise says how long until there will be (`nil`:
    /// never, the rate is zero).
    package func take(now: ContinuousClock.Instant = .now) -> (taken: Bool, wait: Duration?) {
        state.withLock { state in
            refill(&state, now: now)
            if state.level >= 1 {
                state.level -= 1
                return (true, .zero)
            }
            guard state.rate > 0 else { return (false, nil) }
            return (false, .nanoseconds(Int64((1 - state.level) / state.rate * 1e9)))
        }
    }

    /// Takes one token, waiting for it (scheduled, no polling) when it comes before `deadline`.
    /// Returns false at once when it would not, and for a cancelled caller: one cancelled before it
    /// asks takes nothing, one cancelled while it waits gives its token back. `now` is the moment the
    /// bucket is asked at (tests pass one).
    package func take(waitingUntil deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant = .now) async
        -> Bool
    {
        if Task.isCancelled { return false }
        let reservation: Duration? = state.withLock { state in
            refill(&state, now: now)
            guard state.level >= 1 || state.rate > 0 else { return nil }
            let wait = state.level >= 1 ? Duration.zero : .nanoseconds(Int64((1 - state.level) / state.rate * 1e9))
            if let deadline, now + wait > deadline { return nil }
            state.level -= 1  // into debt: the next caller waits behind this one
            return wait
        }
        guard let reservation else { return false }
        if reservation > .zero {
            do {
                try await Task.sleep(for: reservation)
            } catch {
                state.withLock { state in
                    refill(&state, now: .now)
                    state.level = min(state.capacity, state.level + 1)
                }
                return false
            }
        }
        return true
    }

    private func refill(_ state: inout State, now: ContinuousClock.Instant) {
        let elapsed = max(.zero, now - state.updated) / .seconds(1)
        state.level = min(state.capacity, state.level + elapsed * state.rate)
        state.updated = now
    }
}
