/// One node of a cluster, by the address clients reach it at.
struct NodeAddress: Sendable, Hashable, CustomStringConvertible {
    var host: String
    var port: Int

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `host:port` as `MOVED` and `ASK` name a node (`[v6]:port` too).
    init?(_ text: Substring) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.host = String(host)
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// Which primary serves each slot, and every node known (primaries and replicas, for asking again when a
/// primary is gone).
struct ClusterTopology: Sendable {
    /// For each of the 16384 slots, an index into `primaries`, or -1 when no node serves it.
    var slots: [Int16]
    var primaries: [NodeAddress]
    var replicas: [NodeAddress]

    init() {
        slots = Array(repeating: -1, count: HashSlot.count)
        primaries = []
        replicas = []
    }

    func primary(forSlot slot: Int) -> NodeAddress? {
        let index = Int(slots[slot])
        return index >= 0 ? primaries[index] : nil
    }

    /// Records that `address` serves `slot` now (a `MOVED` reply), adding the node when it is new.
    mutating func assign(slot: Int, to address: NodeAddress) {
        assign(slot, slot, to: address)
    }

    var servedSlots: Int { slots.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    private mutating func assign(_ low: Int, _ high: Int, to address: NodeAddress) {
        guard low >= 0, high < HashSlot.count, low <= high else { return }
        let index: Int
        if let known = primaries.firstIndex(of: address) {
            index = known
        } else {
            primaries.append(address)
            index = primaries.count - 1
        }
        for slot in low...high { slots[slot] = Int16(index) }
    }

    /// Reads a `CLUSTER SHARDS` reply (Redis 7). `askedHost` stands in for a node that does not know its
    /// own address (`endpoint` `?` or empty).
    static func fromShards(_ reply: RedisValue, askedHost: String) -> ClusterTopology? {
        guard let shards = reply.array else { return nil }
        var topology = ClusterTopology()
        for shard in shards {
            let fields = Self.fields(shard)
            guard let ranges = fields["slots"]?.array, let nodes = fields["nodes"]?.array else { return nil }
            var primary: NodeAddress?
            var failedPrimary: NodeAddress?
            for node in nodes {
                let info = Self.fields(node)
                guard let address = Self.address(info, askedHost: askedHost) else { continue }
                let failed = info["health"]?.string == "failed"
                if info["role"]?.string == "master" {
                    if failed { failedPrimary = address } else { primary = address }
                } else if !failed {
                    topology.replicas.append(address)
                }
            }
            // A failed primary that still holds slots keeps them until its replica takes over (its commands
            // fail meanwhile); one without slots is left out.
            guard let primary = primary ?? (ranges.isEmpty ? nil : failedPrimary) else { continue }
            var index = 0
            while index + 1 < ranges.count {
                if let low = ranges[index].integer, let high = ranges[index + 1].integer {
                    topology.assign(Int(low), Int(high), to: primary)
                }
                index += 2
            }
            if ranges.isEmpty, !topology.primaries.contains(primary) { topology.primaries.append(primary) }
        }
        return topology
    }

    /// Reads a `CLUSTER SLOTS` reply (older servers).
    static func fromSlots(_ reply: RedisValue, askedHost: String) -> ClusterTopology? {
        guard let ranges = reply.array else { return nil }
        var topology = ClusterTopology()
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let low = parts[0].integer, let high = parts[1].integer
            else { return nil }
            var nodes: [NodeAddress] = []
            for node in parts[2...] {
                guard let fields = node.array, fields.count >= 2, let port = fields[1].integer else { continue }
                var host = fields[0].string ?? ""
                if host.isEmpty || host == "?" { host = askedHost }
                nodes.append(NodeAddress(host: host, port: Int(port)))
            }
            guard let primary = nodes.first else { continue }
            topology.assign(Int(low), Int(high), to: primary)
            for replica in nodes.dropFirst() where !topology.replicas.contains(replica) {
                topology.replicas.append(replica)
            }
        }
        return topology
    }

    /// A flat `[name, value, name, value, …]` array (or a RESP3 map as RESP2 shows it) as a dictionary.
    private static func fields(_ value: RedisValue) -> [String: RedisValue] {
        var fields: [String: RedisValue] = [:]
        let items = value.array ?? []
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].string { fields[name] = items[index + 1] }
            index += 2
        }
        return fields
    }

    private static func address(_ info: [String: RedisValue], askedHost: String) -> NodeAddress? {
        var port = info["port"]?.integer ?? 0
        if port <= 0 { port = info["tls-port"]?.integer ?? 0 }
        guard port > 0 else { return nil }
        var host = info["endpoint"]?.string ?? ""
        if host.isEmpty || host == "?" { host = info["ip"]?.string ?? "" }
        if host.isEmpty || host == "?" { host = askedHost }
        return NodeAddress(host: host, port: Int(port))
    }
}
