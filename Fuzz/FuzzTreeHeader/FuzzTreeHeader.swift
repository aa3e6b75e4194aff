// libFuzzer target: the `Sluice-Tree` header a service receives from its caller.
//
// Two directions: arbitrary bytes as a header value (decodes or is refused, never crashes; what decodes re-encodes
// to a value that decodes to the same context), and arbitrary field values encoded then decoded (the round trip is
// exact, so a context crosses a process boundary unchanged whatever its ids hold).
import Sluice

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    if let context = TreeContext(headerValue: text) {
        precondition(TreeContext(headerValue: context.headerValue) == context, "decoded context does not round-trip")
        _ = context.remaining
        _ = context.deadlineInstant
        let child = context.child(nodeID: "c")
        precondition(child.depth == context.depth + 1 && child.parentID == context.nodeID)
    }

    // The same bytes as field values: tree, node, parent, partition separated by NUL; depth and deadline from the
    // first bytes.
    let fields = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
        String(decoding: $0, as: UTF8.self)
    }
    guard fields.count >= 4, !fields[0].isEmpty, !fields[1].isEmpty, !fields[3].isEmpty else { return 0 }
    let depth = Int(bytes[0]) * 39
    let deadline: Int64? = bytes[0] % 2 == 0 ? nil : Int64(bytes[1]) << 33 + 1
    let context = TreeContext(
        treeID: fields[0], nodeID: fields[1], parentID: fields[2].isEmpty ? nil : fields[2], depth: depth,
        deadlineMilliseconds: deadline, priority: bytes[0] % 3 == 0 ? .batch : .interactive, partition: fields[3])
    let header = context.headerValue
    precondition(header.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "header value \(header) is not visible ASCII")
    precondition(TreeContext(headerValue: header) == context, "context does not round-trip through \(header)")
    return 0
}
