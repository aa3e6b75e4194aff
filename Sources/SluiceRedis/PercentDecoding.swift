/// `text` with its `%XX` escapes undone (a `%` not followed by two hex digits stays as it is): for URLs' user names
/// and passwords, and for the names Sluice escapes into its keys.
package func percentDecoded(_ text: some StringProtocol) -> String {
    var bytes: [UInt8] = []
    var iterator = Array(text.utf8).makeIterator()
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
