import Sluice
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `Retry-After` as delay-seconds or an HTTP-date in its three forms, measured from the `Date` header.
@Suite("Reconciler: Retry-After")
struct ReconcilerRetryAfterTests {
    static func retryAfter(_ value: String, date: String = "Wed, 21 May 2025 10:15:30 GMT") -> Duration? {
        ReconcilerFixture.observe("HTTP/1.1 429 Too Many Requests\nDate: \(date)\nRetry-After: \(value)").retryAfter
    }

    @Test(
        "Delay-seconds and HTTP-dates",
        arguments: [
            ("120", Duration.seconds(120)),
            ("0", .zero),  // retry now
            ("1.5", .milliseconds(1_500)),
            ("Wed, 21 May 2025 10:16:00 GMT", .seconds(30)),  // IMF-fixdate
            ("wed, 21 may 2025 10:16:00 gmt", .seconds(30)),
            ("Wednesday, 21-May-25 10:16:00 GMT", .seconds(30)),  // RFC 850
            ("Wed May 21 10:16:00 2025", .seconds(30)),  // asctime
            ("Wed May  21 10:16:00 2025", .seconds(30)),
            ("Wed, 21 May 2025 10:15:00 GMT", .zero),  // already past: retry now
            ("Thu, 22 May 2025 10:15:30 GMT", .seconds(86_400)),
        ]
    )
    func validValues(text: String, expected: Duration) {
        #expect(Self.retryAfter(text) == expected)
    }

    @Test(
        "Malformed values are dropped",
        arguments: [
            "-5", "soon", "5s", "1e3", "", "Wed, 32 May 2025 10:16:00 GMT", "Wed, 21 May 2025 25:00:00 GMT",
            "Wed, 21 May 2025 10:16:00 PST", "Wed, 21 Mai 2025 10:16:00 GMT", "Xyz, 21 May 2025 10:16:00 GMT",
            "Wed, 21 May 25 10:16:00 GMT", "Wednesday, 21-May-2025 10:16:00", "2025-05-21T10:16:00Z",
            "Wed, 21 May 2025 10:16 GMT", "Wed May 21 10:16:00", "Wed, 29 Feb 2025 10:16:00 GMT",
        ]
    )
    func malformedValues(text: String) {
        #expect(Self.retryAfter(text) == nil)
    }

    @Test("The Date header sets the reference, in any of the three forms")
    func dateHeaderForms() {
        #expect(Self.retryAfter("Sun, 06 Nov 1994 08:50:37 GMT", date: "Sun, 06 Nov 1994 08:49:37 GMT") == .seconds(60))
        #expect(
            Self.retryAfter("Sun, 06 Nov 1994 08:50:37 GMT", date: "Sunday, 06-Nov-94 08:49:37 GMT") == .seconds(60))
        #expect(Self.retryAfter("Sun, 06 Nov 1994 08:50:37 GMT", date: "Sun Nov  6 08:49:37 1994") == .seconds(60))
        // RFC 850 two-digit years below 70 are in this century.
        #expect(
            Self.retryAfter("Wednesday, 21-May-25 10:16:00 GMT", date: "Wed, 21 May 2025 10:15:00 GMT") == .seconds(60))
    }

    @Test("Without a Date header, an HTTP-date counts from the caller's clock; delay-seconds need no clock")
    func withoutDateHeader() {
        let now = Date(timeIntervalSince1970: 1_747_822_530)  // Wed, 21 May 2025 10:15:30 GMT
        let dated = ReconcilerFixture.observe("Retry-After: Wed, 21 May 2025 10:15:45 GMT", status: 503, now: now)
        #expect(dated.retryAfter == .seconds(15))
        let seconds = ReconcilerFixture.observe("Retry-After: 15", status: 503)
        #expect(seconds.retryAfter == .seconds(15))
    }

    @Test("A 503 with Retry-After stays an overload and keeps its retry-after")
    func serviceUnavailable() {
        let observation = ReconcilerFixture.observe("HTTP/1.1 503 Service Unavailable\nRetry-After: 30")
        #expect(observation.responseClass == .overload)
        #expect(observation.retryAfter == .seconds(30))
    }
}
