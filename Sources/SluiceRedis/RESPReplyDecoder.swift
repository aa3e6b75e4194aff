import CHiredis

/// Decodes a byte stream of RESP replies the way a connection does: hiredis' reader parses it (with the same cap on
/// announced array sizes, `sluice_reader_limit_arrays`), and every complete reply goes through the same conversion
/// as a reply read from a socket (``ConnectionCore/convert(_:)``).
///
/// Package-internal, with no socket: the RESP fuzz target (`Fuzz/FuzzRESPReplies`) and unit tests feed it bytes
/// that no well-behaved server would send.
package enum RESPReplyDecoder {
    /// The replies complete in `bytes`, in order, and the protocol error that stopped the reader, if any
    /// (replies before the error are kept; an incomplete reply at the end is neither a reply nor an error).
    package static func decode(_ bytes: [UInt8]) -> (replies: [RedisValue], error: String?) {
        guard let reader = sluice_reader_create() else { return ([], "out of memory") }
        defer { redisReaderFree(reader) }
        let fed = bytes.withUnsafeBytes { buffer in
            redisReaderFeed(reader, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
        guard fed == REDIS_OK else { return ([], errorText(reader)) }
        var replies: [RedisValue] = []
        while true {
            var reply: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &reply) == REDIS_OK else { return (replies, errorText(reader)) }
            guard let reply else { return (replies, nil) }
            replies.append(ConnectionCore.convert(reply.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(reply)
        }
    }

    private static func errorText(_ reader: UnsafeMutablePointer<redisReader>) -> String {
        sluice_reader_errstr(reader).map { String(cString: $0) } ?? "protocol error"
    }
}
