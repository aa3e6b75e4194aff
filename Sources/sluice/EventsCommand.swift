import ArgumentParser
import Sluice
import SluiceRedis

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice events [--partition P]... [--count N] [--follow] [--json]`: the partitions' event streams.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract:
            "Print Sluice's events: breaker transitions, spent budgets, shed bursts, queue growth, invalid config.",
        discussion: """
            Each partition (the hash tag of its keys, by default the root scope's name) keeps a capped stream of \
            events in Redis (sluice:{P}:events, NAMESPACE:{P}:events with --namespace; about the last 10,000, \
            kept a week after the last one); a sharded global ceiling also keeps one per shard \
            (sluice:{P~sK}:events: its trees' and the reconciler's events there, printed with shard=K). Without \
            --partition, every partition that has events is read. With --follow, new events are printed as they \
            arrive until interrupted.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("partition"), help: "A partition to read (repeatable; default: all of them).")
    var partitions: [String] = []

    @Option(help: "How many of the latest events to print per partition first.")
    var count: Int = 50

    @Flag(help: "Keep printing new events as they arrive.")
    var follow = false

    @Flag(help: "One JSON object per line.")
    var json = false

    @OptionGroup var keys: KeyNamespaceOptions

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let log = EventLog(redis: client, namespace: keys.namespace)
        var partitions = self.partitions
        if partitions.isEmpty { partitions = try await log.partitions() }
        var backlog: [SluiceEvent] = []
        for partition in partitions where count > 0 {
            backlog += try await log.recent(partition: partition, count: count)
        }
        for event in backlog.sorted(by: { $0.order < $1.order }) {
            print(try render(event))
        }
        guard follow else { return }
        guard !partitions.isEmpty else {
            throw ValidationError("no partition has events yet: name one with --partition to wait for its first")
        }
        // On a cluster each stream blocks a pooled connection of its own (a sharded root has one per shard).
        var streams = 0
        for partition in Set(partitions) { streams += try await log.streams(of: partition).count }
        let follower = try connection.makeClient(poolSize: max(4, streams + 1))
        defer { follower.close() }
        let json = self.json
        try await EventLog(redis: follower, namespace: keys.namespace).follow(partitions: partitions) { event in
            do {
                print(try Self.render(event, json: json))
            } catch {
                let text = "cannot print event \(event.id): \(error)\n"
                _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
            }
            fflush(nil)  // every stream: a follower is usually piped
        }
    }

    private func render(_ event: SluiceEvent) throws -> String {
        try Self.render(event, json: json)
    }

    static func render(_ event: SluiceEvent, json: Bool) throws -> String {
        let date = Date(timeIntervalSince1970: Double(event.milliseconds) / 1000)
        let time = date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)) + "Z"  // UTC
        if json { return try JSONOutput.line(EventJSON(event, time: time)) }
        let fields = (event.shard.map { [("shard", String($0))] } ?? []) + event.fields.filter { $0.0 != "detail" }
        let named = fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        return [time, event.partition, event.type, named, event["detail"] ?? ""].filter { !$0.isEmpty }.joined(
            separator: "  ")
    }
}

/// An event as `sluice events --json` prints it: `id`, `time`, `partition`, `type` and, for a shard's event, `shard`
/// (a number), then the event's own fields (`breaker`, `tree`, `scope`, `detail`, ...) as strings. A field of the
/// event named like one of the first five does not replace it.
struct EventJSON: Encodable {
    var id: String
    var time: String
    var partition: String
    var type: String
    var shard: Int?
    var fields: [(String, String)]

    init(_ event: SluiceEvent, time: String) {
        id = event.id
        self.time = time
        partition = event.partition
        type = event.type
        shard = event.shard
        fields = event.fields
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        let fixed = [("id", id), ("time", time), ("partition", partition), ("type", type)]
        for (name, value) in fixed { try container.encode(value, forKey: Key(stringValue: name)) }
        if let shard { try container.encode(shard, forKey: Key(stringValue: "shard")) }
        let names = Set(fixed.map(\.0) + ["shard"])
        for (name, value) in fields where !names.contains(name) {
            try container.encode(value, forKey: Key(stringValue: name))
        }
    }
}
