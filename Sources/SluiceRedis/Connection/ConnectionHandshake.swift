import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What opening a connection needs besides the poll loop: the addresses to try and the commands
/// that set a new connection up. The I/O thread (``ConnectionCore``) drives the steps without
/// blocking, so that they count against the waiting commands' deadlines.
enum ConnectionHandshake {
    /// Resolves a TCP endpoint to the addresses to try, in the resolver's order.
    ///
    /// `getaddrinfo` blocks: with a numeric address or `localhost` it answers at once; a DNS name
    /// may take as long as the system's resolver does.
    static func resolve(_ endpoint: RedisConfiguration.Endpoint) throws(RedisError) -> [SocketAddress] {
        guard case .tcp(let host, let port) = endpoint else { return [] }
        var list: UnsafeMutablePointer<addrinfo>?
        let status = sluice_resolve(host, String(port), &list)
        guard status == 0, let list else {
            throw RedisError(.connect, "\(describe(endpoint)): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            if let address = current.pointee.ai_addr {
                addresses.append(SocketAddress(address, length: current.pointee.ai_addrlen))
            }
            entry = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw RedisError(.connect, "\(describe(endpoint)): no address") }
        return addresses
    }

    /// `AUTH` and `SELECT`, as configured, in that order.
    static func setupCommands(_ configuration: RedisConfiguration) -> [RedisCommand] {
        var commands: [RedisCommand] = []
        if let password = configuration.password {
            var arguments: [RedisArgument] = []
            if let username = configuration.username { arguments.append(RedisArgument(username)) }
            arguments.append(RedisArgument(password))
            commands.append(RedisCommand("AUTH", arguments))
        }
        if configuration.database != 0 {
            commands.append(RedisCommand("SELECT", RedisArgument(configuration.database)))
        }
        return commands
    }

    static func describe(_ endpoint: RedisConfiguration.Endpoint) -> String {
        switch endpoint {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): return path
        }
    }
}

/// A socket address copied out of `getaddrinfo`'s list.
struct SocketAddress {
    private let bytes: [UInt8]

    init(_ address: UnsafePointer<sockaddr>, length: socklen_t) {
        bytes = Array(UnsafeRawBufferPointer(start: address, count: Int(length)))
    }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        bytes.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }
}
