import Foundation
import SluiceRedis

/// A list in Redis that wakes callers waiting for something another caller frees: a lease pool's slot
/// (`sluice:{P}:lease:<scope>:free`, pushed by lease-release.lua) or a request tree's call slot
/// (`sluice:{P}:tree:<id>:free`, pushed by call-finish's "wake" step). A waiter blocks on it with `BLPOP` on
/// a dedicated connection (on a cluster, to the primary that serves the list) instead of asking again and
/// again; call-admit empties the list whenever it refuses a caller for want of that thing, so a wake-up in it
/// always stands for something freed since.
struct WakeUpList: Sendable {
    let key: RedisArgument

    /// Blocks until a wake-up comes or `until`, whichever is first. One block lasts at most three quarters of
    /// the client's command timeout; the caller then asks once more (as it must anyway when a lease expired
    /// without a release). Returns whether a wake-up came.
    func wait(on redis: RedisClient, until: ContinuousClock.Instant) async throws -> Bool {
        let limit = min(until - .now, redis.configuration.commandTimeout * 0.75)
        guard limit >= .milliseconds(10) else {
            try await Task.sleep(for: max(.zero, limit))
            return false
        }
        let key = self.key
        let blockUntil = ContinuousClock.now + limit
        do {
            // Waiting for a free pooled connection counts against `until` too (the soak found calls 100-300 ms
            // past their deadline when every connection was blocked in a BLPOP after Redis came back).
            let reply = try await redis.withConnection(routingKey: key, deadline: blockUntil) { connection in
                let left = blockUntil - .now
                guard left >= .milliseconds(10) else { return RedisValue.null }
                let seconds = String(format: "%.3f", Double(left.milliseconds) / 1000)
                return try await connection.send(RedisCommand("BLPOP", key, RedisArgument(seconds)))
            }
            return reply.array != nil
        } catch let error as RedisError where error.serverPrefix == "MOVED" || error.serverPrefix == "ASK" {
            // On a cluster, the list's slot is moving: no wake-up to wait for here. The caller asks again (through
            // the router, which follows the slot) after a moment.
            try await Task.sleep(for: min(.milliseconds(20), max(.zero, until - .now)))
            return false
        }
    }

    /// The step that pushes one wake-up (wake.lua).
    var wakeStep: ScriptStep { ScriptStep(script: LuaScripts.wake, keys: [key], arguments: []) }
    /// call-admit's "tree_free" step: the list it empties when it refuses a caller for want of what the list
    /// announces (declared in KEYS, not built from another key's name).
    var freedStep: ScriptStep { ScriptStep(script: LuaScripts.wake, keys: [key], arguments: [], entry: "tree_free") }
}
