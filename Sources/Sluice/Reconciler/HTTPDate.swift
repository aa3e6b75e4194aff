/// HTTP-dates (RFC 9110, section 5.6.7), as `Date` and `Retry-After` carry them, parsed by hand so that no
/// Foundation date formatter runs per response.
///
/// Accepts the preferred IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms that RFC 9110
/// still asks recipients to read: RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`, two-digit years 70-99 meaning 19xx
/// and 00-69 meaning 20xx) and asctime (`Sun Nov  6 08:49:37 1994`). Day and month names are matched without
/// regard to case; the weekday must be a real weekday name but is not checked against the date. Anything else is
/// nil.
enum HTTPDate {
    static func parse(_ text: Substring) -> UnixInstant? {
        let parts = text.split(separator: " ")
        switch parts.count {
        case 6: return imfFixdate(parts)
        case 4: return rfc850(parts)
        case 5: return asctime(parts)
        default: return nil
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    private static func imfFixdate(_ parts: [Substring]) -> UnixInstant? {
        guard parts[0].last == ",", shortDayNames.contains(where: { matches(parts[0].dropLast(), $0) }),
            let day = digits(parts[1], count: 1...2), let month = monthNumber(parts[2]),
            let year = digits(parts[3], count: 4...4), isGMT(parts[5])
        else { return nil }
        return instant(year: year, month: month, day: day, time: parts[4])
    }

    /// `Sunday, 06-Nov-94 08:49:37 GMT`
    private static func rfc850(_ parts: [Substring]) -> UnixInstant? {
        let date = parts[1].split(separator: "-", omittingEmptySubsequences: false)
        guard parts[0].last == ",", longDayNames.contains(where: { matches(parts[0].dropLast(), $0) }),
            date.count == 3, let day = digits(date[0], count: 1...2), let month = monthNumber(date[1]),
            let shortYear = digits(date[2], count: 2...2), isGMT(parts[3])
        else { return nil }
        return instant(
            year: shortYear < 70 ? 2000 + shortYear : 1900 + shortYear, month: month, day: day, time: parts[2])
    }

    /// `Sun Nov  6 08:49:37 1994`
    private static func asctime(_ parts: [Substring]) -> UnixInstant? {
        guard shortDayNames.contains(where: { matches(parts[0], $0) }), let month = monthNumber(parts[1]),
            let day = digits(parts[2], count: 1...2), let year = digits(parts[4], count: 4...4)
        else { return nil }
        return instant(year: year, month: month, day: day, time: parts[3])
    }

    private static func instant(year: Int64, month: Int64, day: Int64, time: Substring) -> UnixInstant? {
        let fields = time.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, let hour = digits(fields[0], count: 2...2),
            let minute = digits(fields[1], count: 2...2), let second = digits(fields[2], count: 2...2)
        else { return nil }
        return CivilTime.instant(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    static func digits(_ text: Substring, count: ClosedRange<Int>) -> Int64? {
        guard count.contains(text.utf8.count), text.utf8.allSatisfy(HeaderNumbers.isDigit) else { return nil }
        return Int64(text)
    }

    private static func monthNumber(_ name: Substring) -> Int64? {
        monthNames.firstIndex { matches(name, $0) }.map { Int64($0) + 1 }
    }

    private static func isGMT(_ zone: Substring) -> Bool {
        matches(zone, "GMT") || matches(zone, "UTC")
    }

    private static func matches(_ text: Substring, _ name: String) -> Bool {
        text.utf8.count == name.utf8.count && text.lowercased() == name.lowercased()
    }

    private static let shortDayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let longDayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    private static let monthNames = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
}

/// RFC 3339 timestamps, as Anthropic writes its `anthropic-ratelimit-*-reset` headers: `2025-05-21T10:15:31Z`,
/// `2025-05-21T10:15:31.123456789Z`, `2025-05-21T12:15:31+02:00`. `T` and `Z` may be lowercase, and a space may
/// stand for `T` (RFC 3339, section 5.6 note). Fractions keep nanosecond precision; further digits are ignored.
/// The offset must have its colon (`+0200` is not RFC 3339). Anything else is nil.
enum RFC3339Timestamp {
    static func parse(_ text: Substring) -> UnixInstant? {
        var rest = text.utf8
        guard let year = take(&rest, digits: 4), take(&rest, "-"), let month = take(&rest, digits: 2), take(&rest, "-"),
            let day = take(&rest, digits: 2), let separator = rest.popFirst(),
            separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == UInt8(ascii: " "),
            let hour = take(&rest, digits: 2), take(&rest, ":"), let minute = take(&rest, digits: 2), take(&rest, ":"),
            let second = take(&rest, digits: 2)
        else { return nil }

        var nanosecond: Int64 = 0
        if take(&rest, ".") {
            var count = 0
            while let byte = rest.first, HeaderNumbers.isDigit(byte) {
                rest.removeFirst()
                count += 1
                if count <= 9 { nanosecond = nanosecond * 10 + Int64(byte - UInt8(ascii: "0")) }
            }
            guard count > 0 else { return nil }
            for _ in count..<max(count, 9) { nanosecond *= 10 }
        }

        var offset: Int64 = 0
        switch rest.popFirst() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            break
        case let sign? where sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"):
            guard let hours = take(&rest, digits: 2), hours <= 23, take(&rest, ":"),
                let minutes = take(&rest, digits: 2),
                minutes <= 59
            else { return nil }
            offset = (hours * 3_600 + minutes * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
        default:
            return nil
        }
        guard rest.isEmpty else { return nil }
        return CivilTime.instant(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second, nanosecond: nanosecond,
            offsetSeconds: offset
        )
    }

    private static func take(_ rest: inout Substring.UTF8View, digits count: Int) -> Int64? {
        var value: Int64 = 0
        for _ in 0..<count {
            guard let byte = rest.first, HeaderNumbers.isDigit(byte) else { return nil }
            rest.removeFirst()
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func take(_ rest: inout Substring.UTF8View, _ character: Unicode.Scalar) -> Bool {
        guard rest.first == UInt8(ascii: character) else { return false }
        rest.removeFirst()
        return true
    }
}
