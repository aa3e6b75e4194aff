import HTTPTypes
import Sluice
import Testing

/// What a response means for the fleet: ok, quota, overload or do-not-retry.
@Suite("Reconciler: response classes")
struct ReconcilerClassificationTests {
    @Test(
        "Statuses alone",
        arguments: [
            (200, ResponseClass.ok), (201, .ok), (204, .ok), (304, .ok), (100, .ok),
            (429, .quota),
            (500, .overload), (502, .overload), (503, .overload), (504, .overload), (529, .overload), (408, .overload),
            (400, .doNotRetry), (401, .doNotRetry), (403, .doNotRetry), (404, .doNotRetry), (409, .doNotRetry),
            (413, .doNotRetry), (422, .doNotRetry),
            (0, .overload), (600, .overload),
        ]
    )
    func statuses(status: Int, expected: ResponseClass) {
        #expect(ObservationParser().observe(status: status, headers: [:]).responseClass == expected)
        #expect(ResponseClass(status: status) == expected)
    }

    @Test("A request without a response is an overload with no status")
    func noResponse() {
        #expect(ProviderObservation.noResponse.status == nil)
        #expect(ProviderObservation.noResponse.responseClass == .overload)
        #expect(ResponseClass(status: nil) == .overload)
    }

    @Test("A 429 asking to wait more than an hour is do-not-retry: a daily or billing quota is used up")
    func longWaits() {
        #expect(ReconcilerFixture.observe("Retry-After: 7200", status: 429).responseClass == .doNotRetry)
        #expect(ReconcilerFixture.observe("Retry-After: 3600", status: 429).responseClass == .quota)
        #expect(ReconcilerFixture.observe("retry-after-ms: 59000", status: 429).responseClass == .quota)
        // Without a retry-after, the reset of an exhausted resource tells the wait.
        let daily = ReconcilerFixture.observe(
            """
            x-ratelimit-limit-requests: 200
            x-ratelimit-remaining-requests: 0
            x-ratelimit-reset-requests: 23h47m36.648s
            x-ratelimit-remaining-tokens: 35000
            x-ratelimit-reset-tokens: 2s
            """, status: 429
        )
        #expect(daily.responseClass == .doNotRetry)
        // A long reset of a resource that is not exhausted says nothing about the wait.
        let notExhausted = ReconcilerFixture.observe(
            "x-ratelimit-remaining-requests: 3\nx-ratelimit-reset-requests: 23h47m36.648s", status: 429
        )
        #expect(notExhausted.responseClass == .quota)
        // A long retry-after on an overload is still an overload.
        #expect(ReconcilerFixture.observe("Retry-After: 86400", status: 503).responseClass == .overload)
    }

    @Test("The longest retryable wait is configurable")
    func configurableWait() {
        let strict = ObservationParser.Configuration(maximumRetryableWait: .seconds(30))
        #expect(
            ReconcilerFixture.observe("Retry-After: 31", status: 429, configuration: strict).responseClass
                == .doNotRetry)
        #expect(
            ReconcilerFixture.observe("Retry-After: 30", status: 429, configuration: strict).responseClass == .quota)
    }

    @Test("Families can be chosen; others are not read")
    func chosenFamilies() {
        let block = """
            x-ratelimit-remaining-requests: 5
            anthropic-ratelimit-requests-remaining: 7
            RateLimit: "default";r=9
            """
        #expect(ReconcilerFixture.observe(block)[.requests]?.remaining == 7)  // Anthropic first by default
        #expect(ReconcilerFixture.observe(block, configuration: .init(families: [.openAI]))[.requests]?.remaining == 5)
        #expect(
            ReconcilerFixture.observe(block, configuration: .init(families: [.ietf, .openAI]))[.requests]?.remaining
                == 9)
        #expect(ReconcilerFixture.observe(block, configuration: .init(families: [])).resources.isEmpty)
        #expect(HeaderFamily.all == [.anthropic, .openAI, .ietf, .gitHub])
    }

    @Test("An observation reads the same through the convenience initializer")
    func convenienceInitializer() {
        let headers: HTTPFields = [
            HTTPField.Name("X-RateLimit-Remaining-Tokens")!: "12", .retryAfter: "3",
        ]
        let observation = ProviderObservation(status: 429, headers: headers)
        #expect(observation == ObservationParser().observe(status: 429, headers: headers))
        #expect(observation.retryAfter == .seconds(3))
        #expect(observation[.tokens]?.remaining == 12)
    }
}
