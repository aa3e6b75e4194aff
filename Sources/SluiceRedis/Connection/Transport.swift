import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One open socket of a connection, with what runs over it: an optional TLS session and hiredis'
/// reply reader. Owned and used by the connection's I/O thread only.
///
/// The socket is non-blocking. Every byte goes out through `sluice_send` (`MSG_NOSIGNAL` /
/// `SO_NOSIGPIPE`), so a peer that is gone is an `EPIPE` error here and never a SIGPIPE in the
/// host process. With TLS, OpenSSL works on two memory buffers (see `sluice_tls_session_new`):
/// plain text is encrypted into `encrypted`, which goes to the socket like any other bytes, and
/// bytes read from the socket go into the session, which hands back the plain text for the reader.
final class Transport {
    let fd: Int32
    private let reader: UnsafeMutablePointer<redisReader>
    private let session: OpaquePointer?
    private(set) var isHandshaking: Bool

    /// Plain text waiting to be sent (without TLS, the bytes themselves), from `sent` on.
    private var output: [UInt8] = []
    private var sent = 0
    /// TLS: encrypted bytes waiting to be sent, from `encryptedSent` on.
    private var encrypted: [UInt8] = []
    private var encryptedSent = 0
    private let buffer: UnsafeMutableRawBufferPointer
    private static let bufferSize = 64 * 1024

    /// Takes ownership of `fd` (a connected socket); `tls` starts a client handshake over it.
    init(fd: Int32, tls: TLSContext?, serverName: String) throws(RedisError) {
        self.fd = fd
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
        guard let reader = sluice_reader_create() else {
            buffer.deallocate()
            Platform.closeDescriptor(fd)
            throw RedisError(.io, "out of memory")
        }
        self.reader = reader
        if let tls {
            guard let session = sluice_tls_session_new(tls.context, serverName) else {
                redisReaderFree(reader)
                buffer.deallocate()
                Platform.closeDescriptor(fd)
                throw RedisError(.tlsConfiguration, "could not start a TLS session for \(serverName)")
            }
            self.session = session
            isHandshaking = true
        } else {
            session = nil
            isHandshaking = false
        }
    }

    deinit {
        if let session { SSL_free(session) }
        redisReaderFree(reader)
        buffer.deallocate()
        Platform.closeDescriptor(fd)
    }

    var hasPendingOutput: Bool { sent < output.count || encryptedSent < encrypted.count }

    /// Queues plain bytes (RESP commands) to send with the next `flush`.
    func append(_ bytes: [UInt8]) {
        if output.isEmpty {
            output = bytes
        } else {
            output.append(contentsOf: bytes)
        }
    }

    /// Sends what is waiting, as far as the socket takes it without blocking.
    func flush() throws(RedisError) {
        if let session, !isHandshaking, sent < output.count {
            try encrypt(session)
        }
        if session != nil {
            try send(&encrypted, from: &encryptedSent)
        } else {
            try send(&output, from: &sent)
        }
    }

    private func send(_ bytes: inout [UInt8], from offset: inout Int) throws(RedisError) {
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { all in
                sluice_send(fd, all.baseAddress! + offset, all.count - offset)
            }
            if count > 0 {
                offset += count
                continue
            }
            let code = sluice_errno()
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { break }
            throw RedisError(.io, "could not write to the socket: \(Platform.describe(errno: code))")
        }
        if offset == bytes.count {
            bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 20)
            offset = 0
        } else if offset >= 1 << 16 && offset * 2 >= bytes.count {
            bytes.removeFirst(offset)
            offset = 0
        }
    }

    private func encrypt(_ session: OpaquePointer) throws(RedisError) {
        let written = output.withUnsafeBytes { all in
            ERR_clear_error()
            return SSL_write(session, all.baseAddress! + sent, Int32(clamping: all.count - sent))
        }
        guard written > 0 else { throw tlsFailure(session, written, doing: "encrypt") }
        sent += Int(written)
        if sent == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
            sent = 0
        }
        moveEncryptedOutput(session)
    }

    /// Moves what the TLS session produced (records, alerts, handshake messages) to `encrypted`.
    private func moveEncryptedOutput(_ session: OpaquePointer) {
        while case let pending = sluice_tls_pending_output(session), pending > 0 {
            let start = encrypted.count
            encrypted.append(contentsOf: repeatElement(0, count: pending))
            let taken = encrypted.withUnsafeMutableBytes { all in
                sluice_tls_take_output(session, all.baseAddress! + start, Int32(clamping: pending))
            }
            encrypted.removeLast(pending - max(0, Int(taken)))
            if taken <= 0 { break }
        }
    }

    /// Continues the TLS handshake with what arrived; true once it is complete.
    func continueHandshake() throws(RedisError) -> Bool {
        guard let session, isHandshaking else { return true }
        ERR_clear_error()
        let result = SSL_do_handshake(session)
        moveEncryptedOutput(session)
        if result == 1 {
            isHandshaking = false
            // Application data that came with the end of the handshake.
            try decrypt(session)
            return true
        }
        let error = SSL_get_error(session, result)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return false }
        let verification = SSL_get_verify_result(session)
        if verification != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verification))
            if verification == Int(X509_V_ERR_HOSTNAME_MISMATCH) || verification == Int(X509_V_ERR_IP_ADDRESS_MISMATCH)
            {
                throw RedisError(.tlsNameMismatch, "the server's certificate does not name this host: \(reason)")
            }
            throw RedisError(.tlsUntrustedCertificate, "the server's certificate is not trusted: \(reason)")
        }
        var failure = tlsFailure(session, result, doing: "handshake")
        failure = RedisError(.tlsHandshake, failure.message)
        throw failure
    }

    /// Reads what the socket has (a bounded amount, so one busy socket cannot starve the loop)
    /// into the TLS session or the reply reader. Returns true when the server closed the
    /// connection (after the bytes it sent before, which the reader has).
    func receive() throws(RedisError) -> Bool {
        var closed = false
        var total = 0
        while total < 4 * Self.bufferSize {
            let count = sluice_recv(fd, buffer.baseAddress!, buffer.count)
            if count > 0 {
                total += count
                if let session {
                    guard sluice_tls_give_input(session, buffer.baseAddress!, Int32(count)) == Int32(count) else {
                        throw RedisError(.io, "out of memory")
                    }
                } else if sluice_reader_feed(reader, buffer.baseAddress!, count) != REDIS_OK {
                    throw readerError()
                }
                if count < buffer.count { break }
                continue
            }
            if count == 0 {
                closed = true
                break
            }
            let code = sluice_errno()
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { break }
            throw RedisError(.io, "could not read from the socket: \(Platform.describe(errno: code))")
        }
        if let session, !isHandshaking { try decrypt(session) }
        return closed
    }

    private func decrypt(_ session: OpaquePointer) throws(RedisError) {
        while true {
            ERR_clear_error()
            let count = SSL_read(session, buffer.baseAddress!, Int32(buffer.count))
            if count > 0 {
                if sluice_reader_feed(reader, buffer.baseAddress!, Int(count)) != REDIS_OK { throw readerError() }
                continue
            }
            let error = SSL_get_error(session, count)
            // Session tickets or a key update may have made the session write something.
            moveEncryptedOutput(session)
            if error == SSL_ERROR_WANT_READ { return }
            if error == SSL_ERROR_ZERO_RETURN { throw RedisError(.endOfFile, "the server closed the TLS session") }
            throw tlsFailure(session, count, doing: "read")
        }
    }

    /// The next complete reply read so far, or nil.
    func nextReply() throws(RedisError) -> RedisValue? {
        var reply: UnsafeMutablePointer<redisReply>?
        if sluice_reader_next(reader, &reply) != REDIS_OK { throw readerError() }
        guard let reply else { return nil }
        defer { sluice_free_reply(reply) }
        return ConnectionCore.convert(reply)
    }

    private func readerError() -> RedisError {
        RedisError(.protocolError, sluice_reader_errstr(reader).map { String(cString: $0) } ?? "unreadable reply")
    }

    private func tlsFailure(_ session: OpaquePointer, _ result: Int32, doing what: String) -> RedisError {
        let kind = SSL_get_error(session, result)
        if let text = openSSLError() {
            return RedisError(.io, "TLS \(what) failed: \(text)")
        }
        if kind == SSL_ERROR_SYSCALL {
            return RedisError(.endOfFile, "the server closed the connection during the TLS \(what)")
        }
        return RedisError(.io, "TLS \(what) failed (OpenSSL error \(kind))")
    }
}

/// An OpenSSL client context made from ``RedisConfiguration/TLS``: the trusted roots and the
/// optional client certificate, loaded once per connection. Freed exactly once, in `deinit`.
///
/// `@unchecked Sendable`: after `init` the context is only read (`SSL_new` on the I/O thread),
/// which OpenSSL allows from any thread.
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    init(_ settings: RedisConfiguration.TLS) throws(RedisError) {
        guard let context = sluice_tls_context_new() else {
            throw RedisError(.tlsConfiguration, "could not create a TLS context: \(Self.lastError())")
        }
        self.context = context
        if let file = settings.caCertificateFile {
            guard SSL_CTX_load_verify_locations(context, file, nil) == 1 else {
                throw RedisError(.tlsConfiguration, "could not load the CA file \(file): \(Self.lastError())")
            }
        } else if SSL_CTX_set_default_verify_paths(context) != 1 {
            throw RedisError(.tlsConfiguration, "could not load the system's trusted roots: \(Self.lastError())")
        }
        switch (settings.certificateFile, settings.keyFile) {
        case (nil, nil): break
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw RedisError(
                    .tlsConfiguration, "could not load the certificate file \(certificate): \(Self.lastError())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                throw RedisError(.tlsConfiguration, "could not load the key file \(key): \(Self.lastError())")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw RedisError(.tlsConfiguration, "the key file \(key) does not match the certificate \(certificate)")
            }
        default:
            throw RedisError(.tlsConfiguration, "a client certificate needs both a certificate file and a key file")
        }
    }

    deinit { SSL_CTX_free(context) }

    private static func lastError() -> String {
        openSSLError() ?? "unknown error"
    }
}

/// The oldest error in this thread's OpenSSL error queue, as text; the queue is cleared.
func openSSLError() -> String? {
    var text = [CChar](repeating: 0, count: 256)
    guard sluice_tls_error(&text, text.count) != 0 else { return nil }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
