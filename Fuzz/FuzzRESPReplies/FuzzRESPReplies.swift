// libFuzzer target: bytes from a Redis server (or whatever answers on its port) through hiredis' reader and the
// conversion every reply goes through (RESPReplyDecoder), then every accessor callers use on a reply.
import SluiceRedis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let (replies, _) = RESPReplyDecoder.decode(bytes)
    for reply in replies { visit(reply) }
    return 0
}

/// Reads every accessor a caller may use on a reply.
func visit(_ value: RedisValue) {
    _ = value.string
    _ = value.bytes
    _ = value.integer
    _ = value.double
    _ = value.isNull
    for element in value.array ?? [] { visit(element) }
}
