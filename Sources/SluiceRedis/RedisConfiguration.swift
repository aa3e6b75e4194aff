/// Where and how to connect.
///
/// Printing a configuration (`description`, `debugDescription`, string interpolation, `dump`)
/// never shows its password: it reads `***`.
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
    /// How long a caller alone on an idle connection waits for its reply on its own thread.
    ///
    /// When one caller at a time uses a connection (a worker making one provider call after
    /// another), handing each command to the connection's I/O thread and the reply back costs two
    /// thread wake-ups on top of the round trip. After a few such commands in a row the connection
    /// lends its socket to the next lone caller instead: it writes its command and waits in `poll`
    /// for the reply itself, as a C client does, for at most this long; then, or as soon as another
    /// caller arrives, the I/O thread takes over again, and the pipelining of concurrent callers is
    /// unchanged. The wait blocks the caller's thread (one of Swift's cooperative threads), so keep
    /// it near the server's round trip: 1 ms by default, which a server on the same host or in the
    /// same zone answers well within; a wait that runs out makes the connection try lending again
    /// only after twice as many lone commands. A cancelled lone caller returns when its wait ends,
    /// so waits longer than 10 ms are cut to 10 ms; `poll` counts whole milliseconds, so shorter ones
    /// last 1 ms. Zero turns it off, and so does a platform where a sleeping thread cannot watch a
    /// socket for the server's end of it without also waking for each reply (Linux has `POLLRDHUP`).
    public var loneCallerReplyWait: Duration
    /// Backoff between reconnection attempts after a failure: starts at `initial`, doubles, caps
    /// at `maximum`. While backing off, commands fail at once with ``RedisError/Code/unavailable``.
    public var reconnectBackoff: Backoff
    /// TLS for the connection (`rediss://`); `nil` for plain TCP and unix sockets.
    public var tls: TLS?
    /// Redis Sentinel (`redis-sentinel://`): when set, ``endpoint`` is not used; every connection
    /// asks the sentinels for the primary's address when it (re)connects.
    public var sentinel: Sentinel?

    /// Where to find the primary through Redis Sentinel.
    ///
    /// Each (re)connection asks the sentinels in turn (starting with the last one that answered)
    /// `SENTINEL get-master-addr-by-name`, connects to the address the first one to answer gives,
    /// and checks with `ROLE` that the server is a primary. ``RedisConfiguration/username``,
    /// ``RedisConfiguration/password``, ``RedisConfiguration/database`` and
    /// ``RedisConfiguration/tls`` apply to the primary; the sentinels get TLS too, and their own
    /// credentials here.
    public struct Sentinel: Sendable, Hashable {
        /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
        public var primaryName: String
        /// The sentinels to ask, in order (`host:port`, 26379 by default).
        public var sentinels: [Endpoint]
        /// The user for `AUTH` on the sentinels (Sentinel's own ACL), if any.
        public var username: String?
        /// The password for `AUTH` on the sentinels (`requirepass` in sentinel.conf), if any.
        public var password: String?

        public init(primaryName: String, sentinels: [Endpoint], username: String? = nil, password: String? = nil) {
            self.primaryName = primaryName
            self.sentinels = sentinels
            self.username = username
            self.password = password
        }
    }
    /// Where the connections log and count (set by ``RedisClient``; not a setting: equality ignores it).
    var observability = RedisObservability.disabled

    /// TLS settings: the server's certificate is always verified, against the system's roots or
    /// the given CA, and must name the host connected to (or ``serverName``).
    public struct TLS: Sendable, Hashable {
        /// A PEM file of the CA certificates to trust instead of the system's roots
        /// (redis-server's `tls-ca-cert-file`).
        public var caCertificateFile: String?
        /// A PEM client certificate (chain) for mutual TLS (`tls-cert-file`); needs ``keyFile``.
        public var certificateFile: String?
        /// The PEM private key of ``certificateFile`` (`tls-key-file`).
        public var keyFile: String?
        /// The name sent as SNI and required in the server's certificate; the endpoint's host by default.
        public var serverName: String?

        public init(
            caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
            serverName: String? = nil
        ) {
            self.caCertificateFile = caCertificateFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.serverName = serverName
        }
    }

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
        reconnectBackoff: Backoff = Backoff(),
        tls: TLS? = nil,
        sentinel: Sentinel? = nil,
        loneCallerReplyWait: Duration = .milliseconds(1)
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoff = reconnectBackoff
        self.tls = tls
        self.sentinel = sentinel
        self.loneCallerReplyWait = loneCallerReplyWait
    }

    /// Parses `redis://[user:password@]host[:port][/db]`, `redis://[:password@]host...`,
    /// `rediss://…` (the same over TLS), `unix:///path/to/socket[?db=N]` and `redis+unix:///path`.
    /// Percent-escapes in the user name and password are decoded. A `rediss://` URL may name its
    /// TLS files in its query, with redis-server's option names:
    /// `rediss://host:6380?tls-ca-cert-file=/etc/ca.pem&tls-cert-file=…&tls-key-file=…&tls-server-name=…`.
    ///
    /// Redis Sentinel takes Lettuce's form:
    /// `redis-sentinel://[user:password@]host[:port][,host[:port]…][/db]#primaryName`
    /// (`rediss-sentinel://` over TLS), port 26379 by default. The credentials and database are the
    /// primary's; the sentinels' own credentials go in the query, as
    /// `?sentinel-username=…&sentinel-password=…`.
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
                    let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    guard kv.count == 2 else { throw invalid("URL option '\(pair)' has no value (name=value)") }
                    switch kv[0] {
                    case "db":
                        guard let db = Int(kv[1]), db >= 0 else { throw invalid("db must be a number") }
                        database = db
                    case "password": password = percentDecoded(kv[1])
                    case "user", "username": username = percentDecoded(kv[1])
                    default:
                        throw invalid("unknown URL option '\(kv[0])': a unix:// URL takes db, user and password")
                    }
                }
            }
            return
        }
        let scheme: String
        var primaryName: String?
        if url.hasPrefix("redis://") {
            scheme = "redis://"
        } else if url.hasPrefix("rediss://") {
            scheme = "rediss://"
            tls = TLS()
        } else if url.hasPrefix("redis-sentinel://") || url.hasPrefix("rediss-sentinel://") {
            scheme = url.hasPrefix("rediss") ? "rediss-sentinel://" : "redis-sentinel://"
            if scheme.hasPrefix("rediss") { tls = TLS() }
            guard let hash = url.firstIndex(of: "#"), !url[url.index(after: hash)...].isEmpty else {
                throw invalid("a redis-sentinel:// URL needs the primary's name after '#' (…:26379#mymaster)")
            }
            primaryName = percentDecoded(url[url.index(after: hash)...])
        } else {
            throw invalid("expected redis://, rediss://, redis-sentinel://, rediss-sentinel:// or unix://")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        if primaryName != nil, let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var sentinelUsername: String?
        var sentinelPassword: String?
        if let question = rest.firstIndex(of: "?") {
            // A misspelt or misplaced option is an error, not silently ignored: a TLS file named on a redis:// URL
            // would otherwise connect in clear text.
            for pair in rest[rest.index(after: question)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard kv.count == 2 else { throw invalid("URL option '\(pair)' has no value (name=value)") }
                let name = String(kv[0])
                let value = percentDecoded(kv[1])
                if name.hasPrefix("tls-"), tls == nil {
                    throw invalid("URL option \(name) needs a rediss:// or rediss-sentinel:// URL")
                }
                if name.hasPrefix("sentinel-"), primaryName == nil {
                    throw invalid("URL option \(name) needs a redis-sentinel:// or rediss-sentinel:// URL")
                }
                switch name {
                case "tls-ca-cert-file": tls?.caCertificateFile = value
                case "tls-cert-file": tls?.certificateFile = value
                case "tls-key-file": tls?.keyFile = value
                case "tls-server-name": tls?.serverName = value
                case "sentinel-username": sentinelUsername = value
                case "sentinel-password": sentinelPassword = value
                case "db", "database":
                    throw invalid("the database goes in the URL's path (redis://host:6379/2), not in its query")
                default:
                    throw invalid(
                        "unknown URL option '\(name)' (known: tls-ca-cert-file, tls-cert-file, tls-key-file, "
                            + "tls-server-name, sentinel-username, sentinel-password)")
                }
            }
            rest = rest[..<question]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : percentDecoded(user)
                password = percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                // `redis://secret@host`: a lone credential is the password, as redis-cli reads it.
                password = percentDecoded(credentials)
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else { throw invalid("the database must be a number") }
                database = number
            }
        }
        guard let primaryName else {
            endpoint = try Self.parseHostPort(hostPort, defaultPort: 6379)
            return
        }
        var sentinels: [Endpoint] = []
        for entry in hostPort.split(separator: ",", omittingEmptySubsequences: false) {
            guard !entry.isEmpty else { throw invalid("an empty sentinel address in the list") }
            sentinels.append(try Self.parseHostPort(entry, defaultPort: 26379))
        }
        sentinel = Sentinel(
            primaryName: primaryName, sentinels: sentinels, username: sentinelUsername, password: sentinelPassword)
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; an empty host is 127.0.0.1.
    private static func parseHostPort(_ hostPort: Substring, defaultPort: Int) throws(RedisError) -> Endpoint {
        func invalid(_ why: String) -> RedisError { RedisError(.invalidURL, why) }
        var host = "127.0.0.1"
        var port = defaultPort
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
        return .tcp(host: host, port: port)
    }

    /// The configuration as a URL with the password replaced by `***`: safe to log.
    public var redactedURL: String {
        if let sentinel { return redactedSentinelURL(sentinel) }
        var text: String
        switch endpoint {
        case .tcp(let host, let port):
            text = tls == nil ? "redis://" : "rediss://"
            if username != nil || password != nil {
                text += Self.percentEncoded(username ?? "") + (password == nil ? "" : ":***") + "@"
            }
            text += (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
            if database != 0 { text += "/\(database)" }
        case .unixSocket(let path):
            text = "unix://" + path
            var query: [String] = []
            if database != 0 { query.append("db=\(database)") }
            if let username { query.append("user=" + Self.percentEncoded(username)) }
            if password != nil { query.append("password=***") }
            if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        }
        return text
    }

    private func redactedSentinelURL(_ sentinel: Sentinel) -> String {
        var text = tls == nil ? "redis-sentinel://" : "rediss-sentinel://"
        if username != nil || password != nil {
            text += Self.percentEncoded(username ?? "") + (password == nil ? "" : ":***") + "@"
        }
        text += sentinel.sentinels.map { endpoint in
            switch endpoint {
            case .tcp(let host, let port): (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
            case .unixSocket(let path): path
            }
        }.joined(separator: ",")
        if database != 0 { text += "/\(database)" }
        var query: [String] = []
        if let name = sentinel.username { query.append("sentinel-username=" + Self.percentEncoded(name)) }
        if sentinel.password != nil { query.append("sentinel-password=***") }
        if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        return text + "#" + Self.percentEncoded(sentinel.primaryName)
    }

    private static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80,
                scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-._~".unicodeScalars.contains(scalar)
            {
                out.unicodeScalars.append(scalar)
            } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

extension RedisConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The redacted URL (``redactedURL``): never the password.
    public var description: String { redactedURL }

    public var debugDescription: String {
        var text = "RedisConfiguration(\(redactedURL)"
        if let tls {
            text += ", tls: ca \(tls.caCertificateFile ?? "system roots")"
            if let certificate = tls.certificateFile { text += ", client certificate \(certificate)" }
            if let name = tls.serverName { text += ", server name \(name)" }
        }
        return text + ", connectTimeout: \(connectTimeout), commandTimeout: \(commandTimeout))"
    }

    /// What `dump` and debuggers show: every setting, the password as `***`.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "endpoint": endpoint, "username": username as Any, "password": password == nil ? "nil" : "***",
                "database": database, "connectTimeout": connectTimeout, "commandTimeout": commandTimeout,
                "reconnectBackoff": reconnectBackoff, "tls": tls as Any,
                "sentinel": sentinel as Any, "loneCallerReplyWait": loneCallerReplyWait,
            ], displayStyle: .struct)
    }
}

extension RedisConfiguration.Sentinel: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The primary's name and the sentinels; never the sentinels' password.
    public var description: String {
        let addresses = sentinels.map { ConnectionHandshake.describe($0) }.joined(separator: ",")
        return "Sentinel(\(primaryName) via \(addresses)\(password == nil ? "" : ", password: ***"))"
    }

    public var debugDescription: String { description }

    /// What `dump` and debuggers show: the password as `***`.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "primaryName": primaryName, "sentinels": sentinels, "username": username as Any,
                "password": password == nil ? "nil" : "***",
            ], displayStyle: .struct)
    }
}
