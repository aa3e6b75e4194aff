extension TreeContext {
    /// The context as one header value: `1;<tree>;<node>;<parent>;<depth>;<deadline ms>;<priority>;<partition>`,
    /// each field percent-escaped (`%`, `;`, controls, non-ASCII), empty for none. For example
    /// `1;req-7f3;9c1e;;1;1718000000000;interactive;openai`. A started tree that no call has recorded yet
    /// (``RequestTrees/start(id:partition:tenant:limits:priority:)``) writes `2;…;<limits>`, its limits in a ninth field.
    /// A tree on a shard of a sharded global ceiling (``shard``) writes `3;…;<limits or empty>;<shard>`.
    public var headerValue: String {
        // Version 2 adds a started tree's limits (its first call, in whichever process, records them), version 3 the
        // shard; a context without them keeps writing version 1, which every earlier version of Sluice reads.
        let limits = limitsToRecord.map {
            Self.escapeField($0.recordText(deadlineMilliseconds: deadlineMilliseconds))
        }
        var fields = [
            shard != nil ? "3" : limits == nil ? "1" : "2", Self.escapeField(treeID), Self.escapeField(nodeID),
            parentID.map(Self.escapeField) ?? "", String(depth), deadlineMilliseconds.map { String($0) } ?? "",
            priority.description, Self.escapeField(partition),
        ]
        if let shard {
            fields += [limits ?? "", String(shard)]
        } else if let limits {
            fields.append(limits)
        }
        return fields.joined(separator: ";")
    }

    /// Decodes a header value written by ``headerValue``; `nil` for anything malformed (an unknown
    /// version, a missing field, a negative depth, an empty tree id), so a bad header can never
    /// silently join the wrong tree.
    public init?(headerValue: String) {
        let parts = headerValue.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard
            parts.count == 8 && parts[0] == "1" || parts.count == 9 && parts[0] == "2"
                || parts.count == 10 && parts[0] == "3",
            let tree = Self.unescapeField(parts[1]), !tree.isEmpty,
            let node = Self.unescapeField(parts[2]), !node.isEmpty,
            let parent = Self.unescapeField(parts[3]),
            let depth = Int(parts[4]), depth >= 0, depth < 10_000,
            let priority = Self.priority(named: parts[6]),
            let partition = Self.unescapeField(parts[7]), !partition.isEmpty
        else { return nil }
        var deadline: Int64?
        if !parts[5].isEmpty {
            guard let value = Int64(parts[5]), value > 0 else { return nil }
            deadline = value
        }
        var limits: TreeLimits?
        if parts.count >= 9, !parts[8].isEmpty || parts[0] == "2" {
            guard let text = Self.unescapeField(parts[8]), let recorded = TreeLimits(recordText: text) else {
                return nil
            }
            limits = recorded
        }
        var shard: Int?
        if parts.count == 10 {
            guard let index = Int(parts[9]), (0..<1024).contains(index) else { return nil }
            shard = index
        }
        self.init(
            treeID: tree, nodeID: node, parentID: parent.isEmpty ? nil : parent, depth: depth,
            deadlineMilliseconds: deadline, priority: priority, partition: partition, shard: shard)
        self.limitsToRecord = limits
    }

    static func priority(named name: String) -> Priority? {
        switch name {
        case Priority.interactive.description: return .interactive
        case Priority.batch.description: return .batch
        default: return nil
        }
    }

    static func escapeField(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "%") && byte != UInt8(ascii: ";")
                && byte != UInt8(ascii: ",")
            {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += byte < 16 ? "%0" + hex : "%" + hex
            }
        }
        return out
    }

    static func unescapeField(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
