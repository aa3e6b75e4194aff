import Foundation

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
        WireJSON.string(
            Completion(
                id: id, created: created, model: model,
                choices: [.init(message: .init(content: "(\(completionTokens) tokens)"))],
                usage: .init(
                    promptTokens: promptTokens, completionTokens: completionTokens,
                    totalTokens: promptTokens + completionTokens)))
    }

    static func error(type: String, message: String) -> String {
        WireJSON.string(ErrorBody(error: .init(message: message, type: type, code: type)))
    }

    /// `{"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message", "finish_reason"}],
    /// "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}`
    struct Completion: Encodable {
        struct Choice: Encodable {
            struct Message: Encodable {
                var role = "assistant"
                var content: String
            }

            var index = 0
            var message: Message
            var finishReason = "stop"

            enum CodingKeys: String, CodingKey {
                case index, message
                case finishReason = "finish_reason"
            }
        }

        struct Usage: Encodable {
            var promptTokens: Int
            var completionTokens: Int
            var totalTokens: Int

            enum CodingKeys: String, CodingKey {
                case promptTokens = "prompt_tokens"
                case completionTokens = "completion_tokens"
                case totalTokens = "total_tokens"
            }
        }

        var id: String
        var object = "chat.completion"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage
    }

    /// `{"error": {"message", "type", "param": null, "code"}}`
    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param = WireJSON.Null()
            var code: String
        }

        var error: Detail
    }
}

/// Builds the JSON bodies of Anthropic's messages API.
enum MessagesResponse {
    static func body(id: String, model: String, inputTokens: Int, outputTokens: Int) -> String {
        WireJSON.string(
            Message(
                id: id, model: model, content: [.init(text: "(\(outputTokens) tokens)")],
                usage: .init(inputTokens: inputTokens, outputTokens: outputTokens)))
    }

    /// `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_…"}`.
    static func error(type: String, message: String, requestID: String) -> String {
        WireJSON.string(ErrorBody(error: .init(type: type, message: message), requestID: requestID))
    }

    /// `{"id", "type": "message", "role": "assistant", "model", "content": [{"type": "text", "text"}],
    /// "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens", "output_tokens"}}`
    struct Message: Encodable {
        struct Content: Encodable {
            var type = "text"
            var text: String
        }

        struct Usage: Encodable {
            var inputTokens: Int
            var outputTokens: Int

            enum CodingKeys: String, CodingKey {
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
            }
        }

        var id: String
        var type = "message"
        var role = "assistant"
        var model: String
        var content: [Content]
        var stopReason = "end_turn"
        var stopSequence = WireJSON.Null()
        var usage: Usage

        enum CodingKeys: String, CodingKey {
            case id, type, role, model, content, usage
            case stopReason = "stop_reason"
            case stopSequence = "stop_sequence"
        }
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var type: String
            var message: String
        }

        var type = "error"
        var error: Detail
        var requestID: String

        enum CodingKeys: String, CodingKey {
            case type, error
            case requestID = "request_id"
        }
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

/// The JSON of the storm's HTTP bodies, written by `JSONEncoder` (keys sorted).
enum WireJSON {
    /// `value` as JSON text. The bodies hold only strings and integers, which `JSONEncoder` always encodes; were it
    /// to fail, the body would be `{}`, which every reader of these bodies rejects as incomplete.
    static func string(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// An explicit `null`, for the APIs' fields that are always present and null here (`param`, `stop_sequence`).
    struct Null: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        }
    }
}
