import SluiceRedis
import Testing

@testable import Sluice

@Suite("Quota specs: the text operators write")
struct QuotaSpecTests {
    @Test(
        "Valid specs parse, and print canonically (which parses to the same)",
        arguments: [
            ("tokens: bucket rate=90000/min burst=5000", "tokens: bucket rate=90000/min burst=5000"),
            ("tokens: bucket 90000/min", "tokens: bucket rate=90000/min"),
            (
                "tokens:bucket rate=1/s debt=0 ceiling=5/s headroom=10 shadow",
                "tokens: bucket rate=1/s debt=0 ceiling=5/s headroom=10 shadow"
            ),
            (
                "requests: window 100/min; tokens: budget 5000 period=mo",
                "requests: window 100/min; tokens: budget 5000 period=mo"
            ),
            ("requests: window 100/min ; budget 7 ttl=2h", "requests: window 100/min; budget 7 ttl=2h"),
            (
                "requests: window 100/10s exact; window 5000/h approx",
                "requests: window 100/10s exact; window 5000/h approx"
            ),
            ("tokens: none", "tokens: none"),
            ("  tokens:   bucket   rate=5/d ;; ", "tokens: bucket rate=5/d"),
        ])
    func valid(text: String, canonical: String) throws {
        let spec = try QuotaSpec(parsing: text)
        #expect(spec.description == canonical)
        #expect(try QuotaSpec(parsing: spec.description) == spec)
    }

    @Test(
        "Invalid specs are refused, each for its reason",
        arguments: [
            ("", "empty spec"),
            ("bucket rate=1/s", "a spec starts with"),
            ("tokens: bukket rate=1/s", "unknown limit kind"),
            ("tokens: bucket", "rate must be"),
            ("tokens: bucket rate=1/mins", "rate must be"),
            ("tokens: bucket rate=0/s", "rate must be"),
            ("tokens: bucket rate=1/0s", "rate must be"),
            ("tokens: bucket rate=1/s burst=0", "burst must be"),
            ("tokens: bucket rate=1/s burst=-1", "burst must be"),
            ("tokens: bucket rate=1/s burst=1.5", "burst must be"),
            ("tokens: bucket rate=1/s brust=5", "unknown option"),
            ("tokens: bucket rate=1/s rate=2/s", "given twice"),
            ("tokens: bucket rate=10/s ceiling=5/s", "ceiling must be"),
            ("tokens: bucket rate=1/s headroom=101", "headroom must be"),
            ("tokens: bucket rate=1/s shadow=yes", "shadow takes no value"),
            ("tokens: bucket rate=1/s burst", "burst must be"),
            ("requests: window 101/min exact", "exact windows allow at most 100"),
            ("requests: window 10/min exact approx", "exact windows allow at most 100"),
            ("requests: window 10", "window must be"),
            ("tokens: budget", "budget must be"),
            ("tokens: budget 5 period=year", "period must be"),
            ("tokens: budget 5 ttl=0d", "ttl must be"),
            ("tokens: bucket rate=1/s; bucket rate=2/s", "limits alike"),
            ("tokens: bucket rate=1/s; tokens: budget 5", "given twice"),
            ("tokens: none; bucket rate=1/s", "none and limits"),
            ("tokens: none burst=5", "unknown option"),
            ("tokens: bucket rate=1/s requests: window 5/s", "unknown option"),
            ("tokens: bucket rate=99999999999999999999/s", "rate must be"),
        ])
    func invalid(text: String, reason: String) {
        do {
            let spec = try QuotaSpec(parsing: text)
            Issue.record("parsed: \(spec)")
        } catch {
            #expect(error.code == .invalidSpec)
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    @Test("set replaces a limit of the same kind and keeps the others; remove drops a resource")
    func editing() throws {
        var spec = try QuotaSpec(parsing: "tokens: bucket rate=1/s; requests: window 5/min")
        spec.set(QuotaLimit(kind: .bucket, rate: try Rate(parsing: "2/s")), for: "tokens")
        spec.set(QuotaLimit(kind: .window, rate: try Rate(parsing: "50/h")), for: "requests")
        spec.set(QuotaLimit(kind: .budget, total: 9), for: "usd_micros")
        #expect(
            spec.description == "tokens: bucket rate=2/s; requests: window 5/min; window 50/h; usd_micros: budget 9")
        spec.remove(resource: "requests")
        #expect(spec.description == "tokens: bucket rate=2/s; usd_micros: budget 9")
    }
}

@Suite("Decide requests and replies")
struct QuotaRequestTests {
    func limiter() throws -> Limiter {
        try Limiter(
            client: RedisClient(configuration: RedisConfiguration()),
            configuration: .init(defaults: ["global": "tokens: bucket rate=10/s", "tree": "tokens:budget 9"]))
    }

    @Test("Keys and arguments follow decide.lua's header")
    func layout() throws {
        let path = try ScopePath("global=openai", "tenant=acme", "tree=t")
        var request = try DecideRequest(
            limiter: try limiter(), path: path, cost: ["tokens": 5, "requests": 1], priority: .batch)
        request.reservation = ("r1", .seconds(2))
        #expect(request.redisKeys.count == 2 + 3 + 1)
        let arguments = request.arguments.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(arguments[0] == "requests tokens\ntokens: bucket rate=10/s\n\ntokens: budget 9")
        #expect(Array(arguments[1...5]) == ["batch time", "0", "2000", "1", "5"])
        #expect(arguments.count == 6 + 6)
        #expect(arguments.last == "global=openai tenant=* tree=*")
    }

    @Test("A reply is read into a decision")
    func parse() throws {
        let path = try ScopePath("global=openai", "tenant=acme")
        let reply = RedisValue.array([
            .integer(0), .integer(0), .integer(1500), .bulkString([]), .integer(2), .integer(2), .integer(1),
            .integer(1_795_777_559_369),
            .integer(0), .bulkString(Array("tokens".utf8)), .bulkString(Array("bucket".utf8)), .integer(40),
            .integer(100), .integer(0),
            .integer(1), .bulkString(Array("requests".utf8)), .bulkString(Array("window".utf8)), .integer(0),
            .integer(3), .integer(1),
            .integer(1), .bulkString(Array("global=openai tenant=acme".utf8)), .bulkString(Array("bad".utf8)),
        ])
        let decision = try DecideRequest.parse(reply, path: path).decision
        #expect(!decision.allowed)
        #expect(decision.retryAfter == .milliseconds(1500) && decision.retryable)
        #expect(decision.deniedBy?.scope.name == "acme" && decision.deniedBy?.kind == .window)
        #expect(decision.limits.map(\.remaining) == [40, 0])
        #expect(decision.warnings.first?.code == .invalidConfig)
        #expect(decision.decidedAt == 1_795_777_559_369)
    }

    @Test("The common reply, admitted with nothing to report, is the wait and Redis' time alone")
    func shortReply() throws {
        let reply = RedisValue.array([.integer(250), .integer(1_795_777_559_369)])
        let decision = try DecideRequest.parse(reply, path: try ScopePath("global=openai")).decision
        #expect(decision.allowed && decision.wait == .milliseconds(250) && decision.limits.isEmpty)
        #expect(decision.decidedAt == 1_795_777_559_369 && decision.sendsAt == 1_795_777_559_619)
    }

    @Test(
        "A malformed reply is a typed error, not a crash",
        arguments: [
            RedisValue.integer(-1), .array([.integer(1)]), .bulkString([]),
            .array([.integer(1), .integer(0), .integer(0), .bulkString([]), .integer(0), .integer(1), .integer(0)]),
            .array([
                .integer(1), .integer(0), .integer(0), .bulkString([]), .integer(0), .integer(1), .integer(0),
                .integer(7), .bulkString([]), .bulkString(Array("bucket".utf8)), .integer(0), .integer(0), .integer(0),
            ]),
        ])
    func malformed(reply: RedisValue) throws {
        let path = try ScopePath("global=openai")
        #expect(throws: QuotaError.self) { try DecideRequest.parse(reply, path: path) }
    }
}
