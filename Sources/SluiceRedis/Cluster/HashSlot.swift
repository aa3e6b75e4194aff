/// Redis Cluster's hash slots: CRC16 (XMODEM) of a key, or of its hash tag, modulo 16384.
package enum HashSlot {
    /// How many slots a cluster has.
    package static let count = 16384

    /// The slot of `key`. When the key holds a hash tag — the bytes between its first `{` and the first `}`
    /// after it, when there is at least one — only the tag is hashed, so keys sharing a tag share a slot.
    package static func of<Key: RandomAccessCollection>(_ key: Key) -> Int where Key.Element == UInt8 {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let afterOpen = key.index(after: open)
            if let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen {
                return Int(crc16(key[afterOpen..<close]) & 0x3FFF)
            }
        }
        return Int(crc16(key) & 0x3FFF)
    }

    /// The slot of a text key.
    package static func of(_ key: String) -> Int {
        of(Array(key.utf8))
    }

    static func crc16<Bytes: Collection>(_ bytes: Bytes) -> UInt16 where Bytes.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis' `crc16.c`.
    private static let table: [UInt16] = (0..<256).map { index -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
