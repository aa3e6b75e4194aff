/// An error from the Redis client layer.
///
/// `code` says what kind of failure it was; `message` says why, in words. Neither ever holds a
/// command's arguments or a password, so an error can be logged as it is.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connect, io, endOfFile, protocolError, timeout, closed, server, authentication, invalidURL
            case unavailable, unsupportedCommand, cancelled, unexpectedReply, requiresDedicatedConnection
            case tlsHandshake, tlsUntrustedCertificate, tlsNameMismatch, tlsConfiguration
            case crossSlot, unknownPrimary
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The connection could not be established (refused, unreachable, connect deadline passed).
        public static let connect = Code(.connect)
        /// Reading or writing the socket failed.
        public static let io = Code(.io)
        /// The server closed the connection.
        public static let endOfFile = Code(.endOfFile)
        /// The server sent bytes that are not the Redis protocol.
        public static let protocolError = Code(.protocolError)
        /// No reply arrived within the command deadline.
        public static let timeout = Code(.timeout)
        /// The client was closed by its owner.
        public static let closed = Code(.closed)
        /// The server answered with an error reply (see ``RedisError/serverPrefix``).
        public static let server = Code(.server)
        /// AUTH was refused.
        public static let authentication = Code(.authentication)
        /// The `redis://` URL could not be understood.
        public static let invalidURL = Code(.invalidURL)
        /// The client is backing off after failed reconnection attempts and did not try again yet; or a Redis
        /// Cluster could not serve the command's slot before its deadline (`CLUSTERDOWN`, `TRYAGAIN`, `LOADING`
        /// answered until then, or no node serves the slot).
        public static let unavailable = Code(.unavailable)
        /// The command does not answer with exactly one reply (pub/sub, `MONITOR`, `CLIENT REPLY`),
        /// which the pipelined connections cannot match to their callers; it was not sent.
        public static let unsupportedCommand = Code(.unsupportedCommand)
        /// The caller's task was cancelled before the reply arrived. A command already written still
        /// runs on the server (its reply is read and dropped, so the connection stays in step); one
        /// not yet written is never sent.
        public static let cancelled = Code(.cancelled)
        /// A reply arrived but does not have the shape the caller expects (a script answering with
        /// the wrong number of items, say). The connection is fine: this is not a connection failure.
        public static let unexpectedReply = Code(.unexpectedReply)
        /// A blocking command (`BLPOP`, `XREAD … BLOCK`, `WAIT`, …) or one that changes the
        /// connection's state (`SELECT`, `MULTI`, `AUTH`, …) was refused on a connection that other
        /// callers share: it would stall or corrupt their commands. Run it on a connection of its
        /// own (``RedisClient/withConnection(_:)``); it was not sent.
        public static let requiresDedicatedConnection = Code(.requiresDedicatedConnection)
        /// The TLS handshake failed for a reason other than the certificate (no common protocol or
        /// cipher, the server refused the client certificate or required one, a plain-text server).
        public static let tlsHandshake = Code(.tlsHandshake)
        /// The server's certificate does not chain to a trusted root (the system's, or the configured CA).
        public static let tlsUntrustedCertificate = Code(.tlsUntrustedCertificate)
        /// The server's certificate is trusted but names another host than the one connected to.
        public static let tlsNameMismatch = Code(.tlsNameMismatch)
        /// A TLS setting cannot be used: a CA, certificate or key file that cannot be read or does
        /// not match, or TLS over a unix socket.
        public static let tlsConfiguration = Code(.tlsConfiguration)
        /// On a Redis Cluster, the command's keys hash to different slots (no single node can run it); it was
        /// not sent. Keys that must go together share a hash tag: `sluice:{tenant}:a`, `sluice:{tenant}:b`.
        public static let crossSlot = Code(.crossSlot)
        /// Redis Sentinel: the sentinels that answered monitor no primary of the configured name
        /// (``RedisConfiguration/Sentinel/primaryName``). A setting to fix, not an outage; nothing was sent.
        public static let unknownPrimary = Code(.unknownPrimary)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The command that failed, by name only.
    public var command: String?

    public init(_ code: Code, _ message: String, command: String? = nil) {
        self.code = code
        self.message = message
        self.command = command
    }

    /// For server errors, the first word of the reply: `NOSCRIPT`, `WRONGTYPE`, `ERR`, `NOAUTH`, ...
    public var serverPrefix: String? {
        guard code == .server else { return nil }
        let word = message.prefix { $0 != " " }
        return word.isEmpty ? nil : String(word)
    }

    /// Whether the failure broke the connection (as opposed to one command being refused, a reply
    /// of an unexpected shape, a cancelled caller, or a setting that is wrong).
    public var isConnectionFailure: Bool {
        code == .connect || code == .io || code == .endOfFile || code == .protocolError || code == .timeout
            || code == .unavailable || code == .tlsHandshake
    }

    public var description: String {
        var text = "Redis \(code)"
        if let command { text += " (\(command))" }
        return text + ": " + message
    }
}
