/// What a provider counts against a rate limit.
///
/// Providers limit how many requests a caller may send per window and how many tokens (the units in which a model
/// reads and writes text, roughly three quarters of an English word each) those requests may carry. Some count all
/// tokens together; Anthropic also counts the tokens of the prompt and of the answer separately.
///
/// More resources may be added; compare with the static members rather than switching exhaustively.
public struct RateLimitResource: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The resource's name in JSON and in the CLI: `requests`, `tokens`, `input_tokens` or `output_tokens`.
    public let name: String
    private let order: Int

    private init(name: String, order: Int) {
        self.name = name
        self.order = order
    }

    /// HTTP requests, whatever their size (OpenAI's and Anthropic's requests per minute, GitHub's requests per
    /// hour, IETF policies without a unit).
    public static let requests = RateLimitResource(name: "requests", order: 0)

    /// Tokens of prompt and answer together (OpenAI's tokens per minute; Anthropic's most restrictive token limit
    /// in effect).
    public static let tokens = RateLimitResource(name: "tokens", order: 1)

    /// Tokens of the prompt: what the model reads (Anthropic's input tokens per minute).
    public static let inputTokens = RateLimitResource(name: "input_tokens", order: 2)

    /// Tokens of the answer: what the model writes (Anthropic's output tokens per minute).
    public static let outputTokens = RateLimitResource(name: "output_tokens", order: 3)

    /// Every resource, in the order the CLI prints them.
    public static let all: [RateLimitResource] = [.requests, .tokens, .inputTokens, .outputTokens]

    public static func < (lhs: RateLimitResource, rhs: RateLimitResource) -> Bool { lhs.order < rhs.order }

    public var description: String { name }
}
