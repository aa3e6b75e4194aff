import HTTPTypes

/// A header field that the ``ObservationParser`` reads.
///
/// Each name is built once (an `HTTPField.Name` validates and lowercases its text), so that reading a response
/// builds no names: ``RateLimitFields`` matches a response's fields against all of them in one pass.
enum RateLimitField: Int, CaseIterable {
    case date

    // Retry-After and the millisecond forms of OpenAI and Azure.
    case retryAfter, retryAfterMs, msRetryAfterMs

    // IETF: the structured fields of drafts 3 to 10, and the separate fields of drafts 0 to 2.
    case rateLimit, rateLimitPolicy
    case rateLimitLimit, rateLimitRemaining, rateLimitReset

    // GitHub style, without a resource suffix.
    case gitHubLimit, gitHubRemaining, gitHubReset

    // OpenAI and Azure OpenAI.
    case openAILimitRequests, openAIRemainingRequests, openAIResetRequests
    case openAILimitTokens, openAIRemainingTokens, openAIResetTokens

    // Anthropic.
    case anthropicRequestsLimit, anthropicRequestsRemaining, anthropicRequestsReset
    case anthropicTokensLimit, anthropicTokensRemaining, anthropicTokensReset
    case anthropicInputTokensLimit, anthropicInputTokensRemaining, anthropicInputTokensReset
    case anthropicOutputTokensLimit, anthropicOutputTokensRemaining, anthropicOutputTokensReset

    /// The field's name, lowercase.
    var canonicalName: String {
        switch self {
        case .date: "date"
        case .retryAfter: "retry-after"
        case .retryAfterMs: "retry-after-ms"
        case .msRetryAfterMs: "x-ms-retry-after-ms"
        case .rateLimit: "ratelimit"
        case .rateLimitPolicy: "ratelimit-policy"
        case .rateLimitLimit: "ratelimit-limit"
        case .rateLimitRemaining: "ratelimit-remaining"
        case .rateLimitReset: "ratelimit-reset"
        case .gitHubLimit: "x-ratelimit-limit"
        case .gitHubRemaining: "x-ratelimit-remaining"
        case .gitHubReset: "x-ratelimit-reset"
        case .openAILimitRequests: "x-ratelimit-limit-requests"
        case .openAIRemainingRequests: "x-ratelimit-remaining-requests"
        case .openAIResetRequests: "x-ratelimit-reset-requests"
        case .openAILimitTokens: "x-ratelimit-limit-tokens"
        case .openAIRemainingTokens: "x-ratelimit-remaining-tokens"
        case .openAIResetTokens: "x-ratelimit-reset-tokens"
        case .anthropicRequestsLimit: "anthropic-ratelimit-requests-limit"
        case .anthropicRequestsRemaining: "anthropic-ratelimit-requests-remaining"
        case .anthropicRequestsReset: "anthropic-ratelimit-requests-reset"
        case .anthropicTokensLimit: "anthropic-ratelimit-tokens-limit"
        case .anthropicTokensRemaining: "anthropic-ratelimit-tokens-remaining"
        case .anthropicTokensReset: "anthropic-ratelimit-tokens-reset"
        case .anthropicInputTokensLimit: "anthropic-ratelimit-input-tokens-limit"
        case .anthropicInputTokensRemaining: "anthropic-ratelimit-input-tokens-remaining"
        case .anthropicInputTokensReset: "anthropic-ratelimit-input-tokens-reset"
        case .anthropicOutputTokensLimit: "anthropic-ratelimit-output-tokens-limit"
        case .anthropicOutputTokensRemaining: "anthropic-ratelimit-output-tokens-remaining"
        case .anthropicOutputTokensReset: "anthropic-ratelimit-output-tokens-reset"
        }
    }

    /// The field's name.
    var name: HTTPField.Name { Self.names[rawValue] }

    /// How many fields there are (`allCases` builds an array each time).
    static let count = allCases.count

    private static let names: [HTTPField.Name] = allCases.map { HTTPField.Name($0.canonicalName)! }

    /// The field of each name; names compare (and hash) by their lowercase form.
    fileprivate static let byName: [HTTPField.Name: RateLimitField] = Dictionary(
        uniqueKeysWithValues: allCases.map { ($0.name, $0) })

    /// Bit `n` is set when a field's name starts with the `n`th lowercase letter (all of them start with a letter).
    private static let initials: UInt32 = allCases.reduce(0) { initials, field in
        initials | 1 << (field.canonicalName.utf8.first! - UInt8(ascii: "a"))
    }

    /// Whether a field's name may start with `byte`, the first byte of a canonical (lowercase) name. Most of a
    /// response's fields (`content-type`, `server`, `cf-ray`) fail this test and are not looked up at all.
    fileprivate static func mayStart(with byte: UInt8) -> Bool {
        let letter = byte &- UInt8(ascii: "a")
        return letter < 26 && initials & (1 << letter) != 0
    }
}

/// Where a response's ``RateLimitField``s are, found in one pass over its fields.
struct RateLimitFields {
    let headers: HTTPFields

    /// For each ``RateLimitField`` (by raw value), the position in `headers` of its first field, or -1.
    private var first: [Int]

    init(_ headers: HTTPFields) {
        self.headers = headers
        first = Array(repeating: -1, count: RateLimitField.count)
        for position in headers.indices {
            let name = headers[position].name
            guard let initial = name.canonicalName.utf8.first, RateLimitField.mayStart(with: initial) else { continue }
            if let field = RateLimitField.byName[name], first[field.rawValue] < 0 {
                first[field.rawValue] = position
            }
        }
    }

    /// The first value of `field`, without surrounding spaces and tabs; nil if the response has none.
    subscript(field: RateLimitField) -> Substring? {
        let position = first[field.rawValue]
        guard position >= 0 else { return nil }
        return HeaderText.trimmed(headers[position].value[...])
    }

    /// Every value of `field`, in order, as one value joined with ", " (as RFC 9110 and RFC 9651 combine repeated
    /// fields); nil if the response has none.
    func combined(_ field: RateLimitField) -> Substring? {
        let position = first[field.rawValue]
        guard position >= 0 else { return nil }
        let firstValue = HeaderText.trimmed(headers[position].value[...])
        let name = field.name
        guard let next = headers[(position + 1)...].firstIndex(where: { $0.name == name }) else { return firstValue }
        var combined = String(firstValue)
        for other in headers[next...] where other.name == name {
            combined += ", "
            combined += HeaderText.trimmed(other.value[...])
        }
        return combined[...]
    }
}

/// Text as header fields hold it.
enum HeaderText {
    /// `text` without the spaces, tabs and carriage returns around it.
    static func trimmed(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = text.firstIndex(where: { !isSpace($0) }), let end = text.lastIndex(where: { !isSpace($0) })
        else { return text[text.endIndex...] }
        return text[start...end]
    }
}
