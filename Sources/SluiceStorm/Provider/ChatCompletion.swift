/// One request to the mock provider, whichever API it came in by: what its quota and latency need.
struct ProviderRequest: Sendable {
    var model: String
    var promptTokens: Int
    var maxTokens: Int
    /// Draws the call's latency and answer length, so that one logical call costs the same in every mode.
    var seed: UInt64?
}

/// The parts of an OpenAI chat-completions request that the mock provider reads.
struct ChatRequest: Decodable, Sendable {
    struct Message: Decodable, Sendable {
        var role: String
        var content: String
    }

    var model: String
    var messages: [Message]
    var maxTokens: Int?
    /// OpenAI's `seed`: the mock draws the call's latency and answer length from it, so that one logical call
    /// costs the same in every mode.
    var seed: UInt64?
    /// OpenAI's end-user id; the storm sends the tenant.
    var user: String?

    enum CodingKeys: String, CodingKey {
        case model, messages, seed, user
        case maxTokens = "max_tokens"
    }

    /// Prompt tokens, counted the way a tokenizer would for English text: about four characters a token.
    var promptTokens: Int { PromptCount.tokens(messages.map(\.content)) }

    var request: ProviderRequest {
        ProviderRequest(model: model, promptTokens: promptTokens, maxTokens: maxTokens ?? 256, seed: seed)
    }
}

/// The parts of an Anthropic messages request that the mock provider reads. Anthropic's API has no seed: the
/// storm sends it in the `x-storm-seed` header.
struct MessagesRequest: Decodable, Sendable {
    struct Message: Decodable, Sendable {
        var role: String
        var content: String
    }

    var model: String
    var messages: [Message]
    var system: String?
    var maxTokens: Int

    enum CodingKeys: String, CodingKey {
        case model, messages, system
        case maxTokens = "max_tokens"
    }

    func request(seed: UInt64?) -> ProviderRequest {
        ProviderRequest(
            model: model, promptTokens: PromptCount.tokens(messages.map(\.content) + (system.map { [$0] } ?? [])),
            maxTokens: maxTokens, seed: seed)
    }
}

/// Counts prompt tokens the way a tokenizer would for English text: about four characters a token, plus four
/// per message.
enum PromptCount {
    static func tokens(_ contents: [String]) -> Int {
        max(1, contents.reduce(0) { $0 + ($1.utf8.count + 3) / 4 + 4 })
    }
}

/// Builds the JSON bodies of OpenAI's chat completions.
enum ChatResponse {
    static func body(id: String, model: String, promptTokens: Int, completionTokens: Int, created: Int) -> String {
        """
        {"id":"\(id)","object":"chat.completion","created":\(created),"model":"\(model)",\
        "choices":[{"index":0,"message":{"role":"assistant","content":"(\(completionTokens) tokens)"},\
        "finish_reason":"stop"}],\
        "usage":{"prompt_tokens":\(promptTokens),"completion_tokens":\(completionTokens),\
        "total_tokens":\(promptTokens + completionTokens)}}
        """
    }

    static func error(type: String, message: String) -> String {
        #"{"error":{"message":"\#(message)","type":"\#(type)","param":null,"code":"\#(type)"}}"#
    }
}

/// Builds the JSON bodies of Anthropic's messages API.
enum MessagesResponse {
    static func body(id: String, model: String, inputTokens: Int, outputTokens: Int) -> String {
        """
        {"id":"\(id)","type":"message","role":"assistant","model":"\(model)",\
        "content":[{"type":"text","text":"(\(outputTokens) tokens)"}],"stop_reason":"end_turn","stop_sequence":null,\
        "usage":{"input_tokens":\(inputTokens),"output_tokens":\(outputTokens)}}
        """
    }

    /// `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_…"}`.
    static func error(type: String, message: String, requestID: String) -> String {
        #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"},"request_id":"\#(requestID)"}"#
    }

    /// Anthropic's error type for a status: 429 `rate_limit_error`, 529 `overloaded_error`, else `api_error`.
    static func errorType(status: Int) -> String {
        switch status {
        case 429: "rate_limit_error"
        case 529: "overloaded_error"
        case 504: "timeout_error"
        default: "api_error"
        }
    }
}
