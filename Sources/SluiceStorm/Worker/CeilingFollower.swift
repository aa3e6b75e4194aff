import Sluice
import SluiceRedis
import Synchronization

/// Interim stand-in for the reconciler's Redis merge (issue 5), built from library parts: reads each response's
/// rate-limit headers with ``ObservationParser`` and, when two observations in a row state a new limit, rewrites
/// the global scope's quota in the partition's config hash (``QuotaStore``, the operators' path), which the next
/// decision anywhere in the fleet uses. Every worker does the same; the write is idempotent.
///
/// Replace with the reconciler when it lands: it also pauses the fleet on a 429 and cuts the ceiling per
/// congestion event.
final class CeilingFollower: Sendable {
    private struct State {
        var applied: (tokens: Int, requests: Int)?
        var candidate: (tokens: Int, requests: Int)?
        var agreeing = 0
    }

    private let store: QuotaStore
    private let partition: String
    private let settings: SluiceSettings
    private let state = Mutex(State())

    init(redis: RedisClient, partition: String, settings: SluiceSettings) {
        store = QuotaStore(client: redis)
        self.partition = partition
        self.settings = settings
        let stated = (settings.provider.tokensPerWindow, settings.provider.requestsPerWindow)
        state.withLock { $0.applied = stated }
    }

    func observe(_ result: AttemptResult) async {
        guard let status = result.status else { return }
        let observation = ObservationParser().observe(
            status: status, headers: ResponseHeaders(result.headers.map { (name: $0.name, value: $0.value) }))
        guard let tokens = observation[.tokens]?.limit, let requests = observation[.requests]?.limit,
            tokens > 0, requests > 0
        else { return }
        let apply = state.withLock { state -> Bool in
            guard state.applied.map({ $0 != (tokens, requests) }) ?? true else {
                state.agreeing = 0
                return false
            }
            if let candidate = state.candidate, candidate == (tokens, requests) {
                state.agreeing += 1
            } else {
                state.candidate = (tokens, requests)
                state.agreeing = 1
            }
            guard state.agreeing >= 2 else { return false }
            state.applied = (tokens, requests)
            state.agreeing = 0
            return true
        }
        guard apply else { return }
        do {
            let pattern = try ScopePattern(parsing: ["global=\(partition)"])
            let text = settings.globalSpec(tokensPerWindow: tokens, requestsPerWindow: requests)
            let spec = try QuotaSpec(parsing: text)
            for resource in ["tokens", "requests"] {
                guard let limit = spec.limits(for: resource)?.first else { continue }
                try await store.set(pattern, resource: resource, limit: limit)
            }
        } catch {
            state.withLock { $0.applied = nil }  // try again on the next observation
        }
    }
}
