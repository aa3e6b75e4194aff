/// A Lua script run with `EVALSHA`.
///
/// The digest is computed once, here; ``RedisClient/evalScript(_:keys:arguments:)`` sends
/// `EVALSHA` and, when the server does not know the script (`NOSCRIPT`: after a restart or a
/// `SCRIPT FLUSH`), loads it with `SCRIPT LOAD` and retries once.
public struct RedisScript: Sendable, Hashable {
    /// A short name for errors and logs.
    public let name: String
    public let source: String
    /// The lowercase hex SHA-1 of `source`, as Redis names the script.
    public let sha1: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = SHA1.hexDigest(source.utf8)
    }
}
