/// What one attempt at the provider returned.
struct AttemptResult: Sendable {
    /// The HTTP status, nil when no answer came (timeout, broken connection).
    var status: Int?
    var headers: [(name: String, value: String)]
    var promptTokens: Int
    var completionTokens: Int
    var latencyMs: Double
    /// Wall-clock ms at which the attempt was sent.
    var sentMs: Double

    var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }
    var isQuota: Bool { status == 429 }
    /// Whether another attempt may help: a 429, a 5xx, or no answer.
    var isRetryable: Bool { status.map { $0 == 429 || $0 == 408 || $0 >= 500 } ?? true }
    var tokens: Int { succeeded ? promptTokens + completionTokens : 0 }

    /// The provider's `retry-after-ms`, else `retry-after` seconds.
    var retryAfterMs: Double? {
        if let ms = header("retry-after-ms").flatMap(Double.init) { return ms }
        return header("retry-after").flatMap(Double.init).map { $0 * 1000 }
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name }?.value
    }
}
