import SluiceRedis
import Testing

@testable import Sluice

/// What ``FleetReader`` makes of the raw keys and values it reads (no server).
@Suite("FleetReader: parsing breaker state, key names and shadow counters")
struct FleetReaderParsingTests {
    /// cmsgpack's encoding of a breaker that opened twice: `{s="open", u=1700000000123, g=2, b={}, p={{7, 9e12}}}`
    /// (maps with fixstr keys, a uint64, an empty table as an empty array, a nested array, a float64).
    static let openBreaker: [UInt8] =
        [0x85, 0xa1, 0x73, 0xa4] + Array("open".utf8)
        + [0xa1, 0x75, 0xcf, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b]
        + [0xa1, 0x67, 0x02]
        + [0xa1, 0x62, 0x90]
        + [0xa1, 0x70, 0x91, 0x92, 0x07, 0xcb]
        + Array(withUnsafeBytes(of: Double(9e12).bitPattern.bigEndian, Array.init))

    @Test("A breaker's cmsgpack state decodes to its state, open-until and times opened")
    func breakerState() throws {
        let breaker = try #require(
            FleetReader.breaker("tool:search", .bulkString(Self.openBreaker), now: 1_700_000_000_000))
        #expect(breaker.state == .open)
        #expect(breaker.openUntil == 1_700_000_000_123)
        #expect(breaker.timesOpened == 2)
        #expect(breaker.calls == 0 && breaker.failures == 0)
        #expect(breaker.probes == 1, "one probe expiring after now")
    }

    @Test("A closed breaker sums its window's buckets; negative and 8-bit integers decode")
    func closedBuckets() throws {
        // {s="closed", b={{5, 3, 1}, {6, 200, 0xff}}, g=-1}
        let bytes: [UInt8] =
            [0x83, 0xa1, 0x73, 0xa6] + Array("closed".utf8)
            + [0xa1, 0x62, 0x92, 0x93, 0x05, 0x03, 0x01, 0x93, 0x06, 0xcc, 0xc8, 0xcc, 0xff]
            + [0xa1, 0x67, 0xff]
        let breaker = try #require(FleetReader.breaker("b", .bulkString(bytes), now: 0))
        #expect(breaker.state == .closed && breaker.openUntil == nil)
        #expect(breaker.calls == 203 && breaker.failures == 256)
        #expect(breaker.timesOpened == -1)
    }

    @Test("Truncated or foreign bytes read as no breaker, not as a crash")
    func unreadable() {
        #expect(FleetReader.breaker("b", .bulkString(Array(Self.openBreaker.dropLast(3))), now: 0) == nil)
        #expect(FleetReader.breaker("b", .bulkString(Array("not msgpack".utf8)), now: 0) == nil)
        #expect(FleetReader.breaker("b", .null, now: 0) == nil)
        #expect(MessagePack.decode([0xdd, 0xff, 0xff, 0xff, 0xff]) == nil, "a length beyond the buffer")
    }

    @Test("Keys are filed by feature: scopes, breakers, trees and root states; helper keys are skipped")
    func keyFiling() {
        var keys = FleetReader.Keys()
        for suffix in [
            "queue:openai%2Fgpt-4o", "queue:openai%2Fgpt-4o:stats", "inflight:openai%2Fgpt-4o", "lease:tools",
            "lease:tools:free", "breaker:tool%3Asearch", "tree:t1", "tree:t1:calls", "s:global=openai",
            "s:global=openai/tenant=acme", "r:abc", "events", "stats", "quotas",
        ] {
            keys.add(Substring(suffix))
        }
        #expect(keys.scopes == ["openai%2Fgpt-4o", "tools"])
        #expect(keys.breakers == ["tool%3Asearch"])
        #expect(keys.trees == ["t1"])
        #expect(keys.roots == ["global=openai"])
        #expect(FleetReader.Tag(escaped: "openai%2Fgpt-4o").name == "openai/gpt-4o")
        #expect(FleetReader.Tag(name: "a{b}").escaped == "a%7Bb%7D")
    }

    @Test("Shadow counters are summed per scope kind, resource and limit kind: no tenant survives")
    func shadowCounts() {
        let reply = RedisValue.array(
            [
                "global=openai tenant=acme|tokens|bucket", "3", "global=openai tenant=*|tokens|bucket", "4",
                "global=openai tenant=beta|requests|window", "1", "global=openai|tokens|budget", "2", "junk", "9",
            ].map { RedisValue.bulkString(Array($0.utf8)) })
        let counts = FleetReader.shadow(reply)
        #expect(
            counts == [
                .init(scopeKind: "global", resource: "tokens", limitKind: "budget", count: 2),
                .init(scopeKind: "tenant", resource: "requests", limitKind: "window", count: 1),
                .init(scopeKind: "tenant", resource: "tokens", limitKind: "bucket", count: 7),
            ])
    }

    @Test("The trees spending most are ranked by tokens when any tree spent tokens")
    func ranking() {
        func tree(_ id: String, _ spent: [String: Int64]) -> FleetSnapshot.Tree {
            FleetSnapshot.Tree(id: id, spent: spent, budgets: [:], callsInFlight: 0, deadline: nil)
        }
        let ranked = FleetReader.spendingMost([
            tree("a", ["requests": 90]), tree("b", ["tokens": 10, "requests": 1]), tree("c", ["tokens": 500]),
        ])
        #expect(ranked.map(\.id) == ["c", "b", "a"])
    }
}
