import ArgumentParser
import SluiceRedis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--redis URL` on every command; defaults to `$REDIS_URL`, else `redis://127.0.0.1:6379`.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("redis"), help: "Redis URL (default: $REDIS_URL, else redis://127.0.0.1:6379).")
    var url: String?

    var resolvedURL: String {
        if let url { return url }
        if let fromEnvironment = getenv("REDIS_URL"), fromEnvironment.pointee != 0 {
            return String(cString: fromEnvironment)
        }
        return "redis://127.0.0.1:6379"
    }

    func makeClient(poolSize: Int = 4, sharedConnections: Int = 1) throws -> RedisClient {
        try RedisClient(
            configuration: RedisConfiguration(url: resolvedURL), poolSize: poolSize,
            sharedConnections: sharedConnections)
    }
}
