import Sluice
import Testing

/// OpenAI and Azure OpenAI: `x-ratelimit-*-requests/-tokens` with Go-style durations, `retry-after-ms`,
/// `x-ms-retry-after-ms`.
@Suite("Reconciler: OpenAI and Azure OpenAI headers")
struct ReconcilerOpenAITests {
    @Test("A successful OpenAI response gives requests and tokens with their resets")
    func successfulResponse() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/2 200
            date: Wed, 21 May 2025 10:15:30 GMT
            content-type: application/json
            openai-organization: user-abc123
            openai-processing-ms: 412
            openai-version: 2020-10-01
            x-ratelimit-limit-requests: 10000
            x-ratelimit-limit-tokens: 2000000
            x-ratelimit-remaining-requests: 9999
            x-ratelimit-remaining-tokens: 1999977
            x-ratelimit-reset-requests: 6ms
            x-ratelimit-reset-tokens: 0s
            x-request-id: req_5b8c0a3f2e

            {"id": "chatcmpl-123", "object": "chat.completion"}
            """
        )
        #expect(observation.status == 200)
        #expect(observation.responseClass == .ok)
        #expect(observation.retryAfter == nil)
        #expect(
            observation[.requests] == ResourceObservation(limit: 10_000, remaining: 9_999, resetAfter: .milliseconds(6))
        )
        // "0s" is not a reset time: OpenAI's values of zero or less mean unknown.
        #expect(observation[.tokens] == ResourceObservation(limit: 2_000_000, remaining: 1_999_977, resetAfter: nil))
        #expect(observation[.inputTokens] == nil)
        #expect(observation[.outputTokens] == nil)
        #expect(observation.resources.count == 2)
    }

    @Test("An OpenAI 429 is a quota response; retry-after-ms is preferred to the coarser retry-after")
    func rateLimited() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/2 429
            date: Wed, 21 May 2025 10:15:30 GMT
            retry-after: 2
            retry-after-ms: 1456
            x-ratelimit-limit-requests: 500
            x-ratelimit-limit-tokens: 30000
            x-ratelimit-remaining-requests: 0
            x-ratelimit-remaining-tokens: 29016
            x-ratelimit-reset-requests: 2m59.56s
            x-ratelimit-reset-tokens: 1.968s
            """
        )
        #expect(observation.status == 429)
        #expect(observation.responseClass == .quota)
        #expect(observation.retryAfter == .milliseconds(1_456))
        #expect(
            observation[.requests] == ResourceObservation(limit: 500, remaining: 0, resetAfter: .milliseconds(179_560)))
        #expect(
            observation[.tokens]
                == ResourceObservation(limit: 30_000, remaining: 29_016, resetAfter: .milliseconds(1_968)))
    }

    @Test("An Azure OpenAI 429 with x-ms-retry-after-ms and only remaining counts")
    func azureRateLimited() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/1.1 429 Too Many Requests
            Content-Length: 345
            Content-Type: application/json
            x-ms-retry-after-ms: 6842
            retry-after: 7
            x-ratelimit-remaining-requests: 0
            x-ratelimit-remaining-tokens: 4000
            x-ms-region: East US
            apim-request-id: 5c4b9f2e-1d2a-4c3b-9e8f-7a6b5c4d3e2f
            Strict-Transport-Security: max-age=31536000; includeSubDomains; preload
            Date: Wed, 21 May 2025 10:15:30 GMT
            """
        )
        #expect(observation.responseClass == .quota)
        #expect(observation.retryAfter == .milliseconds(6_842))
        #expect(observation[.requests] == ResourceObservation(limit: nil, remaining: 0, resetAfter: nil))
        #expect(observation[.tokens] == ResourceObservation(limit: nil, remaining: 4_000, resetAfter: nil))
    }

    @Test("Header names match whatever their case")
    func mixedCaseNames() {
        let observation = ReconcilerFixture.observe(
            """
            X-RateLimit-Limit-Requests: 60
            X-RATELIMIT-REMAINING-REQUESTS: 59
            x-RateLimit-Reset-Requests: 1s
            Retry-After-Ms: 250
            """, status: 429
        )
        #expect(observation[.requests] == ResourceObservation(limit: 60, remaining: 59, resetAfter: .seconds(1)))
        #expect(observation.retryAfter == .milliseconds(250))
    }

    @Test(
        "Go durations as OpenAI writes its resets",
        arguments: [
            ("12ms", Duration.milliseconds(12)),
            ("6m0s", .seconds(360)),
            ("2m59.56s", .milliseconds(179_560)),
            ("23h47m36.648s", .milliseconds(85_656_648)),
            ("1s", .seconds(1)),
            ("0.5s", .milliseconds(500)),
            (".5s", .milliseconds(500)),
            ("1.s", .seconds(1)),
            ("1m30s", .seconds(90)),
            ("1.5h", .seconds(5_400)),
            ("+5s", .seconds(5)),
            ("250us", .microseconds(250)),
            ("250\u{00B5}s", .microseconds(250)),  // micro sign
            ("250\u{03BC}s", .microseconds(250)),  // Greek small letter mu
            ("1500ns", .nanoseconds(1_500)),
            ("1h0m0.000000001s", .seconds(3_600) + .nanoseconds(1)),
            ("  12ms  ", .milliseconds(12)),
            ("3", .seconds(3)),  // plain seconds, as some OpenAI-compatible servers send
            ("2.25", .milliseconds(2_250)),
        ]
    )
    func goDurations(text: String, expected: Duration) {
        let observation = ReconcilerFixture.observe(header: "x-ratelimit-reset-tokens: \(text)")
        #expect(observation[.tokens]?.resetAfter == expected)
    }

    @Test(
        "Resets that are zero, negative or malformed read as unknown, but the resource is still reported",
        arguments: [
            "0s", "0", "0.0s", "0ms", "-5s", "-1", "-1m30s", "", "s", "ms", ".s", "5 s", "5sec", "5S", "1d", "1..5s",
            "5s5", "abc", "1e3s", "9999999999h", "99999999999999999999s", "12ms,", "inf", "nan", "0x10s",
        ]
    )
    func unknownResets(text: String) {
        let observation = ReconcilerFixture.observe(header: "x-ratelimit-reset-requests: \(text)")
        #expect(observation[.requests] == ResourceObservation(limit: nil, remaining: nil, resetAfter: nil))
    }

    @Test(
        "Malformed or negative counts read as unknown",
        arguments: ["-1", "12.5", "abc", "1e3", "+5", "99999999999999999999", "1 000", "0x10", ""]
    )
    func malformedCounts(text: String) {
        let observation = ReconcilerFixture.observe(
            """
            x-ratelimit-limit-tokens: \(text)
            x-ratelimit-remaining-tokens: \(text)
            x-ratelimit-reset-tokens: 30s
            """
        )
        #expect(observation[.tokens] == ResourceObservation(limit: nil, remaining: nil, resetAfter: .seconds(30)))
    }

    @Test("One malformed value does not spoil its neighbours")
    func malformedValueIsIsolated() {
        let observation = ReconcilerFixture.observe(
            """
            x-ratelimit-limit-requests: lots
            x-ratelimit-remaining-requests: 41
            x-ratelimit-reset-requests: soon
            x-ratelimit-limit-tokens: 40000
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: nil, remaining: 41, resetAfter: nil))
        #expect(observation[.tokens] == ResourceObservation(limit: 40_000))
    }

    @Test("retry-after-ms of zero or less is unknown, and the next retry header is used")
    func nonPositiveRetryAfterMilliseconds() {
        let zero = ReconcilerFixture.observe("retry-after-ms: 0\nx-ms-retry-after-ms: 900\nretry-after: 3", status: 429)
        #expect(zero.retryAfter == .milliseconds(900))
        let negative = ReconcilerFixture.observe("retry-after-ms: -20\nretry-after: 3", status: 429)
        #expect(negative.retryAfter == .seconds(3))
        let malformed = ReconcilerFixture.observe("retry-after-ms: 20 ms\nx-ms-retry-after-ms: -1", status: 429)
        #expect(malformed.retryAfter == nil)
        let fractional = ReconcilerFixture.observe("retry-after-ms: 1456.25", status: 429)
        #expect(fractional.retryAfter == .microseconds(1_456_250))
    }
}
