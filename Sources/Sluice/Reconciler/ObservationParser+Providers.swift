// The header families of OpenAI / Azure OpenAI, Anthropic and GitHub-style APIs, and Retry-After.

extension ObservationParser.Context {
    // MARK: OpenAI and Azure OpenAI

    /// The three header fields of one resource.
    private typealias ResourceFields = (
        resource: RateLimitResource, limit: RateLimitField, remaining: RateLimitField, reset: RateLimitField
    )

    private static let openAIFields: [ResourceFields] = [
        (.requests, .openAILimitRequests, .openAIRemainingRequests, .openAIResetRequests),
        (.tokens, .openAILimitTokens, .openAIRemainingTokens, .openAIResetTokens),
    ]

    /// `x-ratelimit-limit-requests: 10000`, `x-ratelimit-remaining-tokens: 1999977`,
    /// `x-ratelimit-reset-requests: 6ms`, `x-ratelimit-reset-tokens: 2m59.56s`.
    func openAIResources() -> [RateLimitResource: ResourceObservation] {
        var found: [RateLimitResource: ResourceObservation] = [:]
        for fields in Self.openAIFields {
            found[fields.resource] = resource(
                limit: fields.limit, remaining: fields.remaining, reset: fields.reset, parsingReset: Self.openAIReset
            )
        }
        return found
    }

    /// A Go duration (`6m0s`), or a plain number of seconds as some OpenAI-compatible servers send. Zero or less
    /// means unknown.
    static func openAIReset(_ text: Substring) -> Duration? {
        guard let duration = GoDuration.parse(text) ?? HeaderNumbers.duration(text, unitNanoseconds: 1_000_000_000),
            duration > .zero
        else { return nil }
        return duration
    }

    // MARK: Anthropic

    private static let anthropicFields: [ResourceFields] = [
        (.requests, .anthropicRequestsLimit, .anthropicRequestsRemaining, .anthropicRequestsReset),
        (.tokens, .anthropicTokensLimit, .anthropicTokensRemaining, .anthropicTokensReset),
        (.inputTokens, .anthropicInputTokensLimit, .anthropicInputTokensRemaining, .anthropicInputTokensReset),
        (.outputTokens, .anthropicOutputTokensLimit, .anthropicOutputTokensRemaining, .anthropicOutputTokensReset),
    ]

    /// `anthropic-ratelimit-input-tokens-remaining: 398000`,
    /// `anthropic-ratelimit-input-tokens-reset: 2025-05-21T10:15:31Z`, for requests, tokens, input and output tokens.
    func anthropicResources() -> [RateLimitResource: ResourceObservation] {
        var found: [RateLimitResource: ResourceObservation] = [:]
        for fields in Self.anthropicFields {
            found[fields.resource] = resource(
                limit: fields.limit, remaining: fields.remaining, reset: fields.reset
            ) { text in RFC3339Timestamp.parse(text).map(duration(until:)) }
        }
        return found
    }

    // MARK: GitHub style

    /// `X-RateLimit-Limit: 5000`, `X-RateLimit-Remaining: 4987`, `X-RateLimit-Reset: 1350085394`. These are exactly
    /// the names without a resource suffix; OpenAI's `x-ratelimit-reset-requests` is a different header.
    func gitHubResources() -> [RateLimitResource: ResourceObservation] {
        guard
            let requests = resource(
                limit: .gitHubLimit, remaining: .gitHubRemaining, reset: .gitHubReset, parsingReset: resetNumber
            )
        else { return [:] }
        return [.requests: requests]
    }

    /// GitHub answers an exhausted primary rate limit with 403 and `x-ratelimit-remaining: 0`, and a secondary
    /// rate limit with 403 and `Retry-After`.
    func isGitHubRateLimited(retryAfter: Duration?) -> Bool {
        retryAfter != nil || fields[.gitHubRemaining].flatMap(HeaderNumbers.count) == 0
    }

    /// A reset written as one number, read by its size: above 10^12 it is epoch milliseconds (OpenRouter); from
    /// 10^9 (September 2001) epoch seconds, fractions allowed (GitHub, Discord); below that no current epoch time
    /// is possible and it is a number of seconds from now, as the IETF drafts and some servers send it.
    func resetNumber(_ text: Substring) -> Duration? {
        // Read as milliseconds first: an epoch in milliseconds fits in nanoseconds, one in seconds times 10^9 not.
        guard let asMilliseconds = HeaderNumbers.duration(text, unitNanoseconds: 1_000_000) else { return nil }
        if asMilliseconds > .seconds(1_000_000_000) {  // the number exceeds 10^12
            return UnixInstant(sinceEpoch: asMilliseconds).map(duration(until:))
        }
        let asSeconds = asMilliseconds * 1_000
        if asSeconds >= .seconds(1_000_000_000) {
            return UnixInstant(sinceEpoch: asSeconds).map(duration(until:))
        }
        return asSeconds
    }

    // MARK: Retry-After

    /// The first valid of `retry-after-ms` (OpenAI, Azure), `x-ms-retry-after-ms` (Azure) — milliseconds, zero or
    /// less meaning unknown — and `Retry-After` — seconds or an HTTP-date; zero, or a date already past, means
    /// "retry now".
    func retryAfter() -> Duration? {
        for field in [RateLimitField.retryAfterMs, .msRetryAfterMs] {
            if let text = fields[field],
                let duration = HeaderNumbers.duration(text, unitNanoseconds: HeaderNumbers.nanosecondsPerMillisecond),
                duration > .zero
            {
                return duration
            }
        }
        guard let text = fields[.retryAfter] else { return nil }
        if let seconds = HeaderNumbers.duration(text, unitNanoseconds: HeaderNumbers.nanosecondsPerSecond) {
            return seconds
        }
        return HTTPDate.parse(text).map(duration(until:))
    }
}
