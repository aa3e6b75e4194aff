/// An error from the Redis client layer.
///
/// `code` says what kind of failure it was; `message` says why, in words. Neither ever holds a
/// command's arguments or a password, so an error can be logged as it is.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connect, io, endOfFile, protocolError, timeout, closed, server, authentication, invalidURL
            case unavailable, unsupportedCommand
            case crossSlot
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
        /// On a Redis Cluster, the command's keys hash to different slots (no single node can run it); it was
        /// not sent. Keys that must go together share a hash tag: `sluice:{tenant}:a`, `sluice:{tenant}:b`.
        public static let crossSlot = Code(.crossSlot)

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

    /// Whether the failure broke the connection (as opposed to one command being refused).
    public var isConnectionFailure: Bool {
        code == .connect || code == .io || code == .endOfFile || code == .protocolError || code == .timeout
            || code == .unavailable
    }

    public var description: String {
        var text = "Redis \(code)"
        if let command { text += " (\(command))" }
        return text + ": " + message
    }
}
