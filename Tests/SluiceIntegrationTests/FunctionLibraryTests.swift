import Foundation
import SluiceRedis
import Testing

@testable import Sluice

/// The one function library: loaded when missing, run through EVALSHA where functions are refused, and pruned.
@Suite("Function library: one per version, EVALSHA where refused, old versions pruned", .serialized)
struct FunctionLibraryTests {
    @Test("Every entry of lua/ is registered by one library named after its version")
    func oneLibrary() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try RedisClient(url: server.url)
        defer { client.close() }
        try await SluiceFunctions.load(on: client)
        let reply = try await client.send("FUNCTION", "LIST", "LIBRARYNAME", "sluice_*")
        let libraries = reply.array ?? []
        #expect(libraries.count == 1)
        let listed = "\(libraries)"
        for script in LuaScripts.all {
            let function = "sluice_\(ScriptLibrary.entryName(script.name))_\(ScriptLibrary.shared.version)"
            #expect(listed.contains(Array(function.utf8).description), "\(function) is registered")
        }
    }

    @Test("A user whose ACL refuses FUNCTION decides through EVALSHA of the same code")
    func evalFallback() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let admin = try RedisClient(url: server.url)
        defer { admin.close() }
        _ = try await admin.send(
            "ACL", "SETUSER", "noscripts", "on", ">secret", "~*", "+@all", "-function", "-fcall", "-fcall_ro")
        let port = server.url.split(separator: ":").last!
        let client = try RedisClient(url: "redis://noscripts:secret@127.0.0.1:\(port)")
        defer { client.close() }
        let limiter = try Limiter(client: client, configuration: .init(defaults: ["global": "tokens: budget 10"]))
        let path = try ScopePath("global=openai")
        for _ in 0..<10 { #expect(try await limiter.decide(path, cost: ["tokens": 1]).allowed) }
        #expect(try await !limiter.decide(path, cost: ["tokens": 1]).allowed, "the budget of 10 holds")
        let functions = try await admin.send("FUNCTION", "LIST").array ?? []
        #expect(functions.isEmpty, "nothing was loaded as a function")
    }

    @Test("sluice scripts prune removes other versions' libraries and keeps this one working")
    func prune() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try RedisClient(url: server.url)
        defer { client.close() }
        let old =
            "#!lua name=sluice_000000000000\nredis.register_function('sluice_ping_000000000000', function() return 1 end)"
        _ = try await client.send("FUNCTION", "LOAD", RedisArgument(old))
        try await SluiceFunctions.load(on: client)
        let removed = try await SluiceFunctions.pruneOthers(on: client)
        #expect(removed == ["sluice_000000000000"])
        let limiter = try Limiter(client: client, configuration: .init(defaults: ["global": "tokens: budget 10"]))
        #expect(try await limiter.decide(try ScopePath("global=openai"), cost: ["tokens": 1]).allowed)
        #expect(try await SluiceFunctions.pruneOthers(on: client).isEmpty)
    }

    @Test("A worker's heartbeat records its library and removes those no worker has run for a day, only those")
    func stalePrunedOnHeartbeat() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let client = try RedisClient(url: server.url)
        defer { client.close() }
        func library(_ version: String) -> RedisArgument {
            RedisArgument(
                "#!lua name=sluice_\(version)\nredis.register_function('sluice_ping_\(version)', function() return 1 end)"
            )
        }
        for version in ["00000000dead", "00000000a11e", "0000000000e0"] {
            _ = try await client.send("FUNCTION", "LOAD", library(version))
        }
        let namespace = "heartbeat-\(UUID().uuidString.prefix(8))"
        let key = RedisArgument(ScriptLibrary.inUseKey(namespace: namespace))
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        _ = try await client.send(
            "HSET", key,
            // Last run 25 hours ago: stale. An hour ago: a worker of it may still run. No record: left alone.
            "sluice_00000000dead", RedisArgument(now - 25 * 3_600_000),
            "sluice_00000000a11e", RedisArgument(now - 3_600_000))

        let membership = FleetMembership(redis: client, partition: "openai", namespace: namespace)
        try await membership.beat()
        let libraries = try await client.send("FUNCTION", "LIST", "LIBRARYNAME", "sluice_*").array ?? []
        let names = Set(libraries.compactMap { $0.array?[1].string })
        #expect(names == [ScriptLibrary.shared.name, "sluice_00000000a11e", "sluice_0000000000e0"], "\(names)")
        let record = try await client.send("HGETALL", key).array ?? []
        let recorded = stride(from: 0, to: record.count, by: 2).compactMap { record[$0].string }
        #expect(Set(recorded) == [ScriptLibrary.shared.name, "sluice_00000000a11e"], "\(recorded)")
        let ttl = try await client.send("PTTL", key).integer ?? -1
        #expect(ttl > 0, "the record expires")
    }
}
