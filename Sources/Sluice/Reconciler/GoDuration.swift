/// Go's duration syntax, as OpenAI and Azure OpenAI write their `x-ratelimit-reset-*` headers: a sequence of
/// decimal numbers, each with a unit, such as `12ms`, `6m0s`, `2m59.56s`, `23h47m36.648s`, `1s`, `0.5s` or `1.5µs`.
///
/// This follows Go's `time.ParseDuration`: units are `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m` and
/// `h`; a leading `+` or `-` is allowed; `"0"` is the only number without a unit. Anything else, including values
/// beyond about 292 years, is malformed and gives nil.
enum GoDuration {
    static func parse(_ text: Substring) -> Duration? {
        var rest = text.utf8
        var negative = false
        if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
            negative = sign == UInt8(ascii: "-")
            rest.removeFirst()
        }
        if rest.elementsEqual("0".utf8) { return .zero }
        guard !rest.isEmpty else { return nil }

        var total: UInt64 = 0
        while !rest.isEmpty {
            guard let first = rest.first, first == UInt8(ascii: ".") || HeaderNumbers.isDigit(first) else { return nil }
            // Read the number in nanoseconds first; the unit comes after it.
            var number = rest
            guard HeaderNumbers.decimal(&number, unitNanoseconds: 1) != nil else { return nil }
            let digits = rest[rest.startIndex..<number.startIndex]
            var unitEnd = number.startIndex
            while unitEnd != number.endIndex, number[unitEnd] != UInt8(ascii: "."),
                !HeaderNumbers.isDigit(number[unitEnd])
            {
                unitEnd = number.index(after: unitEnd)
            }
            guard let unit = unitNanoseconds(number[number.startIndex..<unitEnd]) else { return nil }
            var digitsView = digits
            guard let value = HeaderNumbers.decimal(&digitsView, unitNanoseconds: unit) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(value)
            guard !overflow, sum <= UInt64(Int64.max) else { return nil }
            total = sum
            rest = number[unitEnd...]
        }
        let nanoseconds = Int64(total)
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    private static let units: [(name: String, nanoseconds: UInt64)] = [
        ("ns", 1), ("us", 1_000), ("\u{00B5}s", 1_000), ("\u{03BC}s", 1_000), ("ms", 1_000_000),
        ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    private static func unitNanoseconds(_ name: Substring.UTF8View) -> UInt64? {
        guard !name.isEmpty else { return nil }  // "12" lacks a unit
        return units.first { $0.name.utf8.elementsEqual(name) }?.nanoseconds
    }
}
