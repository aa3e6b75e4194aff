import HTTPTypes

/// A raw header block as a person pastes it: what `curl -i` or `curl -D -` prints, or what an HTTP log holds.
///
/// ```text
/// HTTP/1.1 429 Too Many Requests
/// Date: Wed, 21 May 2025 10:15:30 GMT
/// retry-after: 12
/// ```
///
/// Each line is `Name: value`. A status line (`HTTP/1.1 429 Too Many Requests`, `HTTP/2 200`, or HTTP/2's
/// `:status: 429`) sets ``status`` and starts a new block, so that with `curl -iL` only the final response after
/// redirects counts. A blank line ends the headers; what follows (a body) is skipped until the next status line.
/// A line indented with spaces or tabs continues the previous value (obsolete line folding). CRLF line ends are
/// accepted. Lines that are none of these, or whose name is not a valid HTTP field name, are skipped and listed in
/// ``ignoredLines``.
package struct HeaderBlock: Sendable, Hashable {
    /// The status of the block's status line, if it had one.
    package var status: Int?

    /// The header fields of the block, in order, values without the spaces and tabs around them.
    package var headers: HTTPFields

    /// The 1-based numbers of lines that were neither a header, a status line, a continuation nor blank.
    package var ignoredLines: [Int]

    package init(parsing text: String) {
        var status: Int?
        var fields: [(name: HTTPField.Name, value: String)] = []
        var ignoredLines: [Int] = []
        var inBody = false

        // "\r\n" is one Character in Swift, and a newline like "\n".
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if let lineStatus = Self.status(ofStatusLine: line) {
                (status, fields, ignoredLines, inBody) = (lineStatus, [], [], false)
                continue
            }
            if inBody { continue }
            if HeaderText.trimmed(line).isEmpty {
                inBody = !fields.isEmpty
                continue
            }
            if line.first == " " || line.first == "\t", !fields.isEmpty {
                fields[fields.count - 1].value += " " + HeaderText.trimmed(line)
                continue
            }
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else {
                ignoredLines.append(index + 1)
                continue
            }
            fields.append((name, String(line[line.index(after: colon)...])))
        }
        self.status = status
        // HTTPField trims the value's spaces and tabs, and turns control characters into spaces.
        self.headers = HTTPFields(fields.map { HTTPField(name: $0.name, value: $0.value) })
        self.ignoredLines = ignoredLines
    }

    /// `HTTP/1.1 429 Too Many Requests`, `HTTP/2 200` or `:status: 429` → the status.
    private static func status(ofStatusLine line: Substring) -> Int? {
        if line.hasPrefix(":status:") {
            return code(HeaderText.trimmed(line.dropFirst(":status:".count)))
        }
        guard line.hasPrefix("HTTP/") else { return nil }
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2 else { return nil }
        return code(parts[1])
    }

    private static func code(_ text: Substring) -> Int? {
        guard text.utf8.count == 3, let value = HeaderNumbers.count(text), (100...599).contains(value) else {
            return nil
        }
        return value
    }
}
