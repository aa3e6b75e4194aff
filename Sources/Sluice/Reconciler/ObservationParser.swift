import HTTPTypes

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Turns a provider's response status and headers into a ``ProviderObservation``.
///
/// The parser understands the rate-limit headers of OpenAI and Azure OpenAI, Anthropic, the IETF `RateLimit`
/// drafts and GitHub-style APIs (see ``HeaderFamily``), plus `Retry-After` in all its forms. It never fails:
///
/// - Header names match whatever their case. A field that appears more than once counts with its first value,
///   except the IETF structured fields, whose values combine in order.
/// - A malformed value (a negative count, `12 parsecs`, a date in the wrong format) is dropped and reads as
///   unknown (nil); the resource it belongs to is still reported.
/// - Absolute times (RFC 3339 resets, HTTP-dates, epoch numbers) become durations from the response's `Date` header
///   when it has a valid one, else from `now`. A time already past becomes zero.
/// - When two families describe the same resource, the first in ``Configuration/families`` wins that resource.
///
/// The parser holds no state and is cheap to copy; a worker may keep one for all its responses.
public struct ObservationParser: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The header conventions to read, in order of preference. Defaults to ``HeaderFamily/all``.
        public var families: [HeaderFamily]

        /// The longest wait after a 429 that is still worth retrying. A 429 that asks for longer — through its
        /// retry-after or, lacking one, through the reset of a resource with nothing remaining — means a daily or
        /// billing-period quota is used up, and is classified ``ResponseClass/doNotRetry``. Defaults to one hour.
        ///
        /// Only headers are read. Providers that tell such a 429 apart only in its body (OpenAI's
        /// `insufficient_quota`) are classified ``ResponseClass/quota``.
        public var maximumRetryableWait: Duration

        public init(families: [HeaderFamily] = HeaderFamily.all, maximumRetryableWait: Duration = .seconds(3_600)) {
            self.families = families
            self.maximumRetryableWait = maximumRetryableWait
        }
    }

    public var configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Reads one response.
    ///
    /// - Parameters:
    ///   - status: The HTTP status. For a request that got no response, use ``ProviderObservation/noResponse``.
    ///   - headers: The response's header fields, as swift-http-types holds them (Hummingbird's, and the
    ///     `headerFields` of an `HTTPResponse`). AsyncHTTPClient's `HTTPHeaders` go to the overload that takes
    ///     `(name, value)` pairs.
    ///   - now: The local time at which the response arrived, used for absolute times when the response has no
    ///     valid `Date` header. Defaults to the local clock; tests pass a fixed date.
    public func observe(status: Int, headers: HTTPFields, now: Date = Date()) -> ProviderObservation {
        let fields = RateLimitFields(headers)
        let context = Context(fields: fields, reference: Self.reference(fields: fields, now: now))

        var resources: [RateLimitResource: ResourceObservation] = [:]
        for family in configuration.families {
            let found: [RateLimitResource: ResourceObservation]
            switch family.kind {
            case .anthropic: found = context.anthropicResources()
            case .openAI: found = context.openAIResources()
            case .ietf: found = context.ietfResources()
            case .gitHub: found = context.gitHubResources()
            }
            resources.merge(found) { first, _ in first }
        }

        let retryAfter = context.retryAfter()
        var responseClass = ResponseClass(status: status)
        let readsGitHub = configuration.families.contains(.gitHub)
        if status == 403, readsGitHub, context.isGitHubRateLimited(retryAfter: retryAfter) {
            responseClass = .quota
        }
        if responseClass == .quota, let wait = Self.wait(retryAfter: retryAfter, resources: resources),
            wait > configuration.maximumRetryableWait
        {
            responseClass = .doNotRetry
        }
        return ProviderObservation(
            status: status, responseClass: responseClass, retryAfter: retryAfter, resources: resources
        )
    }

    /// The response's `Date` when valid, else the caller's clock (else the epoch, for a `Date` no header could hold).
    private static func reference(fields: RateLimitFields, now: Date) -> UnixInstant {
        if let date = fields[.date], let instant = HTTPDate.parse(date) { return instant }
        return UnixInstant(now) ?? UnixInstant(seconds: 0)
    }

    /// How long a 429 asks to wait: its retry-after, else the longest reset among exhausted resources.
    private static func wait(retryAfter: Duration?, resources: [RateLimitResource: ResourceObservation]) -> Duration? {
        if let retryAfter { return retryAfter }
        return resources.values.filter { $0.remaining == 0 }.compactMap(\.resetAfter).max()
    }

    /// One response being read: its rate-limit fields and the instant its absolute times are measured from.
    struct Context {
        let fields: RateLimitFields
        let reference: UnixInstant

        /// The duration from the response to `instant`; zero if `instant` has passed.
        func duration(until instant: UnixInstant) -> Duration {
            max(.zero, instant.duration(since: reference))
        }

        /// Reads the three headers of one resource. Nil when none of them is present, so that a resource appears
        /// only when a header named it; otherwise each malformed or missing value is nil.
        func resource(
            limit limitField: RateLimitField, remaining remainingField: RateLimitField,
            reset resetField: RateLimitField,
            parsingReset parseReset: (Substring) -> Duration?
        ) -> ResourceObservation? {
            let limit = fields[limitField]
            let remaining = fields[remainingField]
            let reset = fields[resetField]
            guard limit != nil || remaining != nil || reset != nil else { return nil }
            return ResourceObservation(
                limit: limit.flatMap(HeaderNumbers.count), remaining: remaining.flatMap(HeaderNumbers.count),
                resetAfter: reset.flatMap(parseReset)
            )
        }
    }
}
