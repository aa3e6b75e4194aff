import SluiceRedis

extension CircuitBreaker {
    /// The breaker as Redis holds it now, for operators; nil when it has no state (never used, or expired:
    /// closed). Reading changes nothing: an open breaker whose cool-down is over stays `open` here until its
    /// next call turns it half-open.
    public func current() async throws(RedisError) -> FleetSnapshot.Breaker? {
        let keys = PartitionKeys(partition: partition)
        let replies = try await redis.pipeline([RedisCommand("TIME"), RedisCommand("GET", keys.key("breaker", name))])
        let time = replies[0].array ?? []
        let now = time.count == 2 ? (time[0].integer ?? 0) * 1000 + (time[1].integer ?? 0) / 1000 : 0
        return FleetReader.breaker(name, replies[1], now: now)
    }
}
