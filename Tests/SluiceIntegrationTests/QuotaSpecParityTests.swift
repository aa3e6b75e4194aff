import Sluice
import SluiceRedis
import Testing

/// The Swift parser (the CLI's and the defaults' check) and the script's parser must agree on which
/// texts are valid: otherwise `sluice quota list` would call a field valid that decisions ignore.
@Suite("Quota specs: Swift and Lua agree")
struct QuotaSpecParityTests {
    static let corpus = [
        "tokens: bucket rate=90000/min burst=5000", "tokens: bucket 90000/min", "tokens:bucket rate=1/s debt=0",
        "tokens: bucket rate=1/s ceiling=5/s headroom=10 shadow",
        "requests: window 100/min; tokens: budget 5000 period=mo",
        "requests: window 100/min ; budget 7 ttl=2h", "requests: window 100/10s exact; window 5000/h approx",
        "tokens: none",
        "  tokens:   bucket   rate=5/d ;; ", "tokens: budget 0", "tokens: bucket rate=1/1000000s",
        "tokens: bucket rate=1/1000001s",
        "tokens: bucket rate=1125899906842624/s", "tokens: bucket rate=1125899906842625/s",
        "tokens: budget 00000000000000000005",
        "", "bucket rate=1/s", "tokens: bukket rate=1/s", "tokens: bucket", "tokens: bucket rate=1/mins",
        "tokens: bucket rate=0/s", "tokens: bucket rate=1/0s", "tokens: bucket rate=1/00s",
        "tokens: bucket rate=1/s burst=0",
        "tokens: bucket rate=1/s burst=-1", "tokens: bucket rate=1/s burst=1.5", "tokens: bucket rate=1/s brust=5",
        "tokens: bucket rate=1/s rate=2/s", "tokens: bucket rate=10/s ceiling=5/s",
        "tokens: bucket rate=1/s headroom=101",
        "tokens: bucket rate=1/s shadow=yes", "tokens: bucket rate=1/s burst", "requests: window 101/min exact",
        "requests: window 10/min exact approx", "requests: window 10", "tokens: budget", "tokens: budget 5 period=year",
        "tokens: budget 5 ttl=0d", "tokens: budget 5 ttl=1000001s", "tokens: bucket rate=1/s; bucket rate=2/s",
        "tokens: bucket rate=1/s; tokens: budget 5", "tokens: none; bucket rate=1/s", "tokens: bucket rate=1/s; none",
        "tokens: none burst=5", "tokens: bucket rate=1/s requests: window 5/s",
        "tokens: bucket rate=99999999999999999999/s",
        "tokens: window ５/s", "tokéns: bucket rate=1/s", "_t9: budget 3", "9t: budget 3",
        String(repeating: "r", count: 32) + ": budget 1", String(repeating: "r", count: 33) + ": budget 1",
        "tokens: bucket rate=1/s;requests: window 2/s", "tokens:\tbucket\nrate=1/s", "tokens: bucket rate = 1/s",
    ]

    @Test("Every text of the corpus is valid for both or for neither")
    func parity() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let limiter = try fixture.limiter()
        for (index, text) in Self.corpus.enumerated() {
            let swiftValid = (try? QuotaSpec(parsing: text)) != nil
            try await fixture.configure("tenant=s\(index)", text)
            let decision = try await limiter.decide(
                try fixture.path("tenant=s\(index)"), cost: ["tokens": 1, "requests": 1])
            let luaValid = decision.warnings.isEmpty
            #expect(swiftValid == luaValid, "\"\(text)\": Swift \(swiftValid), Lua \(luaValid) \(decision.warnings)")
        }
    }
}
