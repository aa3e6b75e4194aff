import Foundation
import Sluice
import SluiceRedis

/// Malformed and hostile input through the public API, one at a time: costs (negative, zero, past 2^50, unnamed
/// resources), names (empty, separators, wildcards, hash-tag braces, control bytes, 10 kB), quota specs, tree
/// headers, provider headers and provider calls. Each must end in a typed error (``QuotaError``,
/// ``BackpressureError``, ``RedisError``) or be taken as valid input — never a crash, a hang or another error.
struct SoakHostileInputs: Sendable {
    let limiter: Limiter
    let backpressure: Backpressure
    let trees: RequestTrees

    static let names: [String] = [
        "", " ", "a b", "=", "tenant=x", "*", "{soak}", "}{", "%", "%41", "\u{0}", "\n", "é\u{301}", "😀",
        String(repeating: "n", count: 10_000), "../../etc", "global=soak tenant=t0",
    ]
    static let costs: [[String: Int64]] = [
        [:], ["tokens": -1], ["tokens": 0], ["tokens": 1 << 51], ["tokens": Int64.max], ["": 1], [" ": 1],
        ["tok{ens}": 1], ["tokens": 1, "requests": -5], [String(repeating: "r", count: 5_000): 1],
    ]
    static let specs: [String] = [
        "", ";", "tokens:", "tokens: bucket", "tokens: bucket rate=-1/s", "tokens: bucket rate=1/0s",
        "tokens: bucket rate=99999999999999999999/s", "tokens: window 0/s", "tokens: window 5/s exact exact",
        "tokens: budget 10 period=fortnight", "tokens: bucket rate=1/s burst=1 debt=-1", "tokens: none none",
        "\u{0}: bucket 1/s", "tokens: bucket 1/s; tokens: bucket 2/s", String(repeating: "tokens: none;", count: 2_000),
    ]
    static let headerValues: [String] = [
        "", "-1", "NaN", "inf", "1e308", "99999999999999999999999", "1h2m3s4ms5us6ns", "999999999h", "1.5.5s",
        "Wed, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "garbage", "0x10", "\u{0}",
        String(repeating: "9", count: 4_000), "limit=100, remaining=-5, reset=-1", "r;q=1;w=-1",
    ]
    static let headerNames = [
        "retry-after", "retry-after-ms", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
        "x-ratelimit-limit-requests", "anthropic-ratelimit-tokens-reset", "ratelimit", "ratelimit-policy",
        "anthropic-ratelimit-output-tokens-remaining",
    ]

    var count: Int { 6 }

    /// Sends hostile input number `number` (modulo ``count`` kinds; the rest of it picks within the kind) and says
    /// what came of it: `typed:<code>` (a typed error), `accepted`, or `untyped:<type>` (a defect).
    func send(number: Int) async -> (String, String) {
        var random = SeededRandom(seed: SeededRandom.mix(UInt64(truncatingIfNeeded: number / count)))
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        switch number % count {
        case 0:
            let cost = pick(Self.costs)
            return ("cost", await classify { _ = try await limiter.decide(soakPath("t1"), cost: Cost(cost)) })
        case 1:
            let name = pick(Self.names)
            return (
                "name",
                await classify {
                    // Unescaped names, as a program passes them (the text form would refuse most of them first).
                    let path = try ScopePath([Scope("global", SoakPlan.partition), Scope("tenant", name)])
                    _ = try await limiter.decide(path, cost: ["hostile": 1])
                }
            )
        case 2:
            let spec = pick(Self.specs)
            return ("spec", await classify { _ = try QuotaSpec(parsing: spec) })
        case 3:
            // A tree header from a caller: garbage decodes to nil, never traps.
            let header = pick(Self.headerValues) + pick(["", ";", ";d=-1", ";t=\u{0}", "/../x"])
            _ = TreeContext(headerValue: header)
            return ("tree-header", "accepted")
        case 4:
            var fields: [(name: String, value: String)] = []
            for _ in 0..<(1 + Int(random.next() % 4)) {
                fields.append((pick(Self.headerNames), pick(Self.headerValues)))
            }
            let status = pick([0, -1, 200, 429, 503, 529, 999, Int.max])
            _ = ObservationParser().observe(status: status, headers: fields)
            return ("headers", "accepted")
        default:
            let call = pick([
                ProviderCall(scope: "", estimate: ["tokens": 1]),
                ProviderCall(scope: "provider", estimate: ["tokens": -3], quotaPath: soakPath("t2")),
                ProviderCall(scope: "provider", concurrency: -1),
                ProviderCall(scope: "provider", timeout: .seconds(-1)),
                ProviderCall(scope: "provider", maxAttempts: 0),
                ProviderCall(scope: String(repeating: "s", count: 10_000), estimate: ["tokens": 1]),
            ])
            let backpressure = self.backpressure
            return (
                "provider-call",
                await classify {
                    // The operation never reaches a provider: a call that gets this far is accepted and used nothing.
                    _ = try await backpressure.call(call) { _ in CallOutcome((), usage: ["tokens": 0]) }
                }
            )
        }
    }

    private func soakPath(_ tenant: String) -> ScopePath {
        // swift-format-ignore: NeverForceUnwrap
        try! ScopePath(parsing: ["global=\(SoakPlan.partition)", "tenant=\(tenant)"])
    }

    private func classify(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "accepted"
        } catch let error as QuotaError {
            return "typed:\(error.code)"
        } catch let error as BackpressureError {
            return "typed:\(error.code)"
        } catch let error as RedisError {
            return "typed:\(error.code)"
        } catch {
            return "untyped:\(type(of: error))"
        }
    }
}
