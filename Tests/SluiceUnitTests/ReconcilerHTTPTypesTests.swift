import HTTPTypes
import Sluice
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// swift-http-types: an `HTTPResponse` or `HTTPFields` (Hummingbird's, swift-openapi-runtime's) read as it is, with the
/// same result as the same header block read as text.
@Suite("Reconciler: swift-http-types responses")
struct ReconcilerHTTPTypesTests {
    /// The fields of `block` ("Name: value" lines), in order, as an HTTP client library would hand them over.
    static func fields(_ block: String) -> HTTPFields {
        HTTPFields(
            block.split(separator: "\n").map { line in
                let colon = line.firstIndex(of: ":")!
                let value = line[line.index(after: colon)...].drop { $0 == " " }
                return HTTPField(name: HTTPField.Name(String(line[..<colon]))!, value: String(value))
            })
    }

    static let openAI = """
        date: Wed, 21 May 2025 10:15:30 GMT
        content-type: application/json
        openai-processing-ms: 412
        X-RateLimit-Limit-Requests: 10000
        X-RateLimit-Limit-Tokens: 2000000
        x-ratelimit-remaining-requests: 9999
        x-ratelimit-remaining-tokens: 1999439
        x-ratelimit-reset-requests: 6ms
        x-ratelimit-reset-tokens: 16ms
        x-request-id: req_5b8c0a3f2e
        """

    @Test("An OpenAI HTTPResponse gives requests and tokens, names matched whatever their case")
    func openAIResponse() {
        let response = HTTPResponse(status: .ok, headerFields: Self.fields(Self.openAI))
        let observation = ProviderObservation(response, now: ReconcilerFixture.skewedClock)
        #expect(observation.status == 200)
        #expect(observation.responseClass == .ok)
        #expect(observation.retryAfter == nil)
        #expect(
            observation[.requests] == ResourceObservation(limit: 10_000, remaining: 9_999, resetAfter: .milliseconds(6))
        )
        #expect(
            observation[.tokens]
                == ResourceObservation(limit: 2_000_000, remaining: 1_999_439, resetAfter: .milliseconds(16)))
        #expect(observation.resources.count == 2)
        #expect(observation == ReconcilerFixture.observe(Self.openAI, status: 200))
    }

    @Test("An Anthropic 429 with retry-after is a quota response, resets measured from its Date")
    func anthropicRateLimited() {
        let block = """
            date: Wed, 21 May 2025 10:15:30 GMT
            retry-after: 12
            anthropic-ratelimit-requests-limit: 4000
            anthropic-ratelimit-requests-remaining: 0
            anthropic-ratelimit-requests-reset: 2025-05-21T10:15:42Z
            anthropic-ratelimit-input-tokens-limit: 400000
            anthropic-ratelimit-input-tokens-remaining: 12000
            anthropic-ratelimit-input-tokens-reset: 2025-05-21T10:15:35Z
            anthropic-ratelimit-output-tokens-limit: 80000
            anthropic-ratelimit-output-tokens-remaining: 80000
            anthropic-ratelimit-output-tokens-reset: 2025-05-21T10:15:30Z
            request-id: req_011CPNzVxm3dYzvHdGDgzkYq
            x-should-retry: true
            """
        let observation = ProviderObservation(
            status: .tooManyRequests, headers: Self.fields(block), now: ReconcilerFixture.skewedClock)
        #expect(observation.status == 429)
        #expect(observation.responseClass == .quota)
        #expect(observation.retryAfter == .seconds(12))
        #expect(observation[.requests] == ResourceObservation(limit: 4_000, remaining: 0, resetAfter: .seconds(12)))
        #expect(
            observation[.inputTokens] == ResourceObservation(limit: 400_000, remaining: 12_000, resetAfter: .seconds(5))
        )
        #expect(observation[.outputTokens] == ResourceObservation(limit: 80_000, remaining: 80_000, resetAfter: .zero))
        #expect(observation == ReconcilerFixture.observe(block, status: 429))
    }

    @Test("A 503 with an HTTP-date Retry-After is an overload, waiting until that date")
    func retryAfterDate() {
        let headers: HTTPFields = [
            .retryAfter: "Wed, 21 May 2025 10:16:00 GMT", HTTPField.Name("date")!: "Wed, 21 May 2025 10:15:30 GMT",
        ]
        let observation = ObservationParser().observe(
            status: .serviceUnavailable, headers: headers, now: ReconcilerFixture.skewedClock)
        #expect(observation.responseClass == .overload)
        #expect(observation.retryAfter == .seconds(30))
    }

    @Test("IETF RateLimit and RateLimit-Policy: repeated fields keep every value")
    func ietfFields() {
        let block = """
            Date: Wed, 21 May 2025 10:15:30 GMT
            RateLimit-Policy: "tpm";q=30000;qu="tokens";w=60, "rpm";q=500;w=60
            RateLimit-Policy: "daily";q=10000;w=86400
            RateLimit: "tpm";r=12000;t=20, "rpm";r=499;t=1
            RateLimit: "daily";r=120;t=3600
            """
        let fields = Self.fields(block)
        #expect(fields[values: HTTPField.Name("ratelimit-policy")!].count == 2)
        let observation = ObservationParser().observe(
            HTTPResponse(status: .ok, headerFields: fields), now: ReconcilerFixture.skewedClock)
        #expect(observation[.tokens] == ResourceObservation(limit: 30_000, remaining: 12_000, resetAfter: .seconds(20)))
        // Of the two request policies, the one with the least remaining binds.
        #expect(
            observation[.requests] == ResourceObservation(limit: 10_000, remaining: 120, resetAfter: .seconds(3_600)))
        #expect(observation == ReconcilerFixture.observe(block, status: 200))
    }

    @Test("An Int status with HTTPFields, or with (name, value) pairs as AsyncHTTPClient has them, reads the same")
    func intStatusAndPairs() {
        let fields: HTTPFields = [.retryAfter: "2", HTTPField.Name("x-ratelimit-remaining-requests")!: "0"]
        let observation = ProviderObservation(status: 429, headers: fields)
        #expect(observation == ProviderObservation(status: .tooManyRequests, headers: fields))
        #expect(observation.retryAfter == .seconds(2))
        #expect(observation[.requests]?.remaining == 0)

        let pairs = [(name: "Retry-After", value: " 2\t"), (name: "X-RateLimit-Remaining-Requests", value: "0")]
        #expect(ProviderObservation(status: 429, headers: pairs) == observation)
        #expect(ObservationParser().observe(status: 429, headers: pairs) == observation)
    }

    @Test("Pairs whose name is not a valid field name are skipped, pseudo-header names too, without trapping")
    func invalidPairNames() {
        let pairs = [
            (name: ":status", value: "200"), (name: "bad name", value: "1"), (name: "", value: "1"),
            (name: " retry-after-ms", value: "1"), (name: "retry-after", value: "7"),
            (name: "x-ratelimit-remaining-requests", value: "3\r\n"),
        ]
        let observation = ProviderObservation(status: 429, headers: pairs)
        #expect(observation.retryAfter == .seconds(7))
        #expect(observation[.requests]?.remaining == 3)
    }

    @Test("A repeated field counts with its first value; a field of the IETF drafts combines them in order")
    func repeatedFields() {
        let fields: HTTPFields = [
            .retryAfter: "3", .retryAfter: "9",
            HTTPField.Name("RateLimit-Policy")!: #""rpm";q=100;w=60"#,
            HTTPField.Name("x-request-id")!: "req_1",
            HTTPField.Name("ratelimit-policy")!: #""tpm";q=5000;qu="tokens";w=60"#,
        ]
        let observation = ProviderObservation(status: 429, headers: fields)
        #expect(observation.retryAfter == .seconds(3))
        #expect(observation[.requests] == ResourceObservation(limit: 100))
        #expect(observation[.tokens] == ResourceObservation(limit: 5_000))
    }

    @Test("Values that keep spaces and tabs around them (a lenient HTTPField) read as if trimmed")
    func untrimmedValues() {
        let fields = HTTPFields([
            HTTPField(name: .retryAfter, lenientValue: Array(" \t4 ".utf8)),
            HTTPField(name: HTTPField.Name("ratelimit")!, lenientValue: Array(#" "rpm";r=9;t=2 "#.utf8)),
            HTTPField(name: HTTPField.Name("ratelimit-policy")!, lenientValue: Array(#"  "rpm";q=10;w=60"#.utf8)),
        ])
        #expect(fields[0].value == " \t4 ")
        let observation = ProviderObservation(status: 429, headers: fields)
        #expect(observation.retryAfter == .seconds(4))
        #expect(observation[.requests] == ResourceObservation(limit: 10, remaining: 9, resetAfter: .seconds(2)))
    }
}
