import Sluice
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Anthropic: `anthropic-ratelimit-*` for requests, tokens, input tokens and output tokens, with RFC 3339 resets.
@Suite("Reconciler: Anthropic headers")
struct ReconcilerAnthropicTests {
    static let successfulResponse = """
        HTTP/2 200
        date: Wed, 21 May 2025 10:15:30 GMT
        content-type: application/json
        anthropic-ratelimit-requests-limit: 4000
        anthropic-ratelimit-requests-remaining: 3999
        anthropic-ratelimit-requests-reset: 2025-05-21T10:15:31Z
        anthropic-ratelimit-input-tokens-limit: 400000
        anthropic-ratelimit-input-tokens-remaining: 398000
        anthropic-ratelimit-input-tokens-reset: 2025-05-21T10:15:31Z
        anthropic-ratelimit-output-tokens-limit: 80000
        anthropic-ratelimit-output-tokens-remaining: 80000
        anthropic-ratelimit-output-tokens-reset: 2025-05-21T10:15:30Z
        anthropic-ratelimit-tokens-limit: 480000
        anthropic-ratelimit-tokens-remaining: 478000
        anthropic-ratelimit-tokens-reset: 2025-05-21T10:15:31Z
        request-id: req_011CPNzVxm3dYzvHdGDgzkYq
        anthropic-organization-id: 3f8a1c9e-0b7d-4e2a-9c6f-5d4e3b2a1f0e
        via: 1.1 google
        cf-cache-status: DYNAMIC
        server: cloudflare
        """

    @Test("A successful response gives all four resources, resets measured from the Date header")
    func successfulResponse() {
        let observation = ReconcilerFixture.observe(Self.successfulResponse)
        #expect(observation.responseClass == .ok)
        #expect(observation.retryAfter == nil)
        #expect(observation[.requests] == ResourceObservation(limit: 4_000, remaining: 3_999, resetAfter: .seconds(1)))
        // Remaining tokens come rounded to thousands by Anthropic, and are kept as sent.
        #expect(
            observation[.inputTokens]
                == ResourceObservation(limit: 400_000, remaining: 398_000, resetAfter: .seconds(1)))
        #expect(observation[.outputTokens] == ResourceObservation(limit: 80_000, remaining: 80_000, resetAfter: .zero))
        #expect(
            observation[.tokens] == ResourceObservation(limit: 480_000, remaining: 478_000, resetAfter: .seconds(1)))
    }

    @Test("Without a Date header, resets are measured from the caller's clock")
    func withoutDateHeader() {
        let block = """
            anthropic-ratelimit-requests-remaining: 10
            anthropic-ratelimit-requests-reset: 2025-05-21T10:15:42.5Z
            """
        let now = Date(timeIntervalSince1970: 1_747_822_530)  // 10:15:30Z
        #expect(ReconcilerFixture.observe(block, now: now)[.requests]?.resetAfter == .milliseconds(12_500))
        let later = Date(timeIntervalSince1970: 1_747_822_540.25)
        #expect(ReconcilerFixture.observe(block, now: later)[.requests]?.resetAfter == .milliseconds(2_250))
    }

    @Test("A malformed Date header is ignored in favour of the caller's clock")
    func malformedDateHeader() {
        let block = """
            Date: yesterday
            anthropic-ratelimit-requests-reset: 2025-05-21T10:15:42Z
            """
        let now = Date(timeIntervalSince1970: 1_747_822_530)
        #expect(ReconcilerFixture.observe(block, now: now)[.requests]?.resetAfter == .seconds(12))
    }

    @Test(
        "RFC 3339 resets with fractions, offsets and lowercase separators",
        arguments: [
            ("2025-05-21T10:15:31Z", Duration.seconds(1)),
            ("2025-05-21T10:15:31.25Z", .milliseconds(1_250)),
            ("2025-05-21T10:15:30.000001Z", .microseconds(1)),
            ("2025-05-21T10:15:30.123456789Z", .nanoseconds(123_456_789)),
            ("2025-05-21T10:15:30.1234567891234Z", .nanoseconds(123_456_789)),  // beyond nanoseconds: ignored
            ("2025-05-21T12:15:31.250+02:00", .milliseconds(1_250)),
            ("2025-05-21T05:45:45-04:30", .seconds(15)),
            ("2025-05-21T10:15:40+00:00", .seconds(10)),
            ("2025-05-21T10:15:40-00:00", .seconds(10)),
            ("2025-05-22T00:15:30+14:00", .zero),
            ("2025-05-21t10:15:31z", .seconds(1)),
            ("2025-05-21 10:15:31Z", .seconds(1)),
            ("2025-05-21T10:16:00Z", .seconds(30)),
            ("2025-05-22T10:15:30Z", .seconds(86_400)),
            ("2025-05-21T10:15:00Z", .zero),  // already past: the window is refilled
            ("2024-02-29T00:00:00Z", .zero),  // a leap day, long past
        ]
    )
    func rfc3339Resets(text: String, expected: Duration) {
        let observation = ReconcilerFixture.observe(header: "anthropic-ratelimit-tokens-reset: \(text)")
        #expect(observation[.tokens]?.resetAfter == expected)
    }

    @Test(
        "Malformed RFC 3339 resets read as unknown",
        arguments: [
            "2025-05-21T10:15:31", "2025-05-21", "2025-05-21T10:15Z", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z", "2025-05-21T24:00:00Z", "2025-05-21T10:60:00Z", "2025-05-21T10:15:31+0200",
            "2025-05-21T10:15:31+24:00", "2025-05-21T10:15:31.Z", "2025-05-21T10:15:31ZZ", "1747822531",
            "Wed, 21 May 2025 10:15:31 GMT", "25-05-21T10:15:31Z", "2025-5-21T10:15:31Z", "", "2025-05-21X10:15:31Z",
        ]
    )
    func malformedResets(text: String) {
        let observation = ReconcilerFixture.observe(
            """
            Date: Wed, 21 May 2025 10:15:30 GMT
            anthropic-ratelimit-output-tokens-remaining: 7000
            anthropic-ratelimit-output-tokens-reset: \(text)
            """
        )
        #expect(observation[.outputTokens] == ResourceObservation(limit: nil, remaining: 7_000, resetAfter: nil))
    }

    @Test("A leap second lands on the next minute")
    func leapSecond() {
        let observation = ReconcilerFixture.observe(
            "Date: Sat, 31 Dec 2016 23:59:59 GMT\nanthropic-ratelimit-requests-reset: 2016-12-31T23:59:60Z"
        )
        #expect(observation[.requests]?.resetAfter == .seconds(1))
    }

    @Test("A 429 with retry-after and nothing remaining is a quota response")
    func rateLimited() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/2 429
            date: Wed, 21 May 2025 10:15:30 GMT
            content-type: application/json
            retry-after: 23
            anthropic-ratelimit-input-tokens-limit: 40000
            anthropic-ratelimit-input-tokens-remaining: 0
            anthropic-ratelimit-input-tokens-reset: 2025-05-21T10:15:53Z
            x-should-retry: true
            """
        )
        #expect(observation.responseClass == .quota)
        #expect(observation.retryAfter == .seconds(23))
        #expect(observation[.inputTokens] == ResourceObservation(limit: 40_000, remaining: 0, resetAfter: .seconds(23)))
        #expect(observation[.outputTokens] == nil)
    }

    @Test("A 529 Overloaded is an overload, not a quota response")
    func overloaded() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/2 529
            date: Wed, 21 May 2025 10:15:30 GMT
            content-type: application/json
            x-should-retry: true
            """
        )
        #expect(observation.status == 529)
        #expect(observation.responseClass == .overload)
        #expect(observation.resources.isEmpty)
    }

    @Test("Mixed-case Anthropic names and negative values")
    func mixedCaseAndNegative() {
        let observation = ReconcilerFixture.observe(
            """
            Date: Wed, 21 May 2025 10:15:30 GMT
            Anthropic-RateLimit-Requests-Limit: 50
            ANTHROPIC-RATELIMIT-REQUESTS-REMAINING: -3
            anthropic-ratelimit-requests-RESET: 2025-05-21T10:15:35Z
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: 50, remaining: nil, resetAfter: .seconds(5)))
    }
}
