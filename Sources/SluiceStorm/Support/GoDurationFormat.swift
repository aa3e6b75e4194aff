/// Formats a duration the way Go's `time.Duration.String()` does, as OpenAI's `x-ratelimit-reset-*` headers
/// carry it: `0s`, `12ms`, `1.5ms`, `340µs`, `1s`, `2m59.56s`, `6m0s`, `23h47m36.648s`.
public enum GoDurationFormat {
    public static func string(milliseconds: Double) -> String {
        let nanos = Int64((max(0, milliseconds) * 1_000_000).rounded())
        if nanos == 0 { return "0s" }
        if nanos < 1_000 { return "\(nanos)ns" }
        if nanos < 1_000_000 { return decimal(nanos, unit: 1_000) + "µs" }
        if nanos < 1_000_000_000 { return decimal(nanos, unit: 1_000_000) + "ms" }
        let hours = nanos / 3_600_000_000_000
        let minutes = (nanos / 60_000_000_000) % 60
        let secondNanos = nanos % 60_000_000_000
        var text = ""
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        return text + decimal(secondNanos, unit: 1_000_000_000) + "s"
    }

    /// `value / unit` with the fraction's trailing zeros dropped (Go prints at most 9 digits).
    private static func decimal(_ value: Int64, unit: Int64) -> String {
        let whole = value / unit
        var fraction = value % unit
        guard fraction > 0 else { return "\(whole)" }
        var digits = String(unit).count - 1
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}
