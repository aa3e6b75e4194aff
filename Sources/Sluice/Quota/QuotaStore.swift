import Logging
import SluiceRedis

/// A scope pattern of the config hash: exact names, then (optionally) `*` for every kind below, as
/// in `global=openai tenant=* tree=*`. The root is always exact: it names the partition.
public struct ScopePattern: Sendable, Hashable, CustomStringConvertible {
    /// Each level's kind and name; nil for `*`.
    public let levels: [(kind: String, name: String?)]

    public init(parsing texts: [String]) throws(QuotaError) {
        var levels: [(kind: String, name: String?)] = []
        for text in texts {
            let scope = try Scope(parsing: text)
            levels.append((scope.kind, scope.name == "*" ? nil : scope.name))
        }
        guard !levels.isEmpty else { throw QuotaError(.emptyPath, "a pattern needs at least one scope") }
        guard levels.count <= ScopePath.maximumDepth else {
            throw QuotaError(.pathTooDeep, "a pattern has at most \(ScopePath.maximumDepth) scopes")
        }
        guard levels[0].name != nil else {
            throw QuotaError(.invalidScope, "the root scope is exact: it names the partition")
        }
        guard let firstWildcard = levels.firstIndex(where: { $0.name == nil }) ?? Optional(levels.count),
            levels[firstWildcard...].allSatisfy({ $0.name == nil })
        else {
            throw QuotaError(.invalidScope, "after a * every scope is * (tenant=* tree=*, not tenant=* tree=x)")
        }
        self.levels = levels
    }

    /// Levels already checked (a prefix of a parsed pattern).
    init(levels: [(kind: String, name: String?)]) {
        self.levels = levels
    }

    /// The field of the config hash, names escaped as in keys.
    public var field: String {
        levels.map { "\($0.kind)=\($0.name.map(KeyName.escape) ?? "*")" }.joined(separator: " ")
    }

    public var partition: String { levels[0].name ?? "" }
    public var description: String { levels.map { "\($0.kind)=\($0.name ?? "*")" }.joined(separator: " ") }

    public static func == (lhs: ScopePattern, rhs: ScopePattern) -> Bool { lhs.field == rhs.field }
    public func hash(into hasher: inout Hasher) { hasher.combine(field) }
}

/// One field of a config hash, as stored, with whether Sluice can use it.
public struct QuotaField: Sendable, Hashable {
    /// The key of the config hash (`sluice:{openai}:quotas`).
    public var key: String
    public var field: String
    public var value: String
    /// The parsed value, or the error that makes decisions ignore it.
    public var spec: Result<QuotaSpec, QuotaError>
}

/// Reads and edits the config hashes: what `sluice quota` does, and what an operator may also do
/// with `redis-cli HSET` (<doc:QuotaConfiguration>).
public struct QuotaStore: Sendable {
    public let client: RedisClient
    public let namespace: String

    /// Where invalid operator config found by ``list()`` is logged (`warning`, counts only; the fields at `debug`).
    public let logger: Logger

    public init(client: RedisClient, namespace: String = "sluice", logger: Logger = .sluiceDisabled) {
        self.client = client
        self.namespace = namespace
        self.logger = logger
    }

    func key(_ pattern: ScopePattern) -> String { QuotaKeys(namespace: namespace, partition: pattern.partition).quotas }

    /// The field for `pattern`, if set.
    public func get(_ pattern: ScopePattern) async throws(QuotaError) -> QuotaField? {
        let key = key(pattern)
        let value = try await send(RedisCommand("HGET", RedisArgument(key), RedisArgument(pattern.field)))
        guard let text = value.string else { return nil }
        return QuotaField(
            key: key, field: pattern.field, value: text,
            spec: Result { () throws(QuotaError) in try QuotaSpec(parsing: text) })
    }

    /// Sets `limit` for `resource` at `pattern`, keeping the field's other limits (a limit of the
    /// same kind, for windows of the same length, is replaced). Returns the field's new spec.
    @discardableResult
    public func set(_ pattern: ScopePattern, resource: String, limit: QuotaLimit) async throws(QuotaError) -> QuotaSpec
    {
        guard Identifier.isValid(resource) else { throw QuotaError(.invalidResource, "a resource is an identifier") }
        // Checked as the script will parse it, before anything is written.
        var probe = QuotaSpec()
        probe.set(limit, for: resource)
        _ = try QuotaSpec(parsing: probe.description)
        let updated =
            try await edit(pattern) { current throws(QuotaError) in
                var spec =
                    (try? current.map { (text: String) throws(QuotaError) in try QuotaSpec(parsing: text) })
                    ?? QuotaSpec()
                spec.set(limit, for: resource)
                guard spec.limitCount <= QuotaSpec.maximumLimits else {
                    throw QuotaError(.tooManyLimits, "a spec holds at most \(QuotaSpec.maximumLimits) limits")
                }
                return spec
            } ?? QuotaSpec()
        try await afterEdit(pattern)
        return updated
    }

    /// Removes `resource`'s limits at `pattern`, or the whole field when `resource` is nil.
    /// Returns whether anything was there.
    @discardableResult
    public func remove(_ pattern: ScopePattern, resource: String? = nil) async throws(QuotaError) -> Bool {
        var found = false
        _ = try await edit(pattern) { current throws(QuotaError) in
            guard let current else { return nil }
            guard let resource else {
                found = true
                return nil
            }
            guard var spec = try? QuotaSpec(parsing: current) else {
                throw QuotaError(.invalidSpec, "the field does not parse; remove it whole (without --resource)")
            }
            found = spec.limits(for: resource) != nil
            spec.remove(resource: resource)
            return spec.entries.isEmpty ? nil : spec
        }
        try await afterEdit(pattern)
        return found
    }

    /// Sets the weight of `tenant` (the second scope of a quota path, `tenant=acme`) in the batch line of the
    /// partition of root `root` (`global=openai`), or removes it when `weight` is nil: waiting batch callers take
    /// turns by tenant in proportion to their weights (<doc:Backpressure>). A weight set here applies to every
    /// process of the fleet at once and takes precedence over each one's
    /// ``AdmissionQueue/Configuration/tenantWeights``. Kept in `sluice:{<root>}:weights` (tenant -> weight),
    /// configuration without expiry like the quota hash. Throws ``QuotaError/Code/invalidSpec`` for a weight
    /// that is not a number from 0.001 to 1000.
    public func setTenantWeight(_ weight: Double?, tenant: Scope, root: Scope) async throws(QuotaError) {
        let key = PartitionKeys(partition: root.name, shard: nil, namespace: namespace).weights
        guard let weight else {
            _ = try await send(RedisCommand("HDEL", key, RedisArgument(tenant.escaped)))
            return
        }
        guard weight.isFinite, (0.001...1000).contains(weight) else {
            throw QuotaError(.invalidSpec, "a tenant's weight is a number from 0.001 to 1000")
        }
        _ = try await send(RedisCommand("HSET", key, RedisArgument(tenant.escaped), RedisArgument(String(weight))))
    }

    /// The weight of `tenant` set in the partition of root `root` (``setTenantWeight(_:tenant:root:)``), or nil
    /// when none is set. Throws ``QuotaError/Code/invalidSpec`` when the value there (written by hand) is not a
    /// number from 0.001 to 1000: the line ignores it, and each process's own weight applies.
    public func tenantWeight(tenant: Scope, root: Scope) async throws(QuotaError) -> Double? {
        let key = PartitionKeys(partition: root.name, shard: nil, namespace: namespace).weights
        guard let text = try await send(RedisCommand("HGET", key, RedisArgument(tenant.escaped))).string else {
            return nil
        }
        let words = text.split(whereSeparator: \.isWhitespace)  // Lua's tonumber allows spaces around it
        guard words.count == 1, let weight = Double(words[0]), weight.isFinite, (0.001...1000).contains(weight) else {
            throw QuotaError(
                .invalidSpec,
                "the weight stored for \(tenant), \"\(text)\", is not a number from 0.001 to 1000: the line ignores it")
        }
        return weight
    }

    /// Every field of every config hash under the namespace (on every primary of a Redis Cluster).
    public func list() async throws(QuotaError) -> [QuotaField] {
        var fields: [QuotaField] = []
        let keys: [String]
        do {
            keys = try await client.scanKeys(matching: "\(namespace):{*}:quotas")
        } catch {
            throw QuotaError.redis(error)
        }
        // The shards of a sharded root ({<root>~s<k>}) hold copies and generated specs: the root's hash lists them.
        for key in keys.sorted() where !Self.isShardConfig(key) {
            let reply = try await send(RedisCommand("HGETALL", RedisArgument(key)))
            let items = reply.array ?? []
            for index in stride(from: 0, to: items.count - 1, by: 2) {
                // Fields that are no scope pattern (a sharded root's "shards") are bookkeeping.
                guard let field = items[index].string, field.contains("="), let value = items[index + 1].string
                else { continue }
                fields.append(
                    QuotaField(
                        key: key, field: field, value: value,
                        spec: Result { () throws(QuotaError) in try QuotaSpec(parsing: value) }))
            }
        }
        let invalid = fields.filter { if case .failure = $0.spec { true } else { false } }
        if !invalid.isEmpty {
            logger.warning(
                "quota config fields do not parse; decisions ignore them",
                metadata: ["sluice.invalid_fields": "\(invalid.count)"])
            for field in invalid {
                logger.debug(
                    "invalid quota field", metadata: ["sluice.key": "\(field.key)", "sluice.field": "\(field.field)"])
            }
        }
        return fields.sorted { ($0.key, $0.field) < ($1.key, $1.field) }
    }

    /// `...{<tag>~s<digits>}:quotas`: a shard's config hash.
    static func isShardConfig(_ key: String) -> Bool {
        guard key.hasSuffix("}:quotas") else { return false }
        let tag = key.dropLast("}:quotas".count)
        let digits = tag.reversed().prefix { $0.isASCII && $0.isNumber }
        return !digits.isEmpty && tag.dropLast(digits.count).hasSuffix("~s")
    }

    /// The would-deny counters of shadow limits, per `<field>|<resource>|<kind>`, for a partition.
    package func shadowCounts(partition: String) async throws(QuotaError) -> [String: Int64] {
        let reply = try await send(
            RedisCommand("HGETALL", RedisArgument(QuotaKeys(namespace: namespace, partition: partition).stats)))
        let items = reply.array ?? []
        var counts: [String: Int64] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let field = items[index].string, let count = items[index + 1].integer { counts[field] = count }
        }
        return counts
    }

    /// Reads the field, lets `change` compute the new spec (nil deletes it), and writes it only if
    /// the field did not change meanwhile; retries otherwise.
    private func edit(
        _ pattern: ScopePattern, _ change: (String?) throws(QuotaError) -> QuotaSpec?
    ) async throws(QuotaError) -> QuotaSpec? {
        let key = key(pattern)
        for _ in 0..<20 {
            let current = try await send(RedisCommand("HGET", RedisArgument(key), RedisArgument(pattern.field))).string
            let updated = try change(current)
            if current == nil && updated == nil { return nil }
            let reply: RedisValue
            do {
                reply = try await client.run(
                    LuaScripts.quotaEdit, keys: [RedisArgument(key)],
                    arguments: [
                        RedisArgument(pattern.field), current == nil ? "0" : "1", RedisArgument(current ?? ""),
                        updated == nil ? "0" : "1", RedisArgument(updated?.description ?? ""),
                    ])
            } catch {
                throw QuotaError.redis(error)
            }
            if reply.integer == 1 { return updated }
        }
        throw QuotaError(.redis, "the field kept changing under concurrent edits; try again")
    }

    func send(_ command: RedisCommand) async throws(QuotaError) -> RedisValue {
        do {
            return try await client.send(command)
        } catch {
            throw QuotaError.redis(error)
        }
    }
}
