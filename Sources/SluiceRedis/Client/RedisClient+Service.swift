import ServiceLifecycle

extension RedisClient: Service {
    /// Runs the client as a `Service` in a `ServiceGroup`: waits for the group's graceful shutdown (or for
    /// cancellation), then closes the connections (``close()``).
    ///
    /// The client needs no `run()` to work: nothing happens in `init`, its connections connect on their first
    /// command and reconnect on their own. Running it in the group only ties its end to the application's. List it
    /// before the services that use it (a ``ServiceGroup`` stops them in reverse order), so that they can still
    /// say goodbye to Redis while they stop.
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}
