/// What a provider's response means for the fleet: go on, slow down, back off, or give up.
///
/// The reconciler acts on each class differently: a ``quota`` response pauses the partition until the
/// retry-after and cuts its ceiling; an ``overload`` response feeds the circuit breakers and the concurrency limit
/// but leaves the quota ceiling alone; a ``doNotRetry`` response must not be retried at all.
///
/// New classes may be added; compare with the static members rather than switching exhaustively.
public struct ResponseClass: Sendable, Hashable, CustomStringConvertible {
    /// The class's name in JSON and in the CLI: `ok`, `quota`, `overload` or `do_not_retry`.
    public let name: String

    private init(name: String) { self.name = name }

    /// The provider answered (1xx, 2xx, 3xx).
    public static let ok = ResponseClass(name: "ok")

    /// The caller's quota is used up for now (429 Too Many Requests): wait for the retry-after, then retry.
    public static let quota = ResponseClass(name: "quota")

    /// The provider is struggling, whoever the caller is: 5xx (Anthropic's 529 Overloaded, 503 Service
    /// Unavailable, 500, ...), 408 Request Timeout, or no response at all (a timeout or a broken connection).
    /// Retry with backoff within the retry budget.
    public static let overload = ResponseClass(name: "overload")

    /// Retrying cannot help: the request itself is wrong or not allowed (400, 401, 403, 404, 422 and every other
    /// 4xx but 408 and 429), or a 429 asks to wait longer than
    /// ``ObservationParser/Configuration/maximumRetryableWait`` — a daily or billing-period quota that is used up.
    public static let doNotRetry = ResponseClass(name: "do_not_retry")

    /// The class that a status code alone implies, before any header is read; nil means no response arrived.
    ///
    /// Statuses outside 100...599 are not HTTP and count as ``overload``, a misbehaving server.
    public init(status: Int?) {
        switch status ?? 0 {
        case 100..<400: self = .ok
        case 408: self = .overload
        case 429: self = .quota
        case 400..<500: self = .doNotRetry
        default: self = .overload  // no response, or not an HTTP status
        }
    }

    public var description: String { name }
}
