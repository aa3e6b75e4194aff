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
    var promptTokens: Int {
        max(1, messages.reduce(0) { $0 + ($1.content.utf8.count + 3) / 4 + 4 })
    }
}

/// Builds the JSON body of a completion.
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
