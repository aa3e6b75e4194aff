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

    @Test("A call inside a tree adds its keys and decide.lua's tree group, after the reservation")
    func treeLayout() throws {
        let path = try ScopePath("global=openai", "tenant=acme", "tree=t")
        var request = try DecideRequest(
            limiter: try limiter(), path: path, cost: ["tokens": 5, "requests": 1], priority: .interactive)
        let context = TreeContext(
            treeID: "t{1}", depth: 2, deadlineMilliseconds: 1_800_000_000_000, partition: "openai")
        request.reservation = ("r1", .seconds(2))
        request.tree = TreeCall(context, tool: "search", arguments: "q", ttl: .seconds(90))
        let keys = request.redisKeys.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(keys.count == 2 + 3 + 1 + 3)
        #expect(
            Array(keys.suffix(4)) == [
                "sluice:{openai}:r:r1", "sluice:{openai}:tree:t%7B1%7D", "sluice:{openai}:tree:t%7B1%7D:calls",
                "sluice:{openai}:events",
            ])
        let arguments = request.arguments.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(arguments.count == 6 + 6 + 8)
        #expect(
            Array(arguments.suffix(8)) == [
                "tree", "r1", "90000", "2", "1800000000000", RequestTrees.loopKey(tool: "search", arguments: "q"),
                "t{1}", "2",
            ])
        // No tree scope on the path: a refusal is reported on the root.
        var flat = try DecideRequest(
            limiter: try limiter(), path: try ScopePath("global=openai"), cost: ["tokens": 5], priority: .interactive)
        flat.reservation = ("r2", .seconds(2))
        flat.tree = TreeCall(context)
        #expect(flat.arguments.map { String(decoding: $0.bytes, as: UTF8.self) }.suffix(3) == ["", "t{1}", "0"])
    }

    @Test("A tree and a quota path in different partitions are refused before any I/O")
    func treePartition() throws {
        let path = try ScopePath("global=openai")
        let other = TreeCall(TreeContext(treeID: "t", partition: "anthropic"))
        #expect(throws: QuotaError.self) { try other.validate(path: path, limiter: try limiter()) }
        let zero = TreeCall(TreeContext(treeID: "t", partition: "openai"), ttl: .zero)
        #expect(throws: QuotaError.self) { try zero.validate(path: path, limiter: try limiter()) }
        try TreeCall(TreeContext(treeID: "t", partition: "openai")).validate(path: path, limiter: try limiter())
    }

    @Test(
        "A tree's refusal is read as a pseudo-limit and becomes the BackpressureError RequestTrees.enter throws",
        arguments: [
            ("tree-budget", "tokens", BackpressureError.Code.treeBudget, 800, 400),
            ("tree-depth", "*", .treeDepth, 2, -1),
            ("loop-guard", "*", .loopGuard, 5, 0),
            ("tree-in-flight", "*", .treeInFlight, 4, 0),
            ("tree-deadline", "*", .deadlineExceeded, 1_795_777_559_000, -369),
        ])
    func treeRefusal(kind: String, resource: String, code: BackpressureError.Code, limit: Int64, remaining: Int64)
        throws
    {
        let path = try ScopePath("global=openai", "tree=t")
        let reply = RedisValue.array([
            .integer(0), .integer(0), .integer(kind == "tree-in-flight" ? 0 : -1), .bulkString([]), .integer(2),
            .integer(2), .integer(0), .integer(1_795_777_559_369),
            .integer(0), .bulkString(Array("tokens".utf8)), .bulkString(Array("bucket".utf8)), .integer(40),
            .integer(100), .integer(0),
            .integer(1), .bulkString(Array(resource.utf8)), .bulkString(Array(kind.utf8)), .integer(remaining),
            .integer(limit), .integer(1),
        ])
        let decision = try DecideRequest.parse(reply, path: path).decision
        #expect(!decision.allowed && decision.deniedBy?.scopeIndex == 1 && decision.deniedBy?.resource == resource)
        #expect(decision.deniedBy?.kind.name == kind)
        #expect(decision.retryable == (kind == "tree-in-flight"))
        let call = TreeCall(TreeContext(treeID: "t", depth: 3, partition: "openai"), tool: "search")
        let refusal = try #require(decision.treeRefusal(call))
        #expect(refusal.code == code)
        #expect(refusal.retryAfter == (code == .treeInFlight ? .milliseconds(50) : nil))
        if code == .treeBudget { #expect(refusal.message.contains("tokens budget of 800 is spent (400 used")) }
        if code == .treeInFlight { #expect(refusal.message.contains("4 calls in flight, the most allowed is 4")) }
        // A quota denial, or an admission, is no tree refusal.
        var quota = decision
        quota.deniedBy = decision.limits.first
        #expect(quota.treeRefusal(call) == nil)
        #expect(Decision(allowed: true).treeRefusal(call) == nil)
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
