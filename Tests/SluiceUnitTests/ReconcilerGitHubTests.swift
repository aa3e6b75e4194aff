import Sluice
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// GitHub-style `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` with epoch resets.
@Suite("Reconciler: GitHub-style headers")
struct ReconcilerGitHubTests {
    /// Date: Mon, 01 Jul 2013 17:27:06 GMT is epoch 1372699626.
    static func block(reset: String) -> String {
        """
        HTTP/2 200
        date: Mon, 01 Jul 2013 17:27:06 GMT
        content-type: application/json; charset=utf-8
        x-github-media-type: github.v3; format=json
        x-ratelimit-limit: 60
        x-ratelimit-remaining: 56
        x-ratelimit-reset: \(reset)
        x-ratelimit-used: 4
        x-ratelimit-resource: core
        """
    }

    @Test("An epoch reset in seconds counts from the Date header")
    func epochSeconds() {
        let observation = ReconcilerFixture.observe(Self.block(reset: "1372700873"))
        #expect(observation.responseClass == .ok)
        #expect(
            observation.resources == [
                .requests: ResourceObservation(limit: 60, remaining: 56, resetAfter: .seconds(1_247))
            ])
    }

    @Test(
        "Epoch seconds, fractional epoch seconds, epoch milliseconds above 10^12, and small numbers as seconds",
        arguments: [
            ("1372700873", Duration.seconds(1_247)),
            ("1372700873.5", .milliseconds(1_247_500)),
            ("1372700873000", .seconds(1_247)),
            ("1372700873250", .milliseconds(1_247_250)),
            ("1372699626", .zero),
            ("1000000000", .zero),  // 2001: long past
            ("1372600000", .zero),
            ("60", .seconds(60)),  // too small for an epoch: seconds from now
            ("0", .zero),
            ("999999999", .seconds(999_999_999)),
        ]
    )
    func resetNumbers(text: String, expected: Duration) {
        #expect(ReconcilerFixture.observe(Self.block(reset: text))[.requests]?.resetAfter == expected)
    }

    @Test("Malformed resets are unknown", arguments: ["-1", "soon", "1372700873s", "1e12", "0x51d1b749", "", "1,5"])
    func malformedResets(text: String) {
        let observation = ReconcilerFixture.observe(Self.block(reset: text))
        #expect(observation[.requests] == ResourceObservation(limit: 60, remaining: 56, resetAfter: nil))
    }

    @Test("Without a Date header, an epoch reset counts from the caller's clock")
    func withoutDateHeader() {
        let now = Date(timeIntervalSince1970: 1_372_700_000)
        let observation = ReconcilerFixture.observe("X-RateLimit-Reset: 1372700873", now: now)
        #expect(observation[.requests]?.resetAfter == .seconds(873))
    }

    @Test("A 403 with nothing remaining is GitHub's rate limit, a quota response; other 403s are final")
    func forbiddenRateLimit() {
        let limited = ReconcilerFixture.observe(
            """
            HTTP/2 403
            date: Mon, 01 Jul 2013 17:27:06 GMT
            x-ratelimit-limit: 60
            x-ratelimit-remaining: 0
            x-ratelimit-reset: 1372700873
            """
        )
        #expect(limited.responseClass == .quota)
        let secondary = ReconcilerFixture.observe("HTTP/2 403\nretry-after: 60")
        #expect(secondary.responseClass == .quota)
        #expect(secondary.retryAfter == .seconds(60))
        let forbidden = ReconcilerFixture.observe("HTTP/2 403\nx-ratelimit-remaining: 4999")
        #expect(forbidden.responseClass == .doNotRetry)
        let onlyOpenAI = ReconcilerFixture.observe(
            "HTTP/2 403\nx-ratelimit-remaining: 0",
            configuration: .init(families: [.openAI])
        )
        #expect(onlyOpenAI.responseClass == .doNotRetry)
    }

    @Test("OpenAI's x-ratelimit-reset-requests is not GitHub's x-ratelimit-reset")
    func nameClash() {
        let openAI = ReconcilerFixture.observe("x-ratelimit-reset-requests: 20s\nx-ratelimit-remaining-requests: 3")
        #expect(
            openAI.resources == [.requests: ResourceObservation(limit: nil, remaining: 3, resetAfter: .seconds(20))])
        let gitHub = ReconcilerFixture.observe(Self.block(reset: "1372700873"))
        #expect(gitHub[.tokens] == nil)
        // When both are present, OpenAI's own headers describe requests.
        let both = ReconcilerFixture.observe(Self.block(reset: "1372700873") + "\nx-ratelimit-limit-requests: 500")
        #expect(both[.requests] == ResourceObservation(limit: 500, remaining: nil, resetAfter: nil))
        let gitHubOnly = ReconcilerFixture.observe(
            Self.block(reset: "1372700873") + "\nx-ratelimit-limit-requests: 500",
            configuration: .init(families: [.gitHub])
        )
        #expect(gitHubOnly[.requests] == ResourceObservation(limit: 60, remaining: 56, resetAfter: .seconds(1_247)))
    }
}
