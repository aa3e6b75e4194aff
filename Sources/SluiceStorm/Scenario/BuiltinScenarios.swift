import Foundation

/// The stories Sluice exists for, as scenario files compiled into the binary (the binary never reads the source
/// tree). `sluice storm --print-scenario NAME` prints one, a starting point for your own.
public enum BuiltinScenarios {
    public static let names = [
        "hierarchy-collapse", "retry-storm", "runaway-agent", "two-am", "tier-change", "anthropic-overload",
    ]

    /// The JSON text of a built-in scenario.
    public static func text(named name: String) -> String? {
        switch name {
        case "hierarchy-collapse": return hierarchyCollapse
        case "retry-storm": return retryStorm
        case "runaway-agent": return runawayAgent
        case "two-am": return twoAM
        case "tier-change": return tierChange
        case "anthropic-overload": return anthropicOverload
        default: return nil
        }
    }

    /// A built-in by name, or a scenario file by path.
    public static func load(_ nameOrPath: String) throws -> Scenario {
        let text: String
        if let builtin = self.text(named: nameOrPath) {
            text = builtin
        } else if FileManager.default.fileExists(atPath: nameOrPath) {
            text = try String(contentsOfFile: nameOrPath, encoding: .utf8)
        } else {
            throw ScenarioError(
                "no scenario \(nameOrPath): give a file, or one of \(names.joined(separator: ", "))")
        }
        return try decode(text, source: nameOrPath)
    }

    public static func decode(_ text: String, source: String) throws -> Scenario {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let scenario: Scenario
        do {
            scenario = try decoder.decode(Scenario.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw ScenarioError("\(source): \(describe(error))")
        }
        try scenario.validate()
        return scenario
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(path(context)).\(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    // The provider of every built-in: 40,000 tokens and 400 requests per 1-second window (its reset period: a
    // provider's minute compressed into a second; `--time-scale 60` restores it), time to first token median
    // 120 ms / p99 450 ms, plus 0.4 ms per output token. anthropic-overload splits the tokens into 30,000 input
    // and 10,000 output tokens.

    // The story: one user's request fans out to 47 workers at once while 99 other users send small agent
    // requests now and then. Every call is the same size (400 prompt + up to 150 answer tokens); over the run the
    // fleet asks for about 60% of the provider's capacity (the light tenants about 30%, the heavy tree's 237
    // calls about 30%), so every dashboard averaged over a minute is green, but while the heavy tree runs (from
    // second 2 for three seconds and more) its workers alone ask for several times the capacity.

    static let hierarchyCollapse = #"""
        {
          "name": "hierarchy-collapse",
          "description": "99 light tenants, each sending a small agent request now and then, and one heavy tenant whose single request fans out to 47 parallel workers of five calls each, from second 2 on. All calls are the same size. Over the run the fleet asks for about 60% of the provider's capacity, but while the heavy tree runs, demand is several times the capacity: the light tenants should not pay for it.",
          "duration": 10,
          "warmup": 1,
          "saturation": {"from": 2.5, "until": 4.5},
          "baseline_without": ["heavy"],
          "provider": {
            "family": "openai", "requests_per_window": 400, "tokens_per_window": 40000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": []
          },
          "tenants": [
            {"name": "light", "count": 99, "role": "light", "weight": 1, "priority": "interactive",
             "arrivals": {"rate": 0.08},
             "tree": {"planner": {"prompt_tokens": 400, "max_tokens": 150}, "fanout": 2, "steps": 1,
                      "step": {"prompt_tokens": 400, "max_tokens": 150}, "tool_ms": 20, "deadline": 10}},
            {"name": "heavy", "count": 1, "role": "heavy", "weight": 1, "priority": "batch",
             "arrivals": {"concurrent": 1, "from": 2, "until": 2.5},
             "tree": {"planner": {"prompt_tokens": 400, "max_tokens": 150}, "fanout": 47, "steps": 5,
                      "step": {"prompt_tokens": 400, "max_tokens": 150},
                      "final": {"prompt_tokens": 400, "max_tokens": 150}, "tool_ms": 30, "max_in_flight": 64,
                      "deadline": 30}}
          ]
        }
        """#

    static let retryStorm = #"""
        {
          "name": "retry-storm",
          "description": "20 tenants running background agent jobs keep the provider fully loaded. From second 2 to 3.5 it hiccups: capacity drops to 30% and 40% of requests fail with 500. Naive retries turn the hiccup into a storm.",
          "duration": 6,
          "warmup": 1,
          "provider": {
            "family": "openai", "requests_per_window": 400, "tokens_per_window": 40000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": [{"at": 2, "until": 3.5, "capacity": 0.3, "error_rate": 0.4, "error": "500"}]
          },
          "tenants": [
            {"name": "jobs", "count": 20, "role": "other", "priority": "batch",
             "arrivals": {"concurrent": 2},
             "tree": {"planner": {"prompt_tokens": 400, "max_tokens": 150}, "fanout": 3, "steps": 2,
                      "step": {"prompt_tokens": 350, "max_tokens": 120}, "tool_ms": 20, "deadline": 8}}
          ]
        }
        """#

    static let runawayAgent = #"""
        {
          "name": "runaway-agent",
          "description": "30 light tenants, and one agent that keeps spawning sub-agents which call the LLM and then the same failing tool with the same arguments, over and over. Its tree has a budget of 20,000 tokens.",
          "duration": 5,
          "warmup": 1,
          "provider": {
            "family": "openai", "requests_per_window": 400, "tokens_per_window": 40000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": []
          },
          "tenants": [
            {"name": "light", "count": 30, "role": "light", "priority": "interactive",
             "arrivals": {"rate": 0.3},
             "tree": {"planner": {"prompt_tokens": 300, "max_tokens": 120}, "fanout": 2, "steps": 1,
                      "step": {"prompt_tokens": 250, "max_tokens": 100}, "tool_ms": 20, "deadline": 10}},
            {"name": "runaway", "count": 1, "role": "runaway", "priority": "interactive",
             "arrivals": {"concurrent": 1, "from": 0.5},
             "tree": {"planner": {"prompt_tokens": 600, "max_tokens": 150}, "step": {"prompt_tokens": 1, "max_tokens": 1},
                      "tool_ms": 15, "deadline": 60, "budget_tokens": 20000, "loop_guard": 8,
                      "loop": {"tool": "search", "iterations": 500, "parallel": 4,
                               "call": {"prompt_tokens": 1200, "max_tokens": 200}}}}
          ]
        }
        """#

    static let twoAM = #"""
        {
          "name": "two-am",
          "description": "The 2 a.m. test: the provider is in partial outage (60% of its capacity, 20% 503s, twice the latency, and a second of timeouts) while traffic surges tenfold. Callers beyond capacity should get a fast overloaded error instead of piling up; throughput should dip and recover.",
          "duration": 7,
          "warmup": 1,
          "provider": {
            "family": "openai", "requests_per_window": 400, "tokens_per_window": 40000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": [
              {"at": 1.5, "until": 5.5, "capacity": 0.6, "error_rate": 0.2, "error": "503", "latency_factor": 2},
              {"at": 3, "until": 4, "error_rate": 0.1, "error": "timeout", "latency_factor": 2}
            ]
          },
          "tenants": [
            {"name": "light", "count": 50, "role": "light", "priority": "interactive",
             "arrivals": {"rate": 0.2, "surges": [{"at": 2, "until": 5, "factor": 10}]},
             "tree": {"planner": {"prompt_tokens": 300, "max_tokens": 120}, "fanout": 2, "steps": 1,
                      "step": {"prompt_tokens": 250, "max_tokens": 100}, "tool_ms": 20, "deadline": 4}}
          ]
        }
        """#

    static let tierChange = #"""
        {
          "name": "tier-change",
          "description": "The provider's ceiling halves at second 2.5 (a tier change), and doubles back at second 5.5, while 20 tenants running background agent jobs keep it fully loaded. The fleet should follow each new ceiling within two reset periods (2 s).",
          "duration": 8,
          "warmup": 1,
          "provider": {
            "family": "openai", "requests_per_window": 400, "tokens_per_window": 40000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": [{"at": 2.5, "until": 5.5, "capacity": 0.5}]
          },
          "tenants": [
            {"name": "jobs", "count": 20, "role": "other", "priority": "batch",
             "arrivals": {"concurrent": 2},
             "tree": {"planner": {"prompt_tokens": 400, "max_tokens": 150}, "fanout": 3, "steps": 2,
                      "step": {"prompt_tokens": 350, "max_tokens": 120}, "tool_ms": 20, "deadline": 8}}
          ]
        }
        """#

    static let anthropicOverload = #"""
        {
          "name": "anthropic-overload",
          "description": "40 tenants' agents on Anthropic's API (separate input and output token limits, RFC 3339 resets, retry-after in whole seconds) at about three quarters of its input-token limit. From second 2 to 3.5 it is overloaded: 40% of requests fail with 529 overloaded_error and the rest take twice as long; from 4.5 to 5, 70% fail. A 529 is not a 429: the provider is busy for everyone, and clients that retry at once multiply the requests it must turn away; a guard should spend a bounded retry budget and recover at once.",
          "duration": 7,
          "warmup": 1,
          "provider": {
            "family": "anthropic", "requests_per_window": 400, "input_tokens_per_window": 30000,
            "output_tokens_per_window": 10000, "window": 1,
            "latency": {"median_ms": 120, "p99_ms": 450, "ms_per_output_token": 0.4},
            "incidents": [
              {"at": 2, "until": 3.5, "error_rate": 0.4, "error": "529", "latency_factor": 2},
              {"at": 4.5, "until": 5, "error_rate": 0.7, "error": "529"}
            ]
          },
          "tenants": [
            {"name": "agents", "count": 40, "role": "light", "priority": "interactive",
             "arrivals": {"rate": 0.22},
             "tree": {"planner": {"prompt_tokens": 400, "max_tokens": 150}, "fanout": 3, "steps": 2,
                      "step": {"prompt_tokens": 350, "max_tokens": 120}, "tool_ms": 20, "deadline": 8}}
          ]
        }
        """#
}
