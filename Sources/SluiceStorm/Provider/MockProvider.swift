import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceRedis
import Synchronization

/// A mock LLM provider: a real HTTP server on loopback that answers under its own quota, with log-normal latency
/// and the incidents of the scenario's timeline, in the API of the run's provider family: OpenAI's
/// `POST /v1/chat/completions` with its `x-ratelimit-*` headers and 429s carrying `retry-after-ms` and
/// `retry-after`, or Anthropic's `POST /v1/messages` with its `anthropic-ratelimit-*` headers (RFC 3339 resets),
/// 429s carrying `retry-after` in whole seconds and errors in Anthropic's shape (529 `overloaded_error`).
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
            return try await core.respond(to: chat.request, api: "openai")
        }
        router.post("/v1/messages") { request, context -> Response in
            let seed = request.headers[HTTPField.Name("x-storm-seed")!].flatMap { UInt64($0) }
            let messages = try await request.decode(as: MessagesRequest.self, context: context)
            return try await core.respond(to: messages.request(seed: seed), api: "anthropic")
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

        private let state = SluiceMutex<Run?>(nil)
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
            case serve(afterMs: Double, prompt: Int, completion: Int, maxTokens: Int, ProviderQuota.Snapshot)
            /// The request came in by the other family's API.
            case wrongAPI
        }

        func respond(to request: ProviderRequest, api: String) async throws -> Response {
            let (plan, runGeneration, id, family) = state.withLock { run -> (Plan, Int, Int, String) in
                guard run != nil else { return (.idle, 0, 0, api) }
                guard run!.settings.family == api else { return (.wrongAPI, 0, 0, api) }
                return (Self.plan(request, run: &run!), run!.generation, run!.nextID, run!.settings.family)
            }
            let answer = ProviderAnswer(family: family, id: id)
            switch plan {
            case .idle:
                return answer.error(.serviceUnavailable, message: "no run")
            case .wrongAPI:
                return answer.error(.notFound, message: "this run's provider does not speak the \(api) API")
            case .limited(let snapshot, let retryAfterMs):
                return answer.limited(snapshot, retryAfterMs: retryAfterMs)
            case .fail(let status, let afterMs):
                try await Task.sleep(for: .microseconds(Int64(afterMs * 1000)))
                finish(generation: runGeneration, outcome: .error, refund: nil)
                return answer.error(HTTPResponse.Status(code: status), message: "The server had an error.")
            case .hang:
                // Hold the request until the client gives up, the run ends, or 30 s pass.
                let started = StormClock.nowMs()
                while generation.load(ordering: .relaxed) == runGeneration, StormClock.nowMs() - started < 30_000 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                finish(generation: runGeneration, outcome: .timeout, refund: nil)
                return answer.error(.gatewayTimeout, message: "timed out")
            case .serve(let afterMs, let prompt, let completion, let maxTokens, let snapshot):
                try await Task.sleep(for: .microseconds(Int64(afterMs * 1000)))
                finish(
                    generation: runGeneration, outcome: .served(tokens: prompt + completion),
                    refund: (prompt: 0, output: maxTokens - completion))
                return answer.served(model: request.model, prompt: prompt, completion: completion, snapshot)
            }
        }

        private static func plan(_ request: ProviderRequest, run: inout Run) -> Plan {
            let time = max(0, (StormClock.nowMs() - run.startMs) / 1000)
            run.nextID += 1
            run.quota.advance(to: time)
            run.recorder.arrived(at: time, capacity: run.quota.tokensPerSecond)
            let incidents = run.settings.activeIncidents(at: time)
            let latencyFactor = incidents.compactMap(\.latencyFactor).last ?? 1
            var draws = request.seed.map { SeededRandom(seed: $0) } ?? SeededRandom(seed: run.random.next())
            let quantile = min(max(draws.unit(), 1e-6), 1 - 1e-6)
            let maxTokens = max(1, request.maxTokens)
            let completion = max(1, Int((Double(maxTokens) * (0.4 + 0.6 * draws.unit())).rounded()))
            let latency = LatencyModel(settings: run.settings.latency)
            let afterMs = latency.milliseconds(quantile: quantile, outputTokens: completion, factor: latencyFactor)

            if let failing = incidents.last(where: { $0.errorRate != nil }), let rate = failing.errorRate,
                run.random.unit() < rate
            {
                guard let status = failing.errorStatus else { return .hang }
                return .fail(status: status, afterMs: status == 504 ? min(4 * afterMs, 1_500) : afterMs / 2)
            }
            let prompt = request.promptTokens
            switch run.quota.admit(prompt: prompt, maxTokens: maxTokens, at: time) {
            case .admitted(let snapshot):
                return .serve(afterMs: afterMs, prompt: prompt, completion: completion, maxTokens: maxTokens, snapshot)
            case .limited(let retryAfterMs, let snapshot):
                run.recorder.finished(.limited, at: time, capacity: run.quota.tokensPerSecond)
                return .limited(snapshot, retryAfterMs: retryAfterMs)
            }
        }

        private func finish(
            generation runGeneration: Int, outcome: ProviderRecorder.Outcome, refund: (prompt: Int, output: Int)?
        ) {
            state.withLock { run in
                guard run != nil, run!.generation == runGeneration else { return }
                let time = max(0, (StormClock.nowMs() - run!.startMs) / 1000)
                if let refund { run!.quota.refund(prompt: refund.prompt, output: refund.output, at: time) }
                run!.recorder.finished(outcome, at: time, capacity: run!.quota.tokensPerSecond)
            }
        }
    }
}
