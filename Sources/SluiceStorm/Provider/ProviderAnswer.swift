import HTTPTypes
import Hummingbird

/// Builds the mock provider's HTTP responses in the API of its family: bodies, errors and rate-limit headers.
struct ProviderAnswer {
    /// `openai` or `anthropic`.
    let family: String
    /// The request's number in the run, for ids.
    let id: Int

    private var isAnthropic: Bool { family == "anthropic" }

    /// A served request: the completion and the quota after its charge.
    func served(model: String, prompt: Int, completion: Int, _ snapshot: ProviderQuota.Snapshot) -> Response {
        let body =
            isAnthropic
            ? MessagesResponse.body(id: "msg_storm_\(id)", model: model, inputTokens: prompt, outputTokens: completion)
            : ChatResponse.body(
                id: "chatcmpl-storm-\(id)", model: model, promptTokens: prompt, completionTokens: completion,
                created: Int(StormClock.nowMs() / 1000))
        return Self.response(.ok, body, headers(snapshot))
    }

    /// A 429: the quota, and how long to wait (OpenAI: `retry-after-ms` and `retry-after`; Anthropic:
    /// `retry-after` in whole seconds, as HTTP has it).
    func limited(_ snapshot: ProviderQuota.Snapshot, retryAfterMs: Double) -> Response {
        var headers = headers(snapshot)
        let seconds = max(1, Int((retryAfterMs / 1000).rounded(.up)))
        headers[.retryAfter] = String(seconds)
        if isAnthropic {
            headers[HTTPField.Name("request-id")!] = requestID
            let body = MessagesResponse.error(
                type: "rate_limit_error", message: "This request would exceed your rate limit.", requestID: requestID)
            return Self.response(.tooManyRequests, body, headers)
        }
        headers[HTTPField.Name("retry-after-ms")!] = String(Int(retryAfterMs.rounded(.up)))
        let message = "Rate limit reached for requests. Please try again in \(Int(retryAfterMs))ms."
        return Self.response(
            .tooManyRequests, ChatResponse.error(type: "rate_limit_exceeded", message: message), headers)
    }

    /// An error without quota headers (5xx, 529, a timeout, a request the run cannot take).
    func error(_ status: HTTPResponse.Status, message: String) -> Response {
        if isAnthropic {
            let type = MessagesResponse.errorType(status: status.code)
            let text = type == "overloaded_error" ? "Overloaded" : message
            var headers = HTTPFields()
            headers[HTTPField.Name("request-id")!] = requestID
            return Self.response(
                status, MessagesResponse.error(type: type, message: text, requestID: requestID), headers)
        }
        let type = status.code == 504 ? "timeout" : "server_error"
        return Self.response(status, ChatResponse.error(type: type, message: message))
    }

    private var requestID: String { "req_storm_\(id)" }

    /// The rate-limit headers of the family for one moment of the quota.
    func headers(_ snapshot: ProviderQuota.Snapshot) -> HTTPFields {
        var headers = HTTPFields()
        func set(_ name: String, _ value: String) { headers[HTTPField.Name(name)!] = value }
        if isAnthropic {
            let now = StormClock.nowMs()
            let parts: [(ProviderQuota.Resource, String)] = [
                (.requests, "requests"), (.inputTokens, "input-tokens"), (.outputTokens, "output-tokens"),
            ]
            for (resource, part) in parts {
                guard let level = snapshot[resource] else { continue }
                set("anthropic-ratelimit-\(part)-limit", String(level.limit))
                set("anthropic-ratelimit-\(part)-remaining", String(level.remaining))
                set("anthropic-ratelimit-\(part)-reset", RFC3339Format.string(epochMs: now + level.resetMs))
            }
        } else {
            for (resource, suffix) in [(ProviderQuota.Resource.requests, "requests"), (.tokens, "tokens")] {
                guard let level = snapshot[resource] else { continue }
                set("x-ratelimit-limit-\(suffix)", String(level.limit))
                set("x-ratelimit-remaining-\(suffix)", String(level.remaining))
                set("x-ratelimit-reset-\(suffix)", GoDurationFormat.string(milliseconds: level.resetMs))
            }
        }
        return headers
    }

    private static func response(_ status: HTTPResponse.Status, _ body: String, _ headers: HTTPFields = HTTPFields())
        -> Response
    {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
