/// A convention for rate-limit headers that the ``ObservationParser`` can read.
///
/// `Retry-After`, `retry-after-ms` and `x-ms-retry-after-ms` are read whatever the families.
/// New families may be added; compare with the static members rather than switching exhaustively.
public struct HeaderFamily: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable {
        case anthropic, openAI, ietf, gitHub
    }

    let kind: Kind

    private init(_ kind: Kind) { self.kind = kind }

    /// Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`, with
    /// resets as RFC 3339 times. Remaining tokens are rounded by Anthropic to the nearest thousand.
    public static let anthropic = HeaderFamily(.anthropic)

    /// OpenAI, Azure OpenAI and OpenAI-compatible servers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`,
    /// with resets as Go durations (`6m0s`, `2m59.56s`, `12ms`) or plain seconds. A reset of zero or less is unknown.
    public static let openAI = HeaderFamily(.openAI)

    /// The IETF's draft `RateLimit-Policy` and `RateLimit` structured fields (draft-ietf-httpapi-ratelimit-headers
    /// 08 to 10, `"default";q=100;w=60` and `"default";r=50;t=30`), their dictionary form of drafts 3 to 7
    /// (`limit=100, remaining=50, reset=30`), and the older `RateLimit-Limit`, `RateLimit-Remaining` and
    /// `RateLimit-Reset` fields.
    public static let ietf = HeaderFamily(.ietf)

    /// GitHub and the many APIs that copied it: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset`, whose reset is an epoch time (in seconds, or milliseconds above 10^12). Counts requests.
    /// Also reads GitHub's habit of answering a rate-limited call with 403 instead of 429.
    public static let gitHub = HeaderFamily(.gitHub)

    /// Every family, in the order the parser prefers them when two name the same resource.
    public static let all: [HeaderFamily] = [.anthropic, .openAI, .ietf, .gitHub]

    public var description: String {
        switch kind {
        case .anthropic: "anthropic"
        case .openAI: "openai"
        case .ietf: "ietf"
        case .gitHub: "github"
        }
    }
}
