import ArgumentParser
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--redis URL` on every command; defaults to `$REDIS_URL`, else `redis://127.0.0.1:6379`.
/// A `rediss://` URL connects over TLS; the TLS files take redis-server's own option names. A
/// `redis-sentinel://…#primaryName` URL finds the primary through Redis Sentinel and follows a fail-over.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("redis"),
        help:
            "Redis URL: redis://, rediss:// (TLS), redis-sentinel://host:port[,host:port…][/db]#primaryName, rediss-sentinel:// or unix:// (default: $REDIS_URL, else redis://127.0.0.1:6379)."
    )
    var url: String?

    @OptionGroup var tlsFiles: TLSFileOptions

    var resolvedURL: String {
        if let url { return url }
        if let fromEnvironment = getenv("REDIS_URL"), fromEnvironment.pointee != 0 {
            return String(cString: fromEnvironment)
        }
        return "redis://127.0.0.1:6379"
    }

    /// The configuration the URL and the other options describe.
    func configuration() throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: resolvedURL)
        if !tlsFiles.named.isEmpty {
            guard var tls = configuration.tls else { throw tlsFiles.needsTLS }
            if let file = tlsFiles.caCertificateFile { tls.caCertificateFile = file }
            if let file = tlsFiles.certificateFile { tls.certificateFile = file }
            if let file = tlsFiles.keyFile { tls.keyFile = file }
            configuration.tls = tls
        }
        return configuration
    }

    func makeClient(poolSize: Int = 4, sharedConnections: Int = 1) throws -> RedisClient {
        try RedisClient(configuration: configuration(), poolSize: poolSize, sharedConnections: sharedConnections)
    }
}

/// `--tls-ca-cert-file`, `--tls-cert-file` and `--tls-key-file`: redis-server's own option names, for a `rediss://`
/// or `rediss-sentinel://` URL.
struct TLSFileOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-ca-cert-file"),
        help: "PEM file of the CA certificates to trust for rediss:// (default: the system's roots).")
    var caCertificateFile: String?

    @Option(name: .customLong("tls-cert-file"), help: "PEM client certificate for mutual TLS (with --tls-key-file).")
    var certificateFile: String?

    @Option(name: .customLong("tls-key-file"), help: "PEM private key of --tls-cert-file.")
    var keyFile: String?

    /// The files given, by option name.
    var named: [(option: String, file: String)] {
        [("tls-ca-cert-file", caCertificateFile), ("tls-cert-file", certificateFile), ("tls-key-file", keyFile)]
            .compactMap { option, file in file.map { (option, $0) } }
    }

    var needsTLS: ValidationError {
        ValidationError(
            "--tls-ca-cert-file, --tls-cert-file and --tls-key-file need a rediss:// or rediss-sentinel:// URL")
    }
}
