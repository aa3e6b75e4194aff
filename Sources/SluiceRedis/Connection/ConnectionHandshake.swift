import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Opening a connection: connect within the deadline, AUTH, SELECT, then switch the socket to
/// non-blocking mode for the I/O thread. Runs on a connection's I/O thread, never on Swift's
/// cooperative pool.
enum ConnectionHandshake {
    typealias Context = UnsafeMutablePointer<redisContext>

    static func open(_ configuration: RedisConfiguration) -> Result<Context, RedisError> {
        let timeoutMicros = Int(configuration.connectTimeout.nanoseconds / 1000)
        let maybeContext: Context?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            maybeContext = sluice_connect_tcp(host, Int32(port), timeoutMicros)
        case .unixSocket(let path):
            maybeContext = sluice_connect_unix(path, timeoutMicros)
        }
        guard let context = maybeContext else {
            return .failure(RedisError(.connect, "could not allocate a connection"))
        }
        if sluice_context_err(context) != 0 {
            let message = String(cString: sluice_context_errstr(context)!)
            redisFree(context)
            return .failure(RedisError(.connect, "\(describe(configuration.endpoint)): \(message)"))
        }
        _ = sluice_set_timeout(context, timeoutMicros)

        if let password = configuration.password {
            var arguments = ["AUTH"]
            if let username = configuration.username { arguments.append(username) }
            arguments.append(password)
            if let error = run(arguments, on: context, name: "AUTH") {
                redisFree(context)
                return .failure(
                    error.code == .server ? RedisError(.authentication, error.message, command: "AUTH") : error)
            }
        }
        if configuration.database != 0 {
            if let error = run(["SELECT", String(configuration.database)], on: context, name: "SELECT") {
                redisFree(context)
                return .failure(error)
            }
        }
        if sluice_context_make_nonblocking(context) != REDIS_OK {
            redisFree(context)
            return .failure(RedisError(.io, "could not make the socket non-blocking"))
        }
        return .success(context)
    }

    /// Runs one command in blocking mode; returns the error, if any.
    private static func run(_ arguments: [String], on context: Context, name: String) -> RedisError? {
        // Copies of the whole UTF-8 bytes (not strdup: a password may hold a NUL byte).
        let buffers: [UnsafeMutablePointer<CChar>] = arguments.map { argument in
            let bytes = Array(argument.utf8)
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { buffer.update(from: $0.baseAddress!, count: bytes.count) }
            }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var lengths = arguments.map { $0.utf8.count }
        var argv = buffers.map { UnsafePointer($0) }
        let reply = argv.withUnsafeMutableBufferPointer { argv in
            sluice_command_argv(context, Int32(arguments.count), argv.baseAddress!, &lengths)
        }
        guard let reply else {
            var error = self.error(of: context)
            error.command = name
            return error
        }
        defer { sluice_free_reply(reply) }
        if case .error(let message) = ConnectionCore.convert(reply) {
            return RedisError(.server, message, command: name)
        }
        return nil
    }

    static func error(of context: Context) -> RedisError {
        let message = sluice_context_errstr(context).map { String(cString: $0) } ?? "unknown error"
        switch sluice_context_err(context) {
        case REDIS_ERR_EOF:
            return RedisError(.endOfFile, message.isEmpty ? "the server closed the connection" : message)
        case REDIS_ERR_PROTOCOL: return RedisError(.protocolError, message)
        case REDIS_ERR_IO:
            if message.contains("timed out") || message.contains("temporarily unavailable") {
                return RedisError(.timeout, message)
            }
            return RedisError(.io, message)
        default: return RedisError(.io, message)
        }
    }

    static func describe(_ endpoint: RedisConfiguration.Endpoint) -> String {
        switch endpoint {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): return path
        }
    }
}
