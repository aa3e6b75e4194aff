import Foundation
import Sluice
import SluiceRedis
import Testing

/// Several `sluice` processes hammering one Redis, and the quota CLI.
@Suite("Quota across processes and the CLI", .serialized, .onEveryServer)
struct QuotaProcessTests {
    @Test("Four processes, 50 tasks each, share a bucket of burst 1000: exactly 1000 admissions")
    func processesShareOneBucket() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "requests: bucket rate=1/d burst=1000")
        let arguments = [
            "bench", "decide", "global=\(fixture.root)", "tenant=acme", "tree=t1", "--cost", "requests=1",
            "--concurrency", "50", "--count", "600", "--json",
        ]
        let running = try (0..<4).map { _ in try SluiceBinary.start(arguments) }
        var attempted = 0
        var allowed = 0
        for process in running {
            let (status, output) = process.wait()
            #expect(status == 0, "\(output)")
            let json = try #require(jsonObject(output), "\(output)")
            attempted += json["attempted"] as? Int ?? 0
            allowed += json["allowed"] as? Int ?? 0
            #expect(json["failed"] as? Int == 0)
            for field in ["denied", "decisions_per_sec", "p50_us", "p99_us"] { #expect(json[field] != nil) }
        }
        #expect(attempted == 2400)
        #expect(allowed == 1000)
    }

    @Test("Tenant-level denials in other processes leave the global bucket untouched")
    func tenantDenialsAcrossProcesses() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        try await fixture.configure("", "tokens: bucket rate=1/d burst=10000")
        try await fixture.configure("tenant=*", "tokens: bucket rate=1/d burst=100")
        let running = try (0..<3).map { index in
            try SluiceBinary.start([
                "bench", "decide", "global=\(fixture.root)", "tenant=t\(index)", "--cost", "tokens=10", "--concurrency",
                "20",
                "--count", "40", "--json",
            ])
        }
        var allowed = 0
        for process in running { allowed += jsonObject(process.wait().output)?["allowed"] as? Int ?? -1000 }
        #expect(allowed == 30)
        let decision = try await fixture.limiter().decide(
            try fixture.path("tenant=other"), cost: ["tokens": 1], reportLimits: true)
        let left = decision.limits.first { $0.scopeIndex == 0 }?.remaining
        #expect(left == Int64(10000 - 300 - 1))
    }

    @Test("quota set, get, list and rm; check prints a decision as JSON")
    func cli() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let root = "global=\(fixture.root)"
        var result = try SluiceBinary.run([
            "quota", "set", root, "tenant=*", "--resource", "tokens", "--rate", "600/min", "--burst", "50",
        ])
        #expect(result.status == 0, "\(result.output)")
        result = try SluiceBinary.run(["quota", "set", root, "tenant=*", "--resource", "requests", "--window", "2/min"])
        #expect(result.status == 0, "\(result.output)")
        result = try SluiceBinary.run(["quota", "get", root, "tenant=*"])
        #expect(
            result.output.contains("tokens: bucket rate=600/min burst=50; requests: window 2/min"), "\(result.output)")

        for expected in [true, true, false] {
            result = try SluiceBinary.run([
                "check", root, "tenant=acme", "--cost", "requests=1", "--cost", "tokens=5", "--json",
            ])
            let json = try #require(jsonObject(result.output), "\(result.output)")
            #expect(json["allowed"] as? Bool == expected)
            #expect(result.status == (expected ? 0 : 1))
            #expect(json["retry_after_ms"] != nil && json["remaining"] is [Any])
            if !expected {
                let denied = try #require(json["denied_by"] as? [String: Any])
                #expect(denied["resource"] as? String == "requests" && denied["kind"] as? String == "window")
            }
        }

        _ = try await fixture.client.send(
            RedisCommand(
                "HSET", RedisArgument(fixture.quotasKey), RedisArgument("\(root) tenant=bad"),
                "tokens: bucket rate=1/mins"))
        result = try SluiceBinary.run(["quota", "list"])
        #expect(result.output.contains("\(root) tenant=bad") && result.output.contains("INVALID"), "\(result.output)")

        result = try SluiceBinary.run(["quota", "rm", root, "tenant=*", "--resource", "requests"])
        #expect(result.status == 0)
        result = try SluiceBinary.run(["quota", "get", root, "tenant=*", "--json"])
        #expect(result.output.contains("tokens: bucket rate=600/min burst=50") && !result.output.contains("requests"))
        result = try SluiceBinary.run(["quota", "rm", root, "tenant=*"])
        #expect(result.status == 0)
        result = try SluiceBinary.run(["quota", "get", root, "tenant=*"])
        #expect(result.status == 1)
    }

    @Test("quota weight sets, shows and removes a tenant's weight in the batch line, kept in Redis")
    func weightCLI() async throws {
        let fixture = try QuotaFixture()
        defer { Task { await fixture.cleanUp() } }
        let root = "global=\(fixture.root)"
        var result = try SluiceBinary.run(["quota", "weight", root, "tenant=acme", "--json"])
        #expect(result.status == 1 && result.output.contains("\"weight\":null"), "\(result.output)")
        result = try SluiceBinary.run(["quota", "weight", root, "tenant=acme", "2.5"])
        #expect(result.status == 0, "\(result.output)")
        result = try SluiceBinary.run(["quota", "weight", root, "tenant=acme", "--json"])
        let json = try #require(jsonObject(result.output), "\(result.output)")
        #expect(json["weight"] as? Double == 2.5 && json["tenant"] as? String == "tenant=acme", "\(result.output)")
        // Where the line reads it: the partition's weights hash, by tenant.
        let stored = try await fixture.client.send(
            RedisCommand("HGET", RedisArgument("sluice:{\(fixture.root)}:weights"), "tenant=acme"))
        #expect(stored.string.flatMap(Double.init) == 2.5)
        // A value written by hand that the line ignores is reported as such.
        _ = try await fixture.client.send(
            RedisCommand("HSET", RedisArgument("sluice:{\(fixture.root)}:weights"), "tenant=bad", "heavy"))
        result = try SluiceBinary.run(["quota", "weight", root, "tenant=bad"])
        #expect(result.status != 0 && result.output.contains("ignores it"), "\(result.output)")
        result = try SluiceBinary.run(["quota", "weight", root, "tenant=acme", "--remove"])
        #expect(result.status == 0, "\(result.output)")
        result = try SluiceBinary.run(["quota", "weight", root, "tenant=acme"])
        #expect(result.status == 1, "\(result.output)")
    }

    @Test(
        "The CLI refuses invalid input before touching Redis",
        arguments: [
            ["check", "global=x", "--cost", "tokens=-1"], ["check", "global=x", "--cost", "tokens=1.5"],
            ["check", "--cost", "tokens=1"], ["check", "global=x"], ["check", "tenant", "--cost", "tokens=1"],
            ["quota", "set", "global=x", "--resource", "tokens", "--rate", "10/mins"],
            ["quota", "set", "global=x", "--resource", "tokens", "--rate", "10/min", "--window", "5/min"],
            ["quota", "set", "global=*", "--resource", "tokens", "--rate", "10/min"],
            ["quota", "set", "global=x", "--resource", "tokens", "--window", "500/min", "--exact"],
            ["bench", "decide", "global=x", "--cost", "tokens=1", "--concurrency", "0", "--count", "5"],
            ["check", "global=x", "--cost", "tokens=1", "--default", "global=tokens: bucket"],
            ["quota", "weight", "global=x", "tenant=a", "0"], ["quota", "weight", "global=x", "tenant=a", "nan"],
            ["quota", "weight", "global=x", "tenant=a", "2", "--remove"], ["quota", "weight", "global=x", "tenant"],
            ["quota", "weight", "global=x", "tenant=*", "2"],
        ])
    func invalidInput(arguments: [String]) throws {
        let result = try SluiceBinary.run(arguments + ["--redis", "redis://127.0.0.1:1"])
        #expect(result.status != 0 && result.status != 1, "\(result.output)")
        #expect(!result.output.contains("connect"), "\(result.output)")
    }

    @Test("quota list and events show every partition (on a cluster, every primary's)")
    func scansSeeEveryPartition() async throws {
        let client = try TestRedis.client()
        defer { client.close() }
        let roots = (0..<12).map { "scan-\($0)-\(UUID().uuidString.prefix(6))" }
        let log = EventLog(redis: client)
        for root in roots {
            _ = try await client.send(
                "HSET", RedisArgument("sluice:{\(root)}:quotas"), RedisArgument("global=\(root)"),
                "requests: bucket rate=5/s")
            try await log.record(partition: root, type: "invalid-config", fields: [("detail", "scan test")])
        }
        let listed = try SluiceBinary.run(["quota", "list"])
        #expect(listed.status == 0, "\(listed.output)")
        let events = try SluiceBinary.run(["events", "--count", "1"])
        #expect(events.status == 0, "\(events.output)")
        for root in roots {
            #expect(listed.output.contains("global=\(root)"), "quota list misses \(root)")
            #expect(events.output.contains(root), "events misses \(root)")
        }
        for root in roots {
            for key in try await client.scanKeys(matching: "sluice:{\(root)}:*") {
                _ = try await client.send("DEL", RedisArgument(key))
            }
        }
    }
}
