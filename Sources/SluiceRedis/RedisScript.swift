import Crypto

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
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).hexDigest
    }
}

extension Digest {
    /// The digest as lowercase hex, two digits a byte, as Redis prints script digests.
    var hexDigest: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
