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

    /// The last `count` events of a partition, oldest first.
    public func recent(partition: String, count: Int = 50) async throws(RedisError) -> [SluiceEvent] {
        let keys = PartitionKeys(partition: partition, namespace: namespace)
        let reply = try await redis.send("XREVRANGE", keys.events, "+", "-", "COUNT", RedisArgument(max(1, count)))
        return Self.entries(reply, partition: partition).reversed()
    }

    /// The partitions that have an event stream right now (found with `SCAN`, on every primary of a cluster).
    public func partitions() async throws(RedisError) -> [String] {
        var found: Set<String> = []
        for key in try await redis.scanKeys(matching: Self.globEscaped(namespace) + ":{*}:events", type: "stream") {
            if let partition = Self.partition(ofKey: key, namespace: namespace) { found.insert(partition) }
        }
        return found.sorted()
    }

    /// Follows the streams of the given partitions: waits (`XREAD BLOCK`, on a pooled connection
    /// of its own) and hands every new event to `handler` until the task is cancelled. On a Redis Cluster each
    /// partition is followed on a connection to the primary that serves it.
    /// - Parameter after: the entry id to start after per partition (`$`: only new events).
    public func follow(
        partitions: [String], after: String = "$", handler: @escaping @Sendable (SluiceEvent) async -> Void
    ) async throws {
        guard !partitions.isEmpty else { return }
        if partitions.count > 1, try await redis.isCluster() {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for partition in partitions {
                    group.addTask { try await follow(partitions: [partition], after: after, handler: handler) }
                }
                try await group.waitForAll()
            }
            return
        }
        logger.debug("following the event streams", metadata: ["sluice.partitions": "\(partitions.count)"])
        var last = Dictionary(uniqueKeysWithValues: partitions.map { ($0, after) })
        let block = max(100, Int(redis.configuration.commandTimeout / .milliseconds(1)) / 2)
        try await redis.withConnection(routingKey: PartitionKeys(partition: partitions[0], namespace: namespace).events)
        {
            connection in
            // `$` means "after the newest entry when this XREAD runs": sent again after a BLOCK that timed out, it
            // would skip the events recorded between the two XREADs. It is resolved once, to the newest id now.
            for partition in partitions where last[partition] == "$" {
                let newest = try await connection.send(
                    RedisCommand(
                        "XREVRANGE", PartitionKeys(partition: partition, namespace: namespace).events, "+", "-",
                        "COUNT", "1"))
                last[partition] = newest.array?.first?.array?.first?.string ?? "0-0"
            }
            while !Task.isCancelled {
                var arguments: [RedisArgument] = ["BLOCK", RedisArgument(block), "STREAMS"]
                arguments += partitions.map { PartitionKeys(partition: $0, namespace: namespace).events }
                arguments += partitions.map { RedisArgument(last[$0] ?? "$") }
                let reply = try await connection.send(RedisCommand("XREAD", arguments))
                for stream in reply.array ?? [] {
                    guard let pair = stream.array, pair.count == 2, let key = pair[0].string,
                        let partition = Self.partition(ofKey: key, namespace: namespace)
                    else { continue }
                    for event in Self.entries(pair[1], partition: partition) {
                        last[partition] = event.id
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

    /// The partition named by an escaped key `<namespace>:{P}:events`.
    static func partition(ofKey key: String, namespace: String = "sluice") -> String? {
        let head = namespace + ":{"
        guard key.hasPrefix(head), key.hasSuffix("}:events"), key.utf8.count >= head.utf8.count + 8 else { return nil }
        let escaped = key.dropFirst(head.count).dropLast("}:events".count)
        var bytes: [UInt8] = []
        var iterator = Array(escaped.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func entries(_ reply: RedisValue, partition: String) -> [SluiceEvent] {
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
            return SluiceEvent(id: id, partition: partition, type: type, fields: fields)
        }
    }
}
