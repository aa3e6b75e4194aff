import Logging
import SluiceRedis

/// Reads and writes the capped event stream of a partition (`sluice:{P}:events`, or
/// `<namespace>:{P}:events` under another ``Limiter/Configuration/namespace``).
///
/// ```swift
/// let log = EventLog(redis: redis)
/// for event in try await log.recent(partition: "openai", count: 20) { print(event.type, event["detail"] ?? "") }
/// ```
public struct EventLog: Sendable {
    /// The most entries a stream keeps (approximately: `XADD MAXLEN ~`).
    public static let maximumLength = 10_000
    /// How long a stream outlives its last entry.
    public static let retention: Duration = .seconds(7 * 86_400)

    private let redis: RedisClient
    /// The first part of the streams' keys, as ``Limiter/Configuration/namespace``.
    public let namespace: String
    /// Where following the streams is logged (debug).
    public let logger: Logger

    /// An event log on the given client, in the given key namespace.
    public init(redis: RedisClient, namespace: String = "sluice", logger: Logger = .sluiceDisabled) {
        self.redis = redis
        self.namespace = namespace
        self.logger = logger
    }

    /// Appends an event (for events the Swift side notices, such as an invalid config value).
    @discardableResult
    package func record(partition: String, type: String, fields: [(String, String)]) async throws(RedisError) -> String
    {
        let keys = PartitionKeys(partition: partition, namespace: namespace)
        var arguments: [RedisArgument] = [
            keys.events, "MAXLEN", "~", RedisArgument(Self.maximumLength), "*", "type", RedisArgument(type),
        ]
        for (name, value) in fields {
            arguments.append(RedisArgument(name))
            arguments.append(RedisArgument(value))
        }
        let replies = try await redis.pipeline([
            RedisCommand("XADD", arguments),
            RedisCommand("PEXPIRE", keys.events, RedisArgument(Int(Self.retention / .milliseconds(1)))),
        ])
        return replies.first?.string ?? ""
    }

    /// The last `count` events of a partition, oldest first: of its own stream and, while it is a sharded global
    /// ceiling, of its shards' streams as well (``SluiceEvent/shard``).
    public func recent(partition: String, count: Int = 50) async throws(RedisError) -> [SluiceEvent] {
        var events: [SluiceEvent] = []
        for stream in try await streams(of: partition) {
            let reply = try await redis.send("XREVRANGE", stream.key, "+", "-", "COUNT", RedisArgument(max(1, count)))
            events += stream.entries(reply)
        }
        return Array(events.sorted { $0.order < $1.order }.suffix(max(1, count)))
    }

    /// The partitions that have an event stream right now (found with `SCAN`, on every primary of a cluster); a
    /// shard's stream counts for its partition.
    public func partitions() async throws(RedisError) -> [String] {
        var found: Set<String> = []
        for key in try await redis.scanKeys(matching: Self.globEscaped(namespace) + ":{*}:events", type: "stream") {
            if let stream = EventStream(key: key, namespace: namespace) { found.insert(stream.partition) }
        }
        return found.sorted()
    }

    /// The streams of `partition`: its own, and while it is a sharded global ceiling, each of its shards' (read
    /// from the shard count in the root's quota hash: one HGET).
    package func streams(of partition: String) async throws(RedisError) -> [EventStream] {
        let count: Int?
        do {
            count = try await QuotaStore(client: redis, namespace: namespace).shardCount(partition)
        } catch {
            throw error.redisError ?? RedisError(.unexpectedReply, error.message)
        }
        let own = EventStream(partition: partition, shard: nil, namespace: namespace)
        return [own] + (0..<(count ?? 0)).map { EventStream(partition: partition, shard: $0, namespace: namespace) }
    }

    /// Follows the streams of the given partitions (and of their shards, as many as each has when following
    /// starts): waits (`XREAD BLOCK`, on a pooled connection of its own) and hands every new event to `handler`
    /// until the task is cancelled. On a Redis Cluster each stream is followed on a pooled connection of its own to
    /// the primary that serves it: the client's pool size must be at least the streams one primary serves
    /// (``streams(of:)``: a sharded root's own and one per shard).
    /// - Parameter after: the entry id to start after per stream (`$`: only new events).
    public func follow(
        partitions: [String], after: String = "$", handler: @escaping @Sendable (SluiceEvent) async -> Void
    ) async throws {
        var streams: [EventStream] = []
        var seen: Set<EventStream> = []  // a partition named twice is followed once
        for partition in partitions {
            for stream in try await self.streams(of: partition) where seen.insert(stream).inserted {
                streams.append(stream)
            }
        }
        try await follow(streams, after: after, handler: handler)
    }

    private func follow(
        _ streams: [EventStream], after: String, handler: @escaping @Sendable (SluiceEvent) async -> Void
    ) async throws {
        guard !streams.isEmpty else { return }
        if streams.count > 1, try await redis.isCluster() {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for stream in streams {
                    group.addTask { try await follow([stream], after: after, handler: handler) }
                }
                try await group.waitForAll()
            }
            return
        }
        logger.debug("following the event streams", metadata: ["sluice.streams": "\(streams.count)"])
        var last = Array(repeating: after, count: streams.count)
        let block = max(100, Int(redis.configuration.commandTimeout / .milliseconds(1)) / 2)
        try await redis.withConnection(routingKey: streams[0].key) { connection in
            // `$` means "after the newest entry when this XREAD runs": sent again after a BLOCK that timed out, it
            // would skip the events recorded between the two XREADs. It is resolved once, to the newest id now.
            for (index, stream) in streams.enumerated() where last[index] == "$" {
                let newest = try await connection.send(RedisCommand("XREVRANGE", stream.key, "+", "-", "COUNT", "1"))
                last[index] = newest.array?.first?.array?.first?.string ?? "0-0"
            }
            let byKey = Dictionary(
                streams.enumerated().map { (String(decoding: $1.key.bytes, as: UTF8.self), $0) },
                uniquingKeysWith: { first, _ in first })
            while !Task.isCancelled {
                var arguments: [RedisArgument] = ["BLOCK", RedisArgument(block), "STREAMS"]
                arguments += streams.map(\.key)
                arguments += last.map { RedisArgument($0) }
                let reply = try await connection.send(RedisCommand("XREAD", arguments))
                for entries in reply.array ?? [] {
                    guard let pair = entries.array, pair.count == 2, let key = pair[0].string,
                        let index = byKey[key]
                    else { continue }
                    for event in streams[index].entries(pair[1]) {
                        last[index] = event.id
                        await handler(event)
                    }
                }
            }
        }
    }

    /// `text` matched literally by a `SCAN MATCH` glob.
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            if "*?[]\\".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// The partition named by an escaped key `<namespace>:{P}:events` (or by the stream of one of its shards,
    /// `<namespace>:{P~s<k>}:events`).
    static func partition(ofKey key: String, namespace: String = "sluice") -> String? {
        EventStream(key: key, namespace: namespace)?.partition
    }

    static func entries(_ reply: RedisValue, partition: String, shard: Int? = nil) -> [SluiceEvent] {
        (reply.array ?? []).compactMap { entry in
            guard let pair = entry.array, pair.count == 2, let id = pair[0].string else { return nil }
            let flat = (pair[1].array ?? []).map { $0.string ?? "" }
            var fields: [(String, String)] = []
            var type = ""
            for index in stride(from: 0, to: flat.count - 1, by: 2) {
                if flat[index] == "type" {
                    type = flat[index + 1]
                } else {
                    fields.append((flat[index], flat[index + 1]))
                }
            }
            return SluiceEvent(id: id, partition: partition, shard: shard, type: type, fields: fields)
        }
    }
}

/// One event stream: a partition's own, or one shard's of a sharded global ceiling.
package struct EventStream: Sendable, Hashable {
    package let partition: String
    package let shard: Int?
    /// `<namespace>:{<escaped partition>}:events`, or `<namespace>:{<escaped partition>~s<shard>}:events`.
    let key: RedisArgument

    init(partition: String, shard: Int?, namespace: String) {
        self.partition = partition
        self.shard = shard
        self.key = PartitionKeys(partition: partition, shard: shard, namespace: namespace).events
    }

    /// The stream of an escaped key `<namespace>:{<tag>}:events`. A tag ending in `~s<digits>` is a shard's: an
    /// escaped partition has no `~` but in the digest of a name too long to keep (`~<hex>`), which has no `s`.
    init?(key: String, namespace: String) {
        let head = namespace + ":{"
        guard key.hasPrefix(head), key.hasSuffix("}:events"), key.utf8.count >= head.utf8.count + 8 else { return nil }
        var tag = Substring(key.dropFirst(head.count).dropLast("}:events".count))
        var shard: Int?
        if let mark = tag.lastIndex(of: "~"), tag[tag.index(after: mark)...].hasPrefix("s") {
            let digits = tag[tag.index(mark, offsetBy: 2)...]
            if !digits.isEmpty, digits.allSatisfy({ ("0"..."9").contains($0) }), let index = Int(digits) {
                shard = index
                tag = tag[..<mark]
            }
        }
        self.init(partition: KeyName.unescape(tag), shard: shard, namespace: namespace)
    }

    func entries(_ reply: RedisValue) -> [SluiceEvent] {
        EventLog.entries(reply, partition: partition, shard: shard)
    }
}
