/// Where and how to connect.
public struct RedisConfiguration: Sendable, Hashable {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
    }

    public var endpoint: Endpoint
    public var username: String?
    public var password: String?
    /// The database selected on connect (`SELECT`), 0 by default.
    public var database: Int
    /// How long establishing a connection (including AUTH and SELECT) may take.
    public var connectTimeout: Duration
    /// How long a command may wait for its reply. When it passes, the command fails with
    /// ``RedisError/Code/timeout`` and the connection is dropped (replies arrive in order, so a
    /// late reply cannot be told apart from the next one); the next command reconnects.
    public var commandTimeout: Duration
    /// Backoff between reconnection attempts after a failure: starts at `initial`, doubles, caps
    /// at `maximum`. While backing off, commands fail at once with ``RedisError/Code/unavailable``.
    public var reconnectBackoff: Backoff

    public struct Backoff: Sendable, Hashable {
        public var initial: Duration
        public var maximum: Duration
        public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
            self.initial = initial
            self.maximum = maximum
        }
    }

    public init(
        endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        reconnectBackoff: Backoff = Backoff()
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoff = reconnectBackoff
    }

    /// Parses `redis://[user:password@]host[:port][/db]`, `redis://[:password@]host...`,
    /// `unix:///path/to/socket[?db=N]` and `redis+unix:///path`. Percent-escapes in the user
    /// name and password are decoded.
    public init(url: String) throws(RedisError) {
        self.init()
        func invalid(_ why: String) -> RedisError { RedisError(.invalidURL, why) }
        if url.hasPrefix("unix://") || url.hasPrefix("redis+unix://") {
            let rest = url.drop { $0 != ":" }.dropFirst(3)  // after "://"
            let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts[0])
            guard path.hasPrefix("/") else { throw invalid("a unix socket URL needs an absolute path") }
            endpoint = .unixSocket(path: path)
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { continue }
                    switch kv[0] {
                    case "db":
                        guard let db = Int(kv[1]), db >= 0 else { throw invalid("db must be a number") }
                        database = db
                    case "password": password = Self.percentDecoded(kv[1])
                    case "user", "username": username = Self.percentDecoded(kv[1])
                    default: continue
                    }
                }
            }
            return
        }
        guard url.hasPrefix("redis://") else { throw invalid("expected redis:// or unix://") }
        var rest = Substring(url.dropFirst("redis://".count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                // `redis://secret@host`: a lone credential is the password, as redis-cli reads it.
                password = Self.percentDecoded(credentials)
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...].prefix { $0 != "?" }
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else { throw invalid("the database must be a number") }
                database = number
            }
        }
        var host = "127.0.0.1"
        var port = 6379
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("unclosed IPv6 address") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw invalid("bad port") }
                port = p
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            if colon != hostPort.startIndex { host = String(hostPort[..<colon]) }
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                throw invalid("bad port")
            }
            port = p
        } else if !hostPort.isEmpty {
            host = String(hostPort)
        }
        endpoint = .tcp(host: host, port: port)
    }

    private static func percentDecoded(_ text: Substring) -> String {
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
}
