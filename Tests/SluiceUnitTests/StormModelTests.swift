import Foundation
import HTTPTypes
import Sluice
import Testing

@testable import SluiceStorm

/// The storm's pieces that need no server: scenarios, the provider's quota and headers, the report's figures.
@Suite("Storm: scenarios, provider quota, metrics")
struct StormModelTests {
    @Test("Every built-in scenario parses, validates, and rescales its timeline", arguments: BuiltinScenarios.names)
    func builtins(name: String) throws {
        let scenario = try BuiltinScenarios.load(name)
        #expect(scenario.name == name)
        let half = scenario.rescaled(to: scenario.duration / 2)
        #expect(half.warmup == scenario.warmup / 2)
        #expect(half.provider.incidents.map(\.at) == scenario.provider.incidents.map { $0.at / 2 })
        #expect(half.provider.window == scenario.provider.window)
    }

    @Test("--time-scale stretches the world: timeline, reset period and deadlines; rates slow down by as much")
    func timeScale() throws {
        let scenario = try BuiltinScenarios.load("hierarchy-collapse")
        let real = scenario.timeScaled(by: 60)
        #expect(real.duration == scenario.duration * 60)
        #expect(real.warmup == scenario.warmup * 60)
        #expect(real.saturation == scenario.saturation.map { TimeWindow(from: $0.from * 60, until: $0.until * 60) })
        #expect(real.provider.window == 60)
        #expect(real.provider.tokensPerWindow == scenario.provider.tokensPerWindow)
        #expect(real.provider.tokensPerSecond == scenario.provider.tokensPerSecond / 60)
        #expect(real.provider.latency == scenario.provider.latency)
        for (scaled, original) in zip(real.tenants, scenario.tenants) {
            #expect(scaled.arrivals.rate == original.arrivals.rate.map { $0 / 60 })
            #expect(scaled.arrivals.from == original.arrivals.from.map { $0 * 60 })
            #expect(scaled.arrivals.until == original.arrivals.until.map { $0 * 60 })
            #expect(scaled.tree.deadline == original.tree.deadline.map { $0 * 60 })
            #expect(scaled.tree.toolMs == original.tree.toolMs)
            #expect(scaled.tree.fanout == original.tree.fanout)
        }
        let incidents = try BuiltinScenarios.load("two-am").timeScaled(by: 60).provider.incidents
        #expect(incidents.map(\.at) == [90, 180])
        #expect(incidents.map(\.until) == [330, 240])
        // Scale 1 is the scenario as written, and the scaled scenario still validates.
        #expect(scenario.timeScaled(by: 1) == scenario)
        try real.validate()
        // The sluice mode's reconciler follows the stretched reset period.
        #expect(SluiceSettings(provider: real.provider).reconciler.window == .seconds(60))
    }

    // The story of issue 14: one request fans out to about 47 concurrent workers, every call is the same size,
    // and over the run the fleet asks for about 60% of the capacity, with bursts far above it.
    @Test("hierarchy-collapse is on the story's numbers")
    func hierarchyStory() throws {
        let scenario = try BuiltinScenarios.load("hierarchy-collapse")
        let light = try #require(scenario.tenants.first { $0.role == "light" })
        let heavy = try #require(scenario.tenants.first { $0.role == "heavy" })
        #expect(light.count == 99 && heavy.count == 1)
        let sizes = Set(
            [light.tree.planner, light.tree.step, heavy.tree.planner, heavy.tree.step]
                + [heavy.tree.final].compactMap {
                    $0
                })
        #expect(sizes.count == 1, "light and heavy calls of the same size")
        #expect(heavy.tree.fanout == 47)
        #expect(heavy.tree.maxInFlight.map { $0 >= 47 } ?? true)
        // Expected tokens of a call: the prompt and 70% of max_tokens (the mock writes 40 to 100%).
        func tokens(_ call: CallShape) -> Double { Double(call.promptTokens) + 0.7 * Double(call.maxTokens) }
        let lightTree =
            tokens(light.tree.planner) + Double(light.tree.fanout * light.tree.steps) * tokens(light.tree.step)
        let heavyTree =
            tokens(heavy.tree.planner) + Double(heavy.tree.fanout * heavy.tree.steps) * tokens(heavy.tree.step)
            + (heavy.tree.final.map(tokens) ?? 0)
        let lightTrees = Double(light.count) * (light.arrivals.rate ?? 0) * scenario.duration
        let demand = lightTrees * lightTree + heavyTree
        let capacity = scenario.provider.tokensPerSecond * scenario.duration
        #expect(abs(demand / capacity - 0.6) < 0.05, "aggregate demand \(demand / capacity) of the capacity")
        // While the heavy tree runs, its 47 workers alone ask for several times the capacity (each worker a call
        // per median latency plus tool time).
        let perWorker = 1000 / (scenario.provider.latency.medianMs + heavy.tree.toolMs)
        let burst = Double(heavy.tree.fanout) * perWorker * tokens(heavy.tree.step)
        #expect(burst > 2 * scenario.provider.tokensPerSecond)
    }

    @Test("Invalid scenarios are refused with the reason")
    func invalid() throws {
        var text = try #require(BuiltinScenarios.text(named: "tier-change"))
        text = text.replacingOccurrences(of: #""capacity": 0.5"#, with: #""capacity": -1"#)
        #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(text, source: "test") }
        let missing = #"{"name": "x", "description": "", "duration": 5, "warmup": 1, "tenants": []}"#
        let error = #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(missing, source: "x.json") }
        #expect(error?.description.contains("provider") == true)
    }

    // Found by Fuzz/FuzzScenario: each of these validated, then trapped converting a time or a rate to an integer
    // (the provider's time series, the `sluice` mode's bucket rates, the workers' sleeps), or gave the library
    // settings it refuses.
    @Test(
        "Values a run cannot represent are refused when the scenario is read, not by a crash during the run",
        arguments: [
            (#""duration": 8,"#, #""duration": 1e300,"#, "duration"),
            (#""window": 1,"#, #""window": 1e-300,"#, "window"),
            (#""window": 1,"#, #""window": 1e300,"#, "window"),
            (#""tokens_per_window": 40000"#, #""tokens_per_window": 9223372036854775807"#, "quotas"),
            (#""tool_ms": 20"#, #""tool_ms": 1e300"#, "tool_ms"),
            (#""deadline": 8"#, #""deadline": 1e300"#, "deadline"),
            (#""capacity": 0.5"#, #""capacity": 1e300"#, "capacity"),
            (#""until": 5.5"#, #""until": 1e300"#, "until"),
            (#""p99_ms": 450"#, #""p99_ms": 1e300"#, "latency"),
        ])
    func unrepresentable(original: String, replacement: String, reason: String) throws {
        let text = try #require(BuiltinScenarios.text(named: "tier-change"))
        #expect(text.contains(original))
        let error = #expect(throws: ScenarioError.self) {
            try BuiltinScenarios.decode(text.replacingOccurrences(of: original, with: replacement), source: "t.json")
        }
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("The baseline leaves out the named tenant groups")
    func baseline() throws {
        let scenario = try BuiltinScenarios.load("hierarchy-collapse")
        let baseline = try #require(scenario.baseline)
        #expect(baseline.tenants.map(\.name) == ["light"])
    }

    @Test(
        "Go-style durations as OpenAI sends them",
        arguments: [
            (0.0, "0s"), (12.0, "12ms"), (1.5, "1.5ms"), (0.34, "340µs"), (1_000.0, "1s"), (179_560.0, "2m59.56s"),
            (360_000.0, "6m0s"), (85_656_648.0, "23h47m36.648s"),
        ])
    func goDurations(milliseconds: Double, expected: String) {
        #expect(GoDurationFormat.string(milliseconds: milliseconds) == expected)
    }

    @Test("The provider's quota admits its window, then answers 429 with a retry-after, and refunds")
    func quota() throws {
        let settings = ProviderSettings(requestsPerWindow: 100, tokensPerWindow: 1_000, window: 1)
        var quota = ProviderQuota(settings: settings)
        for _ in 0..<2 {
            guard case .admitted = quota.admit(prompt: 200, maxTokens: 300, at: 0) else {
                Issue.record("refused early"); return
            }
        }
        guard case .limited(let retryAfterMs, let snapshot) = quota.admit(prompt: 200, maxTokens: 300, at: 0) else {
            Issue.record("admitted beyond the quota")
            return
        }
        #expect(abs(retryAfterMs - 500) < 1)
        #expect(snapshot[.tokens]?.remaining == 0)
        quota.refund(prompt: 0, output: 300, at: 0)
        guard case .limited = quota.admit(prompt: 200, maxTokens: 300, at: 0) else {
            Issue.record("over-refunded"); return
        }
        guard case .admitted = quota.admit(prompt: 200, maxTokens: 300, at: 0.2) else {
            Issue.record("did not refill"); return
        }
    }

    @Test("A capacity incident changes the stated limit, and Sluice's parser reads the provider's headers")
    func capacityHeaders() throws {
        let scenario = try BuiltinScenarios.load("tier-change")
        var quota = ProviderQuota(settings: scenario.provider)
        quota.advance(to: 3)
        #expect(quota.snapshot[.tokens]?.limit == 20_000)
        let snapshot = try #require(quota.snapshot[.tokens])
        let headers = [
            (name: "x-ratelimit-limit-tokens", value: String(snapshot.limit)),
            (name: "x-ratelimit-remaining-tokens", value: String(snapshot.remaining)),
            (name: "x-ratelimit-reset-tokens", value: GoDurationFormat.string(milliseconds: 250)),
            (name: "retry-after-ms", value: "250"),
        ]
        let observation = ProviderObservation(status: 429, headers: headers)
        #expect(observation.responseClass == .quota)
        #expect(observation[.tokens]?.limit == 20_000)
        #expect(observation[.tokens]?.resetAfter == .milliseconds(250))
        #expect(observation.retryAfter == .milliseconds(250))
        quota.advance(to: 6)
        #expect(quota.snapshot[.tokens]?.limit == 40_000)
    }

    @Test("Weighted max-min fair shares")
    func fairness() {
        let shares = RunMetrics.fairShares(
            demand: ["a": 10, "b": 100, "c": 100], weight: ["a": 1, "b": 1, "c": 2], capacity: 100)
        #expect(shares["a"] == 10)
        #expect(abs(shares["b"]! - 30) < 1e-9)
        #expect(abs(shares["c"]! - 60) < 1e-9)
    }

    @Test("Following a cut: the time until the last 429 after it")
    func follow() throws {
        var scenario = try BuiltinScenarios.load("tier-change")
        scenario.duration = 8
        var bins = Array(repeating: ProviderRecorder.Bin(), count: 80)
        for index in bins.indices {
            bins[index].capacityTokensPerSecond = (25..<55).contains(index) ? 20_000 : 40_000
            bins[index].tokensServed = Int(bins[index].capacityTokensPerSecond / 10)
        }
        bins[31].limited = 3  // last 429 in the bin ending at 3.2 s: 0.7 s after the cut at 2.5 s
        let run = RunResult(
            scenario: scenario, mode: .sluice, isBaseline: false, provider: bins, calls: [], waiting: [],
            workerFailures: [])
        let follow = try #require(RunMetrics.follow(run))
        #expect(abs(follow - 0.7) < 1e-9)
    }

    @Test("Anthropic's quota: separate input and output buckets, output charged at max_tokens and refunded")
    func anthropicQuota() throws {
        let settings = ProviderSettings(
            anthropicRequestsPerWindow: 100, inputTokensPerWindow: 10_000, outputTokensPerWindow: 1_000, window: 1)
        #expect(settings.tokensPerWindow == 11_000)
        var quota = ProviderQuota(settings: settings)
        #expect(quota.resources == [.requests, .inputTokens, .outputTokens])
        guard case .admitted(let first) = quota.admit(prompt: 100, maxTokens: 600, at: 0) else {
            Issue.record("refused early")
            return
        }
        #expect(first[.inputTokens] == ProviderQuota.Level(limit: 10_000, remaining: 9_900, resetMs: 10))
        #expect(first[.outputTokens]?.remaining == 400)
        #expect(first[.tokens] == nil)
        // The output bucket refuses although the input bucket has room: 200 more output tokens take 200 ms.
        guard case .limited(let retryAfterMs, let snapshot) = quota.admit(prompt: 100, maxTokens: 600, at: 0) else {
            Issue.record("admitted beyond the output limit")
            return
        }
        #expect(abs(retryAfterMs - 200) < 1e-6)
        #expect(snapshot[.inputTokens]?.remaining == 9_900)
        // The first answer used 250 of its 600: 350 come back, and the second request passes.
        quota.refund(prompt: 0, output: 350, at: 0)
        guard case .admitted(let second) = quota.admit(prompt: 100, maxTokens: 600, at: 0) else {
            Issue.record("the refund did not reach the output bucket")
            return
        }
        #expect(second[.outputTokens]?.remaining == 150)
        #expect(second[.inputTokens]?.remaining == 9_800)
    }

    @Test("Anthropic's headers and errors as the mock writes them, read back by Sluice's parser")
    func anthropicHeaders() throws {
        let settings = ProviderSettings(
            anthropicRequestsPerWindow: 400, inputTokensPerWindow: 30_000, outputTokensPerWindow: 10_000, window: 60)
        var quota = ProviderQuota(settings: settings)
        _ = quota.admit(prompt: 3_000, maxTokens: 1_000, at: 0)
        let answer = ProviderAnswer(family: "anthropic", id: 7)
        let snapshot = quota.snapshot
        let now = Date()
        func read(_ status: Int, _ fields: HTTPFields) -> ProviderObservation {
            ObservationParser().observe(status: status, headers: fields, now: now)
        }
        let served = read(200, answer.headers(snapshot))
        #expect(served[.requests]?.limit == 400)
        #expect(served[.requests]?.remaining == 399)
        #expect(served[.inputTokens]?.limit == 30_000)
        #expect(served[.inputTokens]?.remaining == 27_000)
        #expect(served[.outputTokens]?.remaining == 9_000)
        #expect(served[.tokens] == nil)
        // 3,000 of 30,000 per minute: full again in 6 s, written as an RFC 3339 instant with milliseconds.
        let reset = try #require(served[.inputTokens]?.resetAfter)
        #expect(abs((reset - .seconds(6)) / .milliseconds(1)) < 50, "reset in \(reset)")
        let header = try #require(answer.headers(snapshot)[HTTPField.Name("anthropic-ratelimit-input-tokens-reset")!])
        #expect(header.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(header)")

        let limited = answer.limited(snapshot, retryAfterMs: 1_200)
        #expect(limited.status == .tooManyRequests)
        #expect(limited.headers[.retryAfter] == "2")
        #expect(limited.headers[HTTPField.Name("retry-after-ms")!] == nil)
        let observation = read(429, limited.headers)
        #expect(observation.responseClass == .quota)
        #expect(observation.retryAfter == .seconds(2))
        #expect(observation[.outputTokens]?.limit == 10_000)

        let overloaded = answer.error(HTTPResponse.Status(code: 529), message: "x")
        #expect(overloaded.status.code == 529)
        #expect(read(529, overloaded.headers).responseClass == .overload)
        // {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_storm_7"}
        let errorBody = try #require(
            try JSONSerialization.jsonObject(
                with: Data(
                    MessagesResponse.error(type: "overloaded_error", message: "Overloaded", requestID: "req_storm_7")
                        .utf8)) as? [String: Any])
        #expect(errorBody["type"] as? String == "error" && errorBody["request_id"] as? String == "req_storm_7")
        let errorDetail = try #require(errorBody["error"] as? [String: Any])
        #expect(
            errorDetail["type"] as? String == "overloaded_error" && errorDetail["message"] as? String == "Overloaded")
        // The bodies are JSON whatever their strings hold (the model's name is the client's).
        let model = #"gpt "4" \ 5"#
        let completion = try #require(
            try JSONSerialization.jsonObject(
                with: Data(
                    ChatResponse.body(id: "c1", model: model, promptTokens: 3, completionTokens: 2, created: 1).utf8))
                as? [String: Any])
        #expect(completion["model"] as? String == model)
        #expect((completion["usage"] as? [String: Any])?["total_tokens"] as? Int == 5)
        #expect(MessagesResponse.errorType(status: 529) == "overloaded_error")
        #expect(MessagesResponse.errorType(status: 429) == "rate_limit_error")
        #expect(MessagesResponse.errorType(status: 500) == "api_error")
        // An OpenAI provider keeps OpenAI's headers.
        let openAI = ProviderAnswer(family: "openai", id: 1).limited(
            ProviderQuota(settings: ProviderSettings(requestsPerWindow: 10, tokensPerWindow: 100)).snapshot,
            retryAfterMs: 250)
        #expect(openAI.headers[HTTPField.Name("retry-after-ms")!] == "250")
        #expect(openAI.headers[HTTPField.Name("x-ratelimit-limit-tokens")!] == "100")
    }

    @Test(
        "RFC 3339 instants with milliseconds, as Anthropic's resets",
        arguments: [
            (0.0, "1970-01-01T00:00:00.000Z"), (1_747_822_531_250.0, "2025-05-21T10:15:31.250Z"),
            (951_782_400_000.0, "2000-02-29T00:00:00.000Z"), (1_709_251_199_999.9, "2024-02-29T23:59:59.999Z"),
            (4_102_444_800_000.0, "2100-01-01T00:00:00.000Z"),
        ])
    func rfc3339(epochMs: Double, expected: String) {
        #expect(RFC3339Format.string(epochMs: epochMs) == expected)
    }

    @Test("Anthropic scenarios need both token limits, and only Anthropic ones may have them")
    func anthropicValidation() throws {
        let text = try #require(BuiltinScenarios.text(named: "anthropic-overload"))
        let scenario = try BuiltinScenarios.decode(text, source: "test")
        #expect(scenario.provider.family == "anthropic")
        #expect(scenario.provider.tokensPerWindow == 40_000)
        let noOutput = text.replacingOccurrences(of: #""output_tokens_per_window": 10000,"#, with: "")
        let missing = #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(noOutput, source: "a.json") }
        #expect(missing?.description.contains("output_tokens_per_window") == true)
        let mismatch = text.replacingOccurrences(
            of: #""requests_per_window": 400,"#, with: #""requests_per_window": 400, "tokens_per_window": 5,"#)
        #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(mismatch, source: "b.json") }
        var openAI = try #require(BuiltinScenarios.text(named: "tier-change"))
        openAI = openAI.replacingOccurrences(
            of: #""tokens_per_window": 40000,"#, with: #""tokens_per_window": 40000, "input_tokens_per_window": 1,"#)
        #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(openAI, source: "c.json") }
        let unknown = text.replacingOccurrences(of: #""family": "anthropic""#, with: #""family": "gemini""#)
        #expect(throws: ScenarioError.self) { try BuiltinScenarios.decode(unknown, source: "d.json") }
        // A scenario survives the trip to a worker (the assignment file is JSON too).
        let decoded = try JSONDecoder().decode(Scenario.self, from: JSONEncoder().encode(scenario))
        #expect(decoded == scenario)
    }

    @Test("INFO commandstats: scripts and commands sent on their own count, measuring and scripts' own commands not")
    func commandStats() {
        let info = """
            # Commandstats\r
            cmdstat_fcall:calls=100,usec=5000,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r
            cmdstat_evalsha:calls=40,usec=1200,usec_per_call=30.00,rejected_calls=1,failed_calls=0\r
            cmdstat_eval:calls=2,usec=300,usec_per_call=150.00,rejected_calls=0,failed_calls=0\r
            cmdstat_hmget:calls=500,usec=400,usec_per_call=0.80,rejected_calls=0,failed_calls=0\r
            cmdstat_zrem:calls=30,usec=60,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r
            cmdstat_function|load:calls=1,usec=900,usec_per_call=900.00,rejected_calls=0,failed_calls=0\r
            cmdstat_hgetall:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r
            cmdstat_config|resetstat:calls=1,usec=80,usec_per_call=80.00,rejected_calls=0,failed_calls=0\r
            cmdstat_info:calls=2,usec=80,usec_per_call=40.00,rejected_calls=0,failed_calls=0\r
            not a stat line\r
            """
        let stats = RedisCommandStats(info: info)
        #expect(stats.commands["function|load"] == .init(calls: 1, microseconds: 900))
        #expect(stats.scriptCalls == 143)
        #expect(stats.scriptMicroseconds == 6_500)
        #expect(stats.topLevelCalls == 143 + 1 + 3)
        let earlier = RedisCommandStats(info: "cmdstat_fcall:calls=60,usec=3000\ncmdstat_ping:calls=1,usec=1")
        let since = stats.subtracting(earlier)
        #expect(since.commands["fcall"] == .init(calls: 40, microseconds: 2_000))
        #expect(since.commands["ping"] == .init(calls: 0, microseconds: 0))
        let cost = RedisCost(calls: 500, scriptMicroseconds: 12_500, providerCalls: 250)
        #expect(cost.callsPerProviderCall == 2)
        #expect(cost.microsecondsPerProviderCall == 50)
        #expect(RedisCost(calls: 5, scriptMicroseconds: 5, providerCalls: 0).callsPerProviderCall == nil)
    }

    @Test("The commands counted as the scripts' own are exactly those lua/ sends")
    func scriptInnerCommandsMatchLua() throws {
        let lua = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("lua")
        // The entries, and the shared modules they use (lua/lib/).
        let files =
            try FileManager.default.contentsOfDirectory(atPath: lua.path).filter { $0.hasSuffix(".lua") }
            + FileManager.default.contentsOfDirectory(atPath: lua.appendingPathComponent("lib").path)
            .filter { $0.hasSuffix(".lua") }.map { "lib/" + $0 }
        #expect(!files.isEmpty)
        var names: Set<String> = []
        for file in files {
            let text = try String(contentsOf: lua.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: /redis\.p?call\(\s*(?<quote>['"])(?<name>[A-Za-z]+)\k<quote>/) {
                names.insert(match.output.name.lowercased())
            }
            // Every call names its command literally, or the set above could miss one.
            #expect(
                text.matches(of: /redis\.p?call\(\s*[^'"\s]/).isEmpty, "\(file) calls a command by a variable")
        }
        #expect(names == RedisCommandStats.scriptInnerCommands)
    }

    @Test("light_refusals: the light tenants' limiter refusals and provider 429s, nil without light tenants")
    func lightRefusals() throws {
        let scenario = try BuiltinScenarios.load("hierarchy-collapse")
        func call(_ role: String, refusals: Int, limited: Int) -> CallRecord {
            CallRecord(
                tenant: role == "light" ? "light-1" : "heavy", group: role, role: role, tree: "t", start: 1, end: 1.2,
                outcome: .ok, attempts: 1 + limited, provider429s: limited, providerErrors: 0, tokens: 500,
                estimate: 550, waitedMs: 0, refusal: nil, refusals: refusals)
        }
        let calls = [
            call("light", refusals: 3, limited: 0), call("light", refusals: 0, limited: 2),
            call("heavy", refusals: 40, limited: 5),
        ]
        let run = RunResult(
            scenario: scenario, mode: .singleBucket, isBaseline: false,
            provider: Array(repeating: ProviderRecorder.Bin(), count: 80), calls: calls, waiting: [],
            workerFailures: [], redisCost: RedisCost(calls: 900, scriptMicroseconds: 4_500, providerCalls: 300))
        let metrics = RunMetrics(run, baseline: nil)
        #expect(metrics.lightRefusals == 5)
        #expect(metrics.redisCallsPerProviderCall == 3)
        #expect(metrics.redisMicrosecondsPerProviderCall == 15)
        let noLight = RunResult(
            scenario: try BuiltinScenarios.load("retry-storm"), mode: .none, isBaseline: false, provider: [],
            calls: [], waiting: [], workerFailures: [])
        #expect(RunMetrics(noLight, baseline: nil).lightRefusals == nil)
        #expect(RunMetrics(noLight, baseline: nil).redisCallsPerProviderCall == nil)
    }

    @Test("The retry loop adds up the limiter's refusals over all attempts; a gate's refusal counts once")
    func retryLoopRefusals() async throws {
        let group = try #require(try BuiltinScenarios.load("hierarchy-collapse").tenants.first)
        let tree = AgentTree(
            id: "t", tenant: "light-1", group: group, startMs: StormClock.nowMs(),
            deadlineMs: StormClock.nowMs() + 10_000, depth: 0)
        let ticket = CallTicket(tree: tree, shape: group.tree.planner, seed: 1, kind: "planner")
        let loop = RetryLoop(
            maxAttempts: 3, admit: { _ in .init(admitted: true, refusals: 2) }, delay: { _, _ in .zero })
        let conclusion = await loop.run(ticket) { number in
            AttemptResult(
                status: number == 1 ? 429 : 200, headers: [], promptTokens: 1, completionTokens: 1, latencyMs: 1,
                sentMs: 0)
        }
        #expect(conclusion.outcome == .ok)
        #expect(conclusion.refusals == 4)
        let refusedAtOnce = RetryLoop(
            maxAttempts: 3, admit: { _ in .init(admitted: false, refusals: 7) }, delay: { _, _ in .zero })
        let never = await refusedAtOnce.run(ticket) { _ in
            Issue.record("sent although not admitted")
            return AttemptResult(
                status: 200, headers: [], promptTokens: 0, completionTokens: 0, latencyMs: 0, sentMs: 0)
        }
        #expect(never.outcome == .deadline && never.refusals == 7)
        #expect(GateConclusion(outcome: .shed, refusal: "overloaded").refusals == 1)
        #expect(GateConclusion(outcome: .failed, refusal: "tree-not-opened").refusals == 0)
        #expect(GateConclusion.ok.refusals == 0)
    }

    @Test("summary.json has exactly the issue's fields, null where a figure does not apply")
    func summaryShape() throws {
        let scenario = try BuiltinScenarios.load("retry-storm")
        let run = RunResult(
            scenario: scenario, mode: .none, isBaseline: false,
            provider: Array(repeating: ProviderRecorder.Bin(), count: 60), calls: [], waiting: [], workerFailures: [])
        let json = try StormReport(runs: [run]).summaryJSON
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object != nil)
        let runs = try #require(object?["runs"] as? [[String: Any]])
        #expect(
            Set(runs[0].keys) == [
                "scenario", "mode", "provider_429s", "provider_429s_after_warmup", "goodput_tokens_per_sec",
                "utilization", "light_p50_ms", "light_p99_ms", "light_p99_baseline_ms", "jain_index",
                "runaway_tokens", "runaway_budget", "peak_queue_depth", "shed", "shed_by_reason", "shed_p99_ms",
                "follow_seconds", "light_refusals", "redis_calls_per_provider_call", "redis_us_per_provider_call",
            ])
        #expect((runs[0]["shed_by_reason"] as? [String: Any])?.isEmpty == true, "an object, empty without shed calls")
        #expect(runs[0]["runaway_tokens"] is NSNull)
        #expect(runs[0]["light_p99_baseline_ms"] is NSNull)
        #expect(runs[0]["light_refusals"] is NSNull)
        #expect(runs[0]["redis_calls_per_provider_call"] is NSNull)
        // Measured figures carry their numbers.
        var measured = run
        measured.redisCost = RedisCost(calls: 700, scriptMicroseconds: 3_150, providerCalls: 200)
        let withRedis =
            try JSONSerialization.jsonObject(
                with: Data(try StormReport(runs: [measured]).summaryJSON.utf8)) as? [String: Any]
        let entry = try #require((withRedis?["runs"] as? [[String: Any]])?.first)
        #expect(entry["redis_calls_per_provider_call"] as? Double == 3.5)
        #expect(entry["redis_us_per_provider_call"] as? Double == 15.75)
        #expect(StormReport(runs: [measured]).table.contains("15.8"))
    }
}
