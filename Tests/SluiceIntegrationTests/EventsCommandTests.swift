import Foundation
import Sluice
import SluiceRedis
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `sluice events`: what an operator sees.
@Suite("Events: the stream and sluice events", .serialized, .onEveryServer)
struct EventsCommandTests {
    @Test("sluice events prints a partition's events, as text and as JSON")
    func printsEvents() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let breaker = CircuitBreaker(
            redis: fixture.client, partition: fixture.partition, name: "tool:search",
            configuration: .init(minimumCalls: 2, failureRatio: 0.5))
        for _ in 0..<2 { try await breaker.record(try await breaker.permit(), success: false) }

        let text = try SluiceBinary.run(["events", "--partition", fixture.partition])
        #expect(text.status == 0, "\(text.output)")
        #expect(text.output.contains("breaker-open") && text.output.contains("breaker=tool:search"), "\(text.output)")
        #expect(text.output.contains("2 of 2 calls failed"), "\(text.output)")

        let json = try SluiceBinary.run(["events", "--partition", fixture.partition, "--json"])
        let object = try #require(jsonObject(json.output), "\(json.output)")
        #expect(object["type"] as? String == "breaker-open")
        #expect(object["partition"] as? String == fixture.partition)
        #expect(object["breaker"] as? String == "tool:search")
    }

    @Test("sluice events --follow prints new events as they happen")
    func follows() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let log = EventLog(redis: fixture.client)
        try await log.record(partition: fixture.partition, type: "invalid-config", fields: [("detail", "before")])
        let following = try SluiceBinary.start(["events", "--partition", fixture.partition, "--follow", "--count", "0"])
        // It follows once it waits in XREAD, however long a loaded machine takes to start it; then one new event.
        var reading = false
        for _ in 0..<300 where !reading {
            let clients = try await fixture.client.send("CLIENT", "LIST").string ?? ""
            reading = clients.split(separator: "\n").contains { $0.contains("cmd=xread") }
            if !reading { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(reading, "the follower never started reading")
        try await log.record(partition: fixture.partition, type: "shed", fields: [("scope", "s"), ("detail", "after")])
        let printed = await following.output(containing: "after", within: .seconds(30))
        following.process.terminate()
        let (_, output) = following.wait()
        #expect(printed && output.contains("shed"), "\(output)")
        #expect(!output.contains("before"), "--count 0 prints no backlog")
    }

    @Test("Every event stream has an expiry and stays capped")
    func streamsExpire() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let log = EventLog(redis: fixture.client)
        for index in 0..<3 {
            try await log.record(partition: fixture.partition, type: "t", fields: [("n", String(index))])
        }
        let ttl = try await fixture.client.send("PTTL", RedisArgument("sluice:{\(fixture.partition)}:events"))
        #expect((ttl.integer ?? -1) > 6 * 86_400_000)
        #expect(try await log.recent(partition: fixture.partition, count: 2).map { $0["n"] } == ["1", "2"])
    }
}
