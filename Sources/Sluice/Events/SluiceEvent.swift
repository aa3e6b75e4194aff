/// One entry of a partition's event stream (`sluice:{P}:events`): a breaker transition, a spent
/// tree budget, a shed burst, a growing queue, a tripped loop guard, an invalid config value.
///
/// Scripts write the events when the transition happens (once per transition, not per worker);
/// the stream is capped (`XADD MAXLEN ~ 10000`) and expires a week after its last entry.
public struct SluiceEvent: Sendable, Hashable {
    /// The stream entry id, `<ms>-<seq>`: unique and ordered within the partition.
    public var id: String
    /// The partition whose stream holds it.
    public var partition: String
    /// On a sharded global ceiling (`quota set global=NAME ... --shards N`): the shard whose stream holds it
    /// (`sluice:{<partition>~s<shard>}:events`, the events of the trees and the reconciler there); `nil`: the
    /// partition's own stream.
    public var shard: Int?
    /// What happened: `breaker-open`, `breaker-half-open`, `breaker-closed`, `budget-exhausted`,
    /// `loop-guard`, `shed`, `queue-growth`, `retry-budget-exhausted`, `invalid-config`, and from the
    /// ``Reconciler``: `pause` (a 429 paused the partition), `ceiling-cut`, `stated-limit`, ...
    public var type: String
    /// The other fields, in the order written (`breaker`, `tree`, `scope`, `detail`, ...).
    public var fields: [(String, String)]

    /// Creates an event.
    package init(id: String, partition: String, shard: Int? = nil, type: String, fields: [(String, String)]) {
        self.id = id
        self.partition = partition
        self.shard = shard
        self.type = type
        self.fields = fields
    }

    /// The value of a field, if present.
    public subscript(field: String) -> String? {
        fields.first { $0.0 == field }?.1
    }

    /// When Redis recorded it, in milliseconds since 1970 (from the entry id).
    public var milliseconds: Int64 {
        Int64(id.prefix { $0 != "-" }) ?? 0
    }

    /// Its place in time across streams: the entry id's milliseconds, then its sequence number.
    package var order: (Int64, Int64) {
        (milliseconds, Int64(id.drop { $0 != "-" }.dropFirst()) ?? 0)
    }

    public static func == (lhs: SluiceEvent, rhs: SluiceEvent) -> Bool {
        lhs.id == rhs.id && lhs.partition == rhs.partition && lhs.shard == rhs.shard && lhs.type == rhs.type
            && lhs.fields.elementsEqual(rhs.fields) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(partition)
        hasher.combine(shard)
    }
}
