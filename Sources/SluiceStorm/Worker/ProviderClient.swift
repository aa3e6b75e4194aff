import AsyncHTTPClient
import Foundation
import NIOCore

/// Sends LLM calls to the (mock) provider over HTTP with AsyncHTTPClient, one attempt at a time, in the API of
/// the provider's family: OpenAI's chat completions or Anthropic's messages.
final class ProviderClient: Sendable {
    private let http: HTTPClient
    private let url: String
    private let anthropic: Bool
    private let attemptTimeout: TimeAmount
    /// The text of prompts: a prompt of N tokens is N - 4 groups of four characters (see ``ChatRequest``).
    private static let filler = String(repeating: "lorem ipsum dolor sit amet, ", count: 40_000)

    init(baseURL: String, family: String, attemptTimeoutMs: Double, maxConnections: Int = 256) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        configuration.timeout = .init(connect: .seconds(2))
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        anthropic = family == "anthropic"
        url = baseURL + (anthropic ? "/v1/messages" : "/v1/chat/completions")
        attemptTimeout = .milliseconds(Int64(attemptTimeoutMs))
    }

    func send(_ shape: CallShape, user: String, seed: UInt64) async -> AttemptResult {
        let sentMs = StormClock.nowMs()
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if anthropic {
            request.headers.add(name: "x-api-key", value: "sk-ant-storm")
            request.headers.add(name: "anthropic-version", value: "2023-06-01")
            request.headers.add(name: "x-storm-seed", value: String(seed))
        } else {
            request.headers.add(name: "authorization", value: "Bearer sk-storm")
        }
        request.body = .bytes(ByteBuffer(string: Self.body(shape, user: user, seed: seed, anthropic: anthropic)))
        do {
            let response = try await http.execute(request, timeout: attemptTimeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            var result = AttemptResult(
                status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                promptTokens: 0, completionTokens: 0, latencyMs: StormClock.nowMs() - sentMs, sentMs: sentMs)
            if result.succeeded,
                let usage = try? JSONDecoder().decode(Completion.self, from: Data(body.readableBytesView)).usage
            {
                result.promptTokens = usage.promptTokens
                result.completionTokens = usage.completionTokens
            }
            return result
        } catch {
            return AttemptResult(
                status: nil, headers: [], promptTokens: 0, completionTokens: 0,
                latencyMs: StormClock.nowMs() - sentMs, sentMs: sentMs)
        }
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    private static func body(_ shape: CallShape, user: String, seed: UInt64, anthropic: Bool) -> String {
        let characters = max(0, shape.promptTokens - 4) * 4
        let messages = [Message(content: String(filler.prefix(characters)))]
        if anthropic {
            // Anthropic takes no seed in the body: the x-storm-seed header carries it.
            return WireJSON.string(
                MessagesBody(maxTokens: shape.maxTokens, messages: messages, metadata: .init(userID: user)))
        }
        return WireJSON.string(ChatBody(messages: messages, maxTokens: shape.maxTokens, seed: seed, user: user))
    }

    private struct Message: Encodable {
        var role = "user"
        var content: String
    }

    /// An OpenAI chat-completions request: `{"model", "messages", "max_tokens", "seed", "user"}`.
    private struct ChatBody: Encodable {
        var model = "gpt-storm"
        var messages: [Message]
        var maxTokens: Int
        var seed: UInt64
        var user: String

        enum CodingKeys: String, CodingKey {
            case model, messages, seed, user
            case maxTokens = "max_tokens"
        }
    }

    /// An Anthropic messages request: `{"model", "max_tokens", "messages", "metadata": {"user_id"}}`.
    private struct MessagesBody: Encodable {
        struct Metadata: Encodable {
            var userID: String

            enum CodingKeys: String, CodingKey {
                case userID = "user_id"
            }
        }

        var model = "claude-storm"
        var maxTokens: Int
        var messages: [Message]
        var metadata: Metadata

        enum CodingKeys: String, CodingKey {
            case model, messages, metadata
            case maxTokens = "max_tokens"
        }
    }

    /// The usage of an answer: OpenAI's `prompt_tokens` / `completion_tokens` or Anthropic's `input_tokens` /
    /// `output_tokens`.
    private struct Completion: Decodable {
        struct Usage: Decodable {
            var promptTokens: Int
            var completionTokens: Int

            enum CodingKeys: String, CodingKey {
                case promptTokens = "prompt_tokens"
                case completionTokens = "completion_tokens"
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                if container.contains(.inputTokens) {
                    promptTokens = try container.decode(Int.self, forKey: .inputTokens)
                    completionTokens = try container.decode(Int.self, forKey: .outputTokens)
                } else {
                    promptTokens = try container.decode(Int.self, forKey: .promptTokens)
                    completionTokens = try container.decode(Int.self, forKey: .completionTokens)
                }
            }
        }
        var usage: Usage
    }
}
