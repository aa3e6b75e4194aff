import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// A mock LLM provider: a real HTTP server on loopback that answers OpenAI-style
/// `POST /v1/chat/completions` under its own quota, with OpenAI's rate-limit headers, 429s carrying
/// `retry-after-ms` and `retry-after`, log-normal latency and the incidents of the scenario's timeline.
///
/// One server lives for a whole storm; ``begin(settings:startMs:)`` and ``finish(duration:)`` frame each run, and
/// the recorder of the run is the report's ground truth.
public final class MockProvider: Sendable {
    /// The port the server listens on (127.0.0.1).
    public let port: Int
    private let core: Core
    private let server: Task<Void, Never>

    private init(port: Int, core: Core, server: Task<Void, Never>) {
        self.port = port
        self.core = core
        self.server = server
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts the server on a free loopback port.
    public static func start() async throws -> MockProvider {
        let core = Core()
        let router = Router()
        router.post("/v1/chat/completions") { request, context -> Response in
            let chat = try await request.decode(as: ChatRequest.self, context: context)
            return try await core.respond(to: chat)
        }
        router.get("/health") { _, _ in "ok" }
        var logger = Logger(label: "sluice.storm.provider")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: 0), serverName: "sluice-storm-provider", backlog: 1024),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger
        )
        let server = Task {
            do { try await app.run() } catch { continuation.finish() }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            server.cancel()
            throw StormError("the mock provider could not listen on 127.0.0.1")
        }
        return MockProvider(port: port, core: core, server: server)
    }

    /// Starts a run: fresh buckets and recorder; `startMs` (wall clock) is second zero of the run's timeline.
    public func begin(settings: ProviderSettings, startMs: Double) {
        core.begin(settings: settings, startMs: startMs)
    }

    /// Ends the run and returns its time series. Requests still held (timeouts) are released.
    public func finish(duration: Double) -> ProviderRecorder {
        core.finish(duration: duration)
    }

    /// A snapshot of the current run for progress lines: seconds elapsed, requests, 429s, tokens served.
    public func progress() -> (elapsed: Double, requests: Int, limited: Int, errors: Int, tokens: Int) {
        core.progress()
    }

    public func stop() async {
        server.cancel()
        await server.value
    }
}

extension MockProvider {
    /// The provider's state, behind one lock: everything a request does to it takes microseconds.
    final class Core: Sendable {
        private struct Run {
            var generation: Int
            var settings: ProviderSettings
            var startMs: Double
            var quota: ProviderQuota
            var recorder = ProviderRecorder()
            var random = SeededRandom(seed: 0x5EED)
            var nextID = 0
        }

        private let state = Mutex<Run?>(nil)
        private let generation = Atomic<Int>(0)

        func begin(settings: ProviderSettings, startMs: Double) {
            let next = generation.add(1, ordering: .relaxed).newValue
            state.withLock {
                $0 = Run(
                    generation: next, settings: settings, startMs: startMs, quota: ProviderQuota(settings: settings))
            }
        }

        func finish(duration: Double) -> ProviderRecorder {
            generation.add(1, ordering: .relaxed)
            return state.withLock { run in
                defer { run = nil }
                guard var recorder = run?.recorder, let settings = run?.settings else { return ProviderRecorder() }
                recorder.close(duration: duration, settings: settings)
                return recorder
            }
        }

        func progress() -> (elapsed: Double, requests: Int, limited: Int, errors: Int, tokens: Int) {
            state.withLock { run in
                guard let run else { return (0, 0, 0, 0, 0) }
                let bins = run.recorder.bins
                return (
                    (StormClock.nowMs() - run.startMs) / 1000, bins.reduce(0) { $0 + $1.requests },
                    bins.reduce(0) { $0 + $1.limited }, bins.reduce(0) { $0 + $1.errors + $1.timeouts },
                    bins.reduce(0) { $0 + $1.tokensServed }
                )
            }
        }

        /// What to do with one request, decided at once under the lock.
        private enum Plan {
            case idle
            case limited(ProviderQuota.Snapshot, retryAfterMs: Double)
            case fail(status: Int, afterMs: Double)
            case hang
            case serve(afterMs: Double, prompt: Int, completion: Int, estimate: Int, ProviderQuota.Snapshot)
        }

        func respond(to chat: ChatRequest) async throws -> Response {
            let (plan, runGeneration, id) = state.withLock { run -> (Plan, Int, Int) in
                guard run != nil else { return (.idle, 0, 0) }
                return (Self.plan(chat, run: &run!), run!.generation, run!.nextID)
            }
            switch plan {
            case .idle:
                return Self.response(.serviceUnavailable, ChatResponse.error(type: "server_error", message: "no run"))
            case .limited(let snapshot, let retryAfterMs):
                var headers = Self.rateLimitHeaders(snapshot)
                headers[HTTPField.Name("retry-after-ms")!] = String(Int(retryAfterMs.rounded(.up)))
                headers[.retryAfter] = String(Int((retryAfterMs / 1000).rounded(.up)))
                let message = "Rate limit reached for requests. Please try again in \(Int(retryAfterMs))ms."
                return Self.response(
                    .tooManyRequests, ChatResponse.error(type: "rate_limit_exceeded", message: message), headers)
            case .fail(let status, let afterMs):
                try await Task.sleep(for: .microseconds(Int64(afterMs * 1000)))
                finish(generation: runGeneration, outcome: .error, refund: 0)
                let body = ChatResponse.error(type: "server_error", message: "The server had an error.")
                return Self.response(HTTPResponse.Status(code: status), body)
            case .hang:
                // Hold the request until the client gives up, the run ends, or 30 s pass.
                let started = StormClock.nowMs()
                while generation.load(ordering: .relaxed) == runGeneration, StormClock.nowMs() - started < 30_000 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                finish(generation: runGeneration, outcome: .timeout, refund: 0)
                return Self.response(.gatewayTimeout, ChatResponse.error(type: "timeout", message: "timed out"))
            case .serve(let afterMs, let prompt, let completion, let estimate, let snapshot):
                try await Task.sleep(for: .microseconds(Int64(afterMs * 1000)))
                finish(
                    generation: runGeneration, outcome: .served(tokens: prompt + completion),
                    refund: estimate - prompt - completion)
                let body = ChatResponse.body(
                    id: "chatcmpl-storm-\(id)", model: chat.model, promptTokens: prompt, completionTokens: completion,
                    created: Int(StormClock.nowMs() / 1000))
                return Self.response(.ok, body, Self.rateLimitHeaders(snapshot))
            }
        }

        private static func plan(_ chat: ChatRequest, run: inout Run) -> Plan {
            let time = max(0, (StormClock.nowMs() - run.startMs) / 1000)
            run.nextID += 1
            run.quota.advance(to: time)
            run.recorder.arrived(at: time, capacity: run.quota.tokensPerSecond)
            let incidents = run.settings.activeIncidents(at: time)
            let latencyFactor = incidents.compactMap(\.latencyFactor).last ?? 1
            var draws = chat.seed.map { SeededRandom(seed: $0) } ?? SeededRandom(seed: run.random.next())
            let quantile = min(max(draws.unit(), 1e-6), 1 - 1e-6)
            let maxTokens = max(1, chat.maxTokens ?? 256)
            let completion = max(1, Int((Double(maxTokens) * (0.4 + 0.6 * draws.unit())).rounded()))
            let latency = LatencyModel(settings: run.settings.latency)
            let afterMs = latency.milliseconds(quantile: quantile, outputTokens: completion, factor: latencyFactor)

            if let failing = incidents.last(where: { $0.errorRate != nil }), let rate = failing.errorRate,
                run.random.unit() < rate
            {
                guard let status = failing.errorStatus else { return .hang }
                return .fail(status: status, afterMs: status == 504 ? min(4 * afterMs, 1_500) : afterMs / 2)
            }
            let prompt = chat.promptTokens
            let estimate = prompt + maxTokens
            switch run.quota.admit(estimate: estimate, at: time) {
            case .admitted(let snapshot):
                return .serve(afterMs: afterMs, prompt: prompt, completion: completion, estimate: estimate, snapshot)
            case .limited(let retryAfterMs, let snapshot):
                run.recorder.finished(.limited, at: time, capacity: run.quota.tokensPerSecond)
                return .limited(snapshot, retryAfterMs: retryAfterMs)
            }
        }

        private func finish(generation runGeneration: Int, outcome: ProviderRecorder.Outcome, refund: Int) {
            state.withLock { run in
                guard run != nil, run!.generation == runGeneration else { return }
                let time = max(0, (StormClock.nowMs() - run!.startMs) / 1000)
                run!.quota.refund(refund, at: time)
                run!.recorder.finished(outcome, at: time, capacity: run!.quota.tokensPerSecond)
            }
        }

        private static func rateLimitHeaders(_ snapshot: ProviderQuota.Snapshot) -> HTTPFields {
            var headers = HTTPFields()
            headers[HTTPField.Name("x-ratelimit-limit-requests")!] = String(snapshot.requestLimit)
            headers[HTTPField.Name("x-ratelimit-limit-tokens")!] = String(snapshot.tokenLimit)
            headers[HTTPField.Name("x-ratelimit-remaining-requests")!] = String(snapshot.requestsRemaining)
            headers[HTTPField.Name("x-ratelimit-remaining-tokens")!] = String(snapshot.tokensRemaining)
            headers[HTTPField.Name("x-ratelimit-reset-requests")!] = GoDurationFormat.string(
                milliseconds: snapshot.requestsResetMs)
            headers[HTTPField.Name("x-ratelimit-reset-tokens")!] = GoDurationFormat.string(
                milliseconds: snapshot.tokensResetMs)
            return headers
        }

        private static func response(
            _ status: HTTPResponse.Status, _ body: String, _ headers: HTTPFields = HTTPFields()
        ) -> Response {
            var headers = headers
            headers[.contentType] = "application/json"
            return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
    }
}
