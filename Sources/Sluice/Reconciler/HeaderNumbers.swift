/// Strict readers for the numbers that rate-limit headers carry. Every reader returns nil for anything it does not
/// fully understand (signs where none belong, exponents, `inf`, trailing garbage, overflow), so that a malformed
/// value is dropped rather than misread.
enum HeaderNumbers {
    static let nanosecondsPerSecond: UInt64 = 1_000_000_000
    static let nanosecondsPerMillisecond: UInt64 = 1_000_000

    /// A count such as a limit or a remaining amount: ASCII digits only (`"42"`), no sign, no fraction.
    static func count(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy(isDigit) else { return nil }
        return Int(text)  // nil on overflow
    }

    /// A non-negative decimal number of `unit`s, exact to the nanosecond: `"12"`, `"1.5"`, `".5"`, `"2."`.
    static func duration(_ text: Substring, unitNanoseconds unit: UInt64) -> Duration? {
        var rest = text.utf8
        guard let nanoseconds = decimal(&rest, unitNanoseconds: unit), rest.isEmpty else { return nil }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// Reads one decimal number from the front of `rest` and returns it times `unit` in nanoseconds, as Go's
    /// `time.ParseDuration` does for one component. Nil if there is no digit at all or the result exceeds
    /// `Int64.max` nanoseconds (about 292 years).
    static func decimal(_ rest: inout Substring.UTF8View, unitNanoseconds unit: UInt64) -> UInt64? {
        let limit = UInt64(Int64.max)
        var whole: UInt64 = 0
        var sawDigit = false
        while let byte = rest.first, isDigit(byte) {
            let (shifted, overflow1) = whole.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2, next <= limit else { return nil }
            whole = next
            sawDigit = true
            rest.removeFirst()
        }
        var fraction: UInt64 = 0
        var scale: UInt64 = 1
        if rest.first == UInt8(ascii: ".") {
            rest.removeFirst()
            while let byte = rest.first, isDigit(byte) {
                sawDigit = true
                rest.removeFirst()
                // Digits beyond nanosecond precision of the largest unit are read and ignored.
                guard scale < 1_000_000_000_000_000_000 / 10 else { continue }
                fraction = fraction * 10 + UInt64(byte - UInt8(ascii: "0"))
                scale *= 10
            }
        }
        guard sawDigit else { return nil }
        let (wholeNanoseconds, overflow) = whole.multipliedReportingOverflow(by: unit)
        guard !overflow, wholeNanoseconds <= limit else { return nil }
        // fraction / scale * unit, computed without losing precision and without overflowing.
        let fractionNanoseconds = UInt64((Double(fraction) * (Double(unit) / Double(scale))).rounded(.down))
        let (total, overflow2) = wholeNanoseconds.addingReportingOverflow(fractionNanoseconds)
        guard !overflow2, total <= limit else { return nil }
        return total
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so that a positive duration never reads as zero, clamped to `Int64`.
    var millisecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        var milliseconds = fromSeconds + attoseconds / attosecondsPerMillisecond
        if attoseconds % attosecondsPerMillisecond > 0 { milliseconds += 1 }
        return milliseconds
    }
}
