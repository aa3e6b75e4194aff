import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// `sluice reserve`, `sluice settle` and `sluice cancel`, run as the built binary.
@Suite("Reservations from the CLI", .serialized)
struct ReservationCommandTests {
    @Test("reserve then settle: the estimate is charged, then only the actual cost")
    func reserveThenSettle() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "tokens: bucket rate=1/d burst=1000; requests: window 10/min")
        let root = "global=\(fixture.root)"
        var result = try SluiceBinary.run([
            "reserve", root, "tenant=acme", "--cost", "tokens=600", "--cost", "requests=1", "--ttl", "2min", "--json",
        ])
        #expect(result.status == 0, "\(result.output)")
        let reserved = try #require(jsonObject(result.output), "\(result.output)")
        #expect(reserved["allowed"] as? Bool == true)
        let id = try #require(reserved["id"] as? String)
        #expect(!id.isEmpty)
        let limiter = try fixture.limiter()
        let path = try fixture.path("tenant=acme")
        let pttl =
            try await fixture.client.send(
                RedisCommand("PTTL", RedisArgument(limiter.keys(for: path).reservation(id)))
            ).integer ?? 0
        #expect(pttl > 100_000 && pttl <= 120_000, "--ttl 2min: \(pttl) ms")
        #expect(try await !limiter.decide(path, cost: ["tokens": 401]).allowed, "600 of 1000 are reserved")

        // Over the bucket: denied, exit status 1, nothing charged.
        result = try SluiceBinary.run(["reserve", root, "tenant=acme", "--cost", "tokens=900", "--json"])
        #expect(result.status == 1, "\(result.output)")
        #expect(jsonObject(result.output)?["allowed"] as? Bool == false)

        result = try SluiceBinary.run([
            "settle", root, "tenant=acme", "--id", id, "--actual", "tokens=150", "--actual", "requests=1",
        ])
        #expect(result.status == 0 && result.output.contains("settled"), "\(result.output)")
        let after = try await limiter.decide(path, cost: ["tokens": 1], reportLimits: true)
        #expect(after.limits.first { $0.resource == "tokens" }?.remaining == Int64(1000 - 150 - 1))
        result = try SluiceBinary.run(["settle", root, "tenant=acme", "--id", id, "--actual", "tokens=1", "--json"])
        #expect(result.status == 0)
        #expect(jsonObject(result.output)?["outcome"] as? String == "already settled", "\(result.output)")

        // Text output, a chosen id, and an id nobody reserved.
        result = try SluiceBinary.run(["reserve", root, "tenant=acme", "--cost", "tokens=1", "--id", "mine"])
        #expect(result.status == 0 && result.output.contains("mine") && result.output.contains("allowed"))
        result = try SluiceBinary.run(["settle", root, "tenant=acme", "--id", "nobody", "--actual", "tokens=1"])
        #expect(result.status == 1 && result.output.contains("unknown"), "\(result.output)")
        result = try SluiceBinary.run(["settle", root, "tenant=acme", "--id", "mine", "--actual", "tokens=-1"])
        #expect(result.status != 0, "a negative actual cost is refused: \(result.output)")
        result = try SluiceBinary.run(["reserve", root, "--cost", "tokens=1", "--ttl", "8d"])
        #expect(result.status != 0, "a ttl above 7 days is refused: \(result.output)")
    }

    @Test("reserve then cancel: the whole estimate comes back; cancel is idempotent")
    func reserveThenCancel() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "tokens: bucket rate=1/d burst=100")
        let root = "global=\(fixture.root)"
        var result = try SluiceBinary.run(["reserve", root, "--cost", "tokens=70", "--id", "c1", "--json"])
        let reserved = try #require(jsonObject(result.output), "\(result.output)")
        #expect(reserved["allowed"] as? Bool == true && reserved["id"] as? String == "c1")
        let limiter = try fixture.limiter()
        let path = try fixture.path()
        #expect(try await !limiter.decide(path, cost: ["tokens": 31]).allowed)

        result = try SluiceBinary.run(["cancel", root, "--id", "c1", "--json"])
        #expect(result.status == 0)
        #expect(jsonObject(result.output)?["outcome"] as? String == "cancelled", "\(result.output)")
        #expect(try await limiter.decide(path, cost: ["tokens": 100]).allowed, "the estimate came back")
        result = try SluiceBinary.run(["cancel", root, "--id", "c1"])
        #expect(result.status == 0 && result.output.contains("already cancelled"), "\(result.output)")
        // The id is closed: reserving under it again is refused.
        result = try SluiceBinary.run(["reserve", root, "--cost", "tokens=1", "--id", "c1"])
        #expect(result.status != 0, "\(result.output)")
    }
}
