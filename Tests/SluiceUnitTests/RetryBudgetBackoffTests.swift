import Testing

@testable import Sluice

@Suite("Retry budget: exponential backoff with full jitter")
struct RetryBudgetBackoffTests {
    @Test("The cap doubles per attempt up to the maximum")
    func caps() {
        let backoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(1))
        #expect(backoff.cap(attempt: 0) == .milliseconds(100))
        #expect(backoff.cap(attempt: 1) == .milliseconds(200))
        #expect(backoff.cap(attempt: 3) == .milliseconds(800))
        #expect(backoff.cap(attempt: 4) == .seconds(1))
        #expect(backoff.cap(attempt: 500) == .seconds(1))
    }

    @Test("Full jitter: pauses spread over the whole range from zero to the cap")
    func fullJitter() {
        let backoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(10))
        let pauses = (0..<2_000).map { _ in backoff.delay(attempt: 2) }
        #expect(pauses.allSatisfy { $0 >= .zero && $0 <= .milliseconds(400) })
        #expect(pauses.contains { $0 < .milliseconds(40) }, "some pauses are short")
        #expect(pauses.contains { $0 > .milliseconds(360) }, "some pauses are near the cap")
    }

    @Test("A provider's retry-after is a floor for the pause")
    func retryAfter() {
        let backoff = RetryBackoff(initial: .milliseconds(10), maximum: .milliseconds(50))
        for _ in 0..<200 {
            #expect(backoff.delay(attempt: 0, retryAfter: .seconds(2)) == .seconds(2))
        }
    }

    @Test("No retry is scheduled when the pause would end past the deadline")
    func deadline() {
        let backoff = RetryBackoff(initial: .milliseconds(10), maximum: .milliseconds(20))
        let now = ContinuousClock.now
        #expect(backoff.delay(attempt: 0, retryAfter: .seconds(5), deadline: now + .seconds(1), now: now) == nil)
        let pause = backoff.delay(attempt: 0, retryAfter: nil, deadline: now + .seconds(1), now: now)
        #expect(pause != nil && pause! <= .milliseconds(10))
    }

    @Test("Configuration values are clamped to sane ranges")
    func configuration() {
        let budget = RetryBudget.Configuration(ratio: -1, floor: -5, window: .zero)
        #expect(budget.ratio == 0 && budget.floor == 0 && budget.window == .milliseconds(100))
        let breaker = CircuitBreaker.Configuration()
        #expect(breaker.failureRatio == 0.15 && breaker.minimumCalls == 20, "the defaults a user expects")
    }
}
