import Crypto
import SluiceRedis

/// Escaping of user-supplied names (scope names, reservation ids) for keys and config fields.
///
/// Bytes outside `[A-Za-z0-9._-]` become `%XX` (so `{`, `}`, `:`, `/`, `=`, ` `, `*`, `|`, `%` and
/// binary can never act as separators, wildcards or a hash tag), and a name whose escaped form is
/// longer than ``maximumLength`` is cut and suffixed with `~` and 24 hex digits of its SHA-256. `~`
/// never appears in an escaped name, so a cut name cannot equal an uncut one.
enum KeyName {
    static let maximumLength = 96
    private static let keptPrefix = 64

    static func escape(_ name: String) -> String {
        escape(bytes: Array(name.utf8))
    }

    static func escape(bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var cut = 0  // the longest prefix of `out` that ends on a whole escape and fits keptPrefix
        for byte in bytes {
            if isPlain(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
            if out.count <= keptPrefix { cut = out.count }
        }
        if out.count > maximumLength {
            out.removeSubrange(cut...)
            out.append(UInt8(ascii: "~"))
            out.append(
                contentsOf: SHA256.hash(data: bytes).prefix(12).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0x0f)]] })
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The name an escaped one stands for: its `%XX` escapes undone (the digest that ends a name too long to keep,
    /// `~<hex>`, cannot be undone: it stays as it is).
    static func unescape(_ escaped: some StringProtocol) -> String {
        percentDecoded(escaped)
    }

    private static func isPlain(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 46 || b == 95 || b == 45
    }

    private static let hex = Array("0123456789ABCDEF".utf8)
}
