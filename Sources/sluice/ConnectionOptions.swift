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

    @Option(
        name: .customLong("tls-ca-cert-file"),
        help: "PEM file of the CA certificates to trust for rediss:// (default: the system's roots).")
    var tlsCACertificateFile: String?

    @Option(name: .customLong("tls-cert-file"), help: "PEM client certificate for mutual TLS (with --tls-key-file).")
    var tlsCertificateFile: String?

    @Option(name: .customLong("tls-key-file"), help: "PEM private key of --tls-cert-file.")
    var tlsKeyFile: String?

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
        if tlsCACertificateFile != nil || tlsCertificateFile != nil || tlsKeyFile != nil {
            guard var tls = configuration.tls else {
                throw ValidationError(
                    "--tls-ca-cert-file, --tls-cert-file and --tls-key-file need a rediss:// or rediss-sentinel:// URL")
            }
            if let file = tlsCACertificateFile { tls.caCertificateFile = file }
            if let file = tlsCertificateFile { tls.certificateFile = file }
            if let file = tlsKeyFile { tls.keyFile = file }
            configuration.tls = tls
        }
        return configuration
    }

    func makeClient(poolSize: Int = 4, sharedConnections: Int = 1) throws -> RedisClient {
        try RedisClient(configuration: configuration(), poolSize: poolSize, sharedConnections: sharedConnections)
    }
}
