import HTTPTypes
import Sluice

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Shared helpers of the reconciler's tests: header blocks written as a person pastes them, and a fixed clock.
enum ReconcilerFixture {
    /// 2025-05-21T10:15:30Z, the `Date` of most blocks below.
    static let responseTime = Date(timeIntervalSince1970: 1_747_822_530)

    /// A local clock that disagrees with every `Date` header below by a day, so that a test can tell which of the
    /// two an absolute time was measured from.
    static let skewedClock = Date(timeIntervalSince1970: 1_747_822_530 - 86_400)

    /// Reads `block` as `sluice observe` does: the block's status line unless `status` is given.
    static func observe(
        _ block: String, status: Int? = nil, now: Date = skewedClock,
        configuration: ObservationParser.Configuration = .init()
    ) -> ProviderObservation {
        let parsed = HeaderBlock(parsing: block)
        return ObservationParser(configuration: configuration).observe(
            status: status ?? parsed.status ?? 200, headers: parsed.headers, now: now
        )
    }

    /// The observation of a single header line on a 200 response with a `Date` of ``responseTime``.
    static func observe(header line: String, status: Int = 200) -> ProviderObservation {
        observe("Date: Wed, 21 May 2025 10:15:30 GMT\n\(line)", status: status)
    }
}

extension HTTPFields {
    /// Tests' shorthand for `self[HTTPField.Name(name)!]`: the values of the field `name` (any case) joined with
    /// ", ", or nil if there is none.
    subscript(_ name: String) -> String? { self[HTTPField.Name(name)!] }
}
