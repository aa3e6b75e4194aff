#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A point in time as POSIX time: seconds and nanoseconds since 1970-01-01T00:00:00Z, leap seconds ignored.
///
/// The reconciler's parsers turn every absolute time they read (RFC 3339, HTTP-dates, epoch numbers) into one of
/// these, and then into a duration relative to the response's `Date` header or the caller's clock.
struct UnixInstant: Hashable, Comparable, Sendable {
    /// Whole seconds since the epoch (negative before 1970).
    var seconds: Int64
    /// The fraction of the second, always in `0..<1_000_000_000`.
    var nanoseconds: Int64

    init(seconds: Int64, nanoseconds: Int64 = 0) {
        self.seconds = seconds + nanoseconds / 1_000_000_000
        self.nanoseconds = nanoseconds % 1_000_000_000
        if self.nanoseconds < 0 {
            self.seconds -= 1
            self.nanoseconds += 1_000_000_000
        }
    }

    /// The instant `duration` after the epoch; nil for a negative duration.
    init?(sinceEpoch duration: Duration) {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return nil }
        self.init(seconds: seconds, nanoseconds: attoseconds / 1_000_000_000)
    }

    /// The instant of a `Date`; nil for dates no HTTP header could name (not finite, or beyond ±30 million years).
    init?(_ date: Date) {
        let interval = date.timeIntervalSince1970
        guard interval.isFinite, abs(interval) < 1e15 else { return nil }
        let whole = interval.rounded(.down)
        self.init(seconds: Int64(whole), nanoseconds: Int64(((interval - whole) * 1e9).rounded()))
    }

    /// The signed time from `other` to `self`.
    func duration(since other: UnixInstant) -> Duration {
        .seconds(seconds - other.seconds) + .nanoseconds(nanoseconds - other.nanoseconds)
    }

    static func < (lhs: UnixInstant, rhs: UnixInstant) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }
}

/// Proleptic Gregorian calendar arithmetic in UTC, without Foundation's calendars or formatters.
enum CivilTime {
    /// The instant of a UTC wall-clock time, or nil if any field is out of range (month 13, February 30, 24:00, ...).
    /// A leap second (`second == 60`) is accepted and lands on the first second of the next minute, as POSIX time
    /// has no leap seconds.
    static func instant(
        year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64, nanosecond: Int64 = 0,
        offsetSeconds: Int64 = 0
    ) -> UnixInstant? {
        guard (0...9999).contains(year), (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second),
            (0..<1_000_000_000).contains(nanosecond)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offsetSeconds
        return UnixInstant(seconds: seconds, nanoseconds: nanosecond)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = (month + 9) % 12  // March is 0
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
