import SluiceRedis
import Testing

@testable import Sluice

@Suite("Failure policy: the local fallback bucket and the breaker around Redis")
struct FailurePolicyTests {
    @Test("The fallback bucket admits its burst at once, then its rate")
    func bucket() {
        let bucket = LocalFallbackBucket(rate: 10, burst: .seconds(1))
        let start = ContinuousClock.now
        let taken = (0..<15).filter { _ in bucket.take(now: start).taken }.count
        #expect(taken == 10)
        #expect(bucket.take(now: start + .milliseconds(250)).taken, "2.5 tokens refilled")
        #expect(bucket.take(now: start + .milliseconds(250)).taken)
        #expect(!bucket.take(now: start + .milliseconds(250)).taken)
    }

    @Test("A new share changes the rate; the level never exceeds the new capacity")
    func share() {
        let bucket = LocalFallbackBucket(rate: 40, burst: .seconds(1))
        bucket.update(rate: 10)
        #expect(bucket.rate == 10)
        let now = ContinuousClock.now
        #expect((0..<40).filter { _ in bucket.take(now: now).taken }.count == 10)
    }

    @Test("Waiting for a token happens only when it comes before the deadline")
    func waiting() async {
        let bucket = LocalFallbackBucket(rate: 20, burst: .zero)  // capacity 1
        // Every request is asked at the same moment, so what the bucket holds does not depend on how long this
        // test takes to run on a loaded machine; only the wait itself is slept.
        let start = ContinuousClock.now
        #expect(await bucket.take(waitingUntil: start + .seconds(1), now: start))
        #expect(await bucket.take(waitingUntil: start + .seconds(1), now: start), "the next token comes in 50 ms")
        #expect(ContinuousClock.now - start >= .milliseconds(50), "it was waited for")
        // The one after that comes 100 ms after `start`, behind the one just waited for.
        #expect(!(await bucket.take(waitingUntil: start + .milliseconds(99), now: start)), "refused at once")
        #expect(await bucket.take(waitingUntil: start + .milliseconds(100), now: start), "a deadline it makes")
    }

    @Test(
        "The fallback bucket does not admit a cancelled caller, and one cancelled while it waits gives its token back")
    func cancelledCallers() async {
        let bucket = LocalFallbackBucket(rate: 1, burst: .zero)  // capacity 1, a token a second
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await bucket.take(waitingUntil: nil)
        }
        #expect(await early.value == false, "a caller cancelled before it asked was admitted")
        #expect(bucket.take().taken, "the cancelled caller took the token")

        // The bucket is empty: the next caller waits about a second, and is cancelled meanwhile.
        let waiting = Task { await bucket.take(waitingUntil: .now + .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        #expect(await waiting.value == false, "a caller cancelled while it waited was admitted")
        // Its token was given back: one second after the first take, the bucket holds one again
        // (it would hold none had the cancelled caller kept its place in the debt).
        #expect(bucket.take(now: .now + .milliseconds(1_100)).taken)
    }

    @Test("The breaker around Redis opens on a connection failure, skips during the cool-down, then tries once")
    func health() async throws {
        let clock = ManualClock()
        let health = RedisHealth(
            configuration: .init(stepTimeout: .seconds(30), initialCoolDown: .milliseconds(200)), now: clock.now)
        let value = try await health.perform(deadline: nil) { 7 }
        #expect(value == 7)
        let outage = await #expect(throws: BackpressureError.self) {
            try await health.perform(deadline: nil) { () async throws -> Int in throw RedisError(.connect, "refused") }
        }
        #expect((outage?.underlying as? RedisError)?.code == .connect, "the client's error is kept underneath")
        #expect(health.statistics.degraded && health.statistics.outages == 1)
        clock.advance(by: .milliseconds(199))
        let skipped = await #expect(throws: BackpressureError.self) { try await health.perform(deadline: nil) { 1 } }
        #expect(skipped?.code == .redisUnavailable)
        #expect(health.statistics.skipped == 1)
        clock.advance(by: .milliseconds(1))  // the cool-down is over
        #expect(try await health.perform(deadline: nil) { 3 } == 3, "the trial after the cool-down goes through")
        let statistics = health.statistics
        #expect(!statistics.degraded)
        #expect(statistics.degradedTime == .milliseconds(200), "\(statistics)")
    }

    @Test("The time spent degraded is told as it passes, not only when Redis answers again")
    func degradedTimeDuringAnOutage() async throws {
        let clock = ManualClock()
        let told = SluiceMutex<[RedisHealth.Transition]>([])
        let health = RedisHealth(
            configuration: .init(stepTimeout: .seconds(30), initialCoolDown: .seconds(2), maximumCoolDown: .seconds(2)),
            now: clock.now, onTransition: { transition in told.withLock { $0.append(transition) } })
        let refused: @Sendable () async throws -> Int = { throw RedisError(.connect, "refused") }
        _ = try? await health.perform(deadline: nil, refused)
        func degradedSoFar() -> Duration {
            told.withLock { transitions in
                transitions.reduce(.zero) { total, transition in
                    switch transition {
                    case .degraded: return total
                    case .stillDegraded(let time), .recovered(_, let time): return total + time
                    }
                }
            }
        }
        // Skipped steps tell the time at most once a second.
        clock.advance(by: .milliseconds(500))
        _ = try? await health.perform(deadline: nil) { 1 }
        #expect(degradedSoFar() == .zero)
        clock.advance(by: .milliseconds(700))
        _ = try? await health.perform(deadline: nil) { 1 }
        #expect(degradedSoFar() == .milliseconds(1_200), "told while still down")
        // A failed trial tells what passed since.
        clock.advance(by: .milliseconds(800))
        _ = try? await health.perform(deadline: nil, refused)
        #expect(degradedSoFar() == .seconds(2))
        clock.advance(by: .seconds(2))
        #expect(try await health.perform(deadline: nil) { 3 } == 3)
        // The parts add up to the stretch, told once each.
        #expect(degradedSoFar() == .seconds(4))
        #expect(health.statistics.degradedTime == .seconds(4))
        let recovered = told.withLock { transitions in
            transitions.compactMap { transition -> Duration? in
                if case .recovered(let after, _) = transition { return after }
                return nil
            }
        }
        #expect(recovered == [.seconds(4)])
    }

    @Test("A server error reply is not an outage")
    func serverErrors() async {
        let health = RedisHealth()
        await #expect(throws: RedisError.self) {
            try await health.perform(deadline: nil) { () async throws -> Int in throw RedisError(.server, "WRONGTYPE") }
        }
        #expect(!health.statistics.degraded)
    }

    @Test("A step that never answers is cut off at the deadline")
    func hangingStep() async {
        let health = RedisHealth(configuration: .init(stepTimeout: .seconds(30)))
        let start = ContinuousClock.now
        let error = await #expect(throws: BackpressureError.self) {
            try await health.perform(deadline: .now + .milliseconds(200)) { () async throws -> Int in
                try await Task.sleep(for: .seconds(20))
                return 0
            }
        }
        #expect(error?.code == .redisUnavailable)
        // Cut off at the 200 ms deadline, not after the step's 20 s: 5 s leaves a loaded machine room.
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("Policies describe themselves")
    func descriptions() {
        #expect(FailurePolicy.failClosed.description == "fail closed")
        #expect(FailurePolicy.failOpen.description == "fail open")
        #expect(FailurePolicy.localFallback(fleetCeiling: 100).description.contains("local fallback"))
    }
}

/// A clock that moves only when the test moves it, from the moment it is made.
final class ManualClock: Sendable {
    private let instant = SluiceMutex(ContinuousClock.now)

    var now: @Sendable () -> ContinuousClock.Instant { { [self] in instant.withLock { $0 } } }

    func advance(by duration: Duration) { instant.withLock { $0 += duration } }
}
