import SluiceRedis
import Testing

@testable import Sluice

@Suite("Events: stream keys and entries")
struct EventsParsingTests {
    @Test("The partition is read back from an escaped stream key")
    func partitionOfKey() {
        let name = "tenant {a}:b"
        let key = String(decoding: PartitionKeys(partition: name).events.bytes, as: UTF8.self)
        #expect(key == "sluice:{tenant%20%7Ba%7D%3Ab}:events")
        #expect(EventLog.partition(ofKey: key) == name)
        #expect(EventLog.partition(ofKey: "sluice:{x}:quotas") == nil)
    }

    @Test("A shard's stream key names its partition and its shard; a partition named like one does not")
    func shardOfKey() throws {
        let stream = try #require(EventStream(key: "sluice:{open%20ai~s12}:events", namespace: "sluice"))
        #expect(stream.partition == "open ai" && stream.shard == 12)
        #expect(EventLog.partition(ofKey: "sluice:{openai~s3}:events") == "openai")
        #expect(EventStream(key: "sluice:{openai}:events", namespace: "sluice")?.shard == nil)
        // A `~` in a name is escaped; the digest of a name too long to keep is hex after its `~`, never `s`.
        let named = String(decoding: PartitionKeys(partition: "a~s3").events.bytes, as: UTF8.self)
        #expect(
            EventStream(key: named, namespace: "sluice").map { [$0.partition, "\($0.shard as Any)"] } == [
                "a~s3", "nil",
            ])
        let long = String(repeating: "x", count: 300)
        let digested = String(
            decoding: PartitionKeys(partition: long, shard: 2, namespace: "sluice").events.bytes, as: UTF8.self)
        #expect(digested.contains("~"))
        #expect(EventStream(key: digested, namespace: "sluice")?.shard == 2)
        #expect(EventStream(key: "sluice:{openai~s}:events", namespace: "sluice")?.partition == "openai~s")
        // The stream's own key is the one the scripts write.
        #expect(String(decoding: stream.key.bytes, as: UTF8.self) == "sluice:{open%20ai~s12}:events")
    }

    @Test("An XRANGE reply becomes events with their type, fields and time")
    func entries() {
        let reply = RedisValue.array([
            .array([
                .bulkString(Array("1718000000123-0".utf8)),
                .array(
                    ["type", "breaker-open", "breaker", "tool:search", "detail", "5 of 20 calls failed"].map {
                        .bulkString(Array($0.utf8))
                    }),
            ])
        ])
        let events = EventLog.entries(reply, partition: "openai")
        #expect(events.count == 1)
        let event = events[0]
        #expect(event.type == "breaker-open" && event.partition == "openai")
        #expect(event["breaker"] == "tool:search" && event["detail"] == "5 of 20 calls failed")
        #expect(event.milliseconds == 1_718_000_000_123)
    }

    @Test("Keys of every feature share the partition's hash tag")
    func hashTag() {
        let keys = PartitionKeys(partition: "openai")
        for key in [keys.key("lease", "gpt-4o"), keys.key("tree", "t1", "calls"), keys.events, keys.workers] {
            #expect(String(decoding: key.bytes, as: UTF8.self).hasPrefix("sluice:{openai}:"))
        }
        #expect(
            String(decoding: keys.key("breaker", "a:b}").bytes, as: UTF8.self) == "sluice:{openai}:breaker:a%3Ab%7D")
    }

    @Test("Under a custom namespace, partition keys, stream keys and a tree call's keys start with it")
    func namespace() throws {
        let keys = PartitionKeys(partition: "openai", namespace: "acme")
        for key in [keys.key("lease", "gpt-4o"), keys.key("queue", "q", "stats"), keys.events, keys.workers] {
            #expect(String(decoding: key.bytes, as: UTF8.self).hasPrefix("acme:{openai}:"))
        }
        #expect(EventLog.partition(ofKey: "acme:{open%20ai}:events", namespace: "acme") == "open ai")
        #expect(EventLog.partition(ofKey: "sluice:{openai}:events", namespace: "acme") == nil)
        #expect(EventLog.partition(ofKey: "acme:{openai}:events") == nil, "the default namespace is sluice")
        #expect(EventLog.globEscaped("a*b?[c]\\d") == "a\\*b\\?\\[c\\]\\\\d")

        let limiter = try Limiter(
            client: RedisClient(configuration: RedisConfiguration()),
            configuration: .init(defaults: ["tree": "tokens: budget 9"], namespace: "acme"))
        var request = try DecideRequest(
            limiter: limiter, path: try ScopePath("global=openai", "tree=t"), cost: ["tokens": 1],
            priority: .interactive)
        request.reservation = ("r1", .seconds(2))
        request.tree = TreeCall(TreeContext(treeID: "t", depth: 0, partition: "openai"))
        for key in request.redisKeys.map({ String(decoding: $0.bytes, as: UTF8.self) }) {
            #expect(key.hasPrefix("acme:{openai}:"), "\(key)")
        }
    }
}
