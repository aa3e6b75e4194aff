import Sluice

/// The fleet state of ``FleetSnapshot``s as Prometheus metric families, every sample labelled with its
/// partition. Labels stay bounded: scopes, breakers and event types are the fleet's configuration
/// (models, tools, providers), never tenants or trees; trees are only counted and summed.
enum FleetMetrics {
    /// Event counts of one partition, by type, as ``EventCounter`` accumulates them.
    typealias EventCounts = [String: [String: Int]]

    static func render(
        _ snapshots: [FleetSnapshot], events: EventCounts, scrapeSeconds: Double, up: Bool
    ) -> String {
        var out = PrometheusText()
        out.family("sluice_up", .gauge, "Whether the last read of the fleet's state from Redis succeeded.")
        out.sample([], up ? 1 : 0)
        out.family("sluice_scrape_duration_seconds", .gauge, "How long reading the fleet's state from Redis took.")
        out.sample([], scrapeSeconds)
        guard up else { return out.text }

        func each(
            _ name: String, _ kind: PrometheusText.Kind, _ help: String,
            _ samples: (FleetSnapshot) -> [([(String, String)], Double)]
        ) {
            out.family(name, kind, help)
            for snapshot in snapshots {
                for (labels, value) in samples(snapshot) {
                    out.sample([("partition", snapshot.partition)] + labels, value)
                }
            }
        }

        each(
            "sluice_partition_truncated", .gauge,
            "1 when the read stopped at its bound and covers part of the partition."
        ) {
            [([], $0.truncated ? 1.0 : 0.0)]
        }
        each("sluice_queue_waiting", .gauge, "Callers waiting for admission (or their scheduled time), per scope.") {
            $0.scopes.map { ([("scope", $0.name)], Double($0.waiting)) }
        }
        each("sluice_queue_in_flight", .gauge, "Admitted calls still running, per scope.") {
            $0.scopes.map { ([("scope", $0.name)], Double($0.inFlight)) }
        }
        each("sluice_leases_held", .gauge, "Concurrency leases held now, per scope.") {
            $0.scopes.map { ([("scope", $0.name)], Double($0.leasesHeld)) }
        }
        each("sluice_leases_granted_total", .counter, "Leases granted since the pool's key was created, per scope.") {
            $0.scopes.filter { $0.leasesGranted > 0 }.map { ([("scope", $0.name)], Double($0.leasesGranted)) }
        }
        each(
            "sluice_breaker_state", .gauge,
            "1 for the state each circuit breaker is in (closed, open, half-open), 0 for the others."
        ) { snapshot in
            snapshot.breakers.flatMap { breaker in
                ["closed", "open", "half-open"].map { state in
                    ([("breaker", breaker.name), ("state", state)], breaker.state.description == state ? 1.0 : 0.0)
                }
            }
        }
        each("sluice_breaker_opened_total", .counter, "How often each breaker opened while its key lived.") {
            $0.breakers.map { ([("breaker", $0.name)], Double($0.timesOpened)) }
        }
        each("sluice_breaker_window_calls", .gauge, "Calls a closed breaker counted in its recent window.") {
            $0.breakers.map { ([("breaker", $0.name)], Double($0.calls)) }
        }
        each("sluice_breaker_window_failures", .gauge, "Failures a closed breaker counted in its recent window.") {
            $0.breakers.map { ([("breaker", $0.name)], Double($0.failures)) }
        }

        func resources(_ value: @escaping (ReconcilerStatus.Resource) -> Double?) -> (FleetSnapshot) -> [(
            [(String, String)], Double
        )] {
            { snapshot in
                var seen: Set<[String]> = []
                return snapshot.reconciler.flatMap { status in
                    status.resources.compactMap { resource -> ([(String, String)], Double)? in
                        guard let number = value(resource), seen.insert([status.root.kind, resource.name]).inserted
                        else { return nil }
                        return ([("scope_kind", status.root.kind), ("resource", resource.name)], number)
                    }
                }
            }
        }
        each(
            "sluice_ceiling", .gauge,
            "The reconciler's ceiling per window: stated limit x safety factor x share (the buckets cap it too).",
            resources { $0.ceiling })
        each(
            "sluice_ceiling_share", .gauge, "What the last cut left of the ceiling, climbing back to 1.",
            resources { $0.share })
        each(
            "sluice_stated_limit", .gauge, "The provider's stated limit per window, as its responses report it.",
            resources { $0.statedLimit.map(Double.init) })
        each(
            "sluice_stated_limit_window_seconds", .gauge, "The window of the provider's stated limit.",
            resources { Double($0.window.components.seconds) + Double($0.window.components.attoseconds) * 1e-18 })
        each("sluice_paused", .gauge, "1 while a 429 pauses the partition's admissions.") { snapshot in
            snapshot.reconciler.isEmpty
                ? [] : [([], snapshot.reconciler.contains { ($0.pausedUntil ?? 0) > $0.now } ? 1.0 : 0.0)]
        }
        each("sluice_pause_remaining_seconds", .gauge, "How long the partition's pause lasts still.") { snapshot in
            snapshot.reconciler.isEmpty
                ? []
                : [([], Double(snapshot.reconciler.map { max(0, ($0.pausedUntil ?? 0) - $0.now) }.max() ?? 0) / 1000)]
        }
        each("sluice_ceiling_cuts_total", .counter, "Congestion events that cut the ceiling while its state lived.") {
            snapshot in
            snapshot.reconciler.isEmpty ? [] : [([], Double(snapshot.reconciler.map(\.cuts).reduce(0, +)))]
        }
        each(
            "sluice_shadow_would_deny_total", .counter,
            "Decisions a shadow limit would have denied, per scope kind, resource and limit kind."
        ) {
            $0.shadow.map {
                (
                    [("scope_kind", $0.scopeKind), ("resource", $0.resource), ("limit_kind", $0.limitKind)],
                    Double($0.count)
                )
            }
        }
        each("sluice_trees_open", .gauge, "Request trees whose keys live now.") { [([], Double($0.treesOpen))] }
        each(
            "sluice_trees_top_spent", .gauge,
            "Spent or reserved by the trees spending most (sluice top lists them), summed per resource."
        ) { snapshot in
            var sums: [String: Int64] = [:]
            for tree in snapshot.topTrees { sums.merge(tree.spent, uniquingKeysWith: +) }
            return sums.sorted { $0.key < $1.key }.map { ([("resource", $0.key)], Double($0.value)) }
        }
        each("sluice_workers_live", .gauge, "Workers whose registration is live.") { [([], Double($0.workers))] }
        each("sluice_event_stream_length", .gauge, "Entries in the partition's event stream (capped).") {
            [([], Double($0.streamLength))]
        }
        each(
            "sluice_events_total", .counter,
            "Events by type read from the partition's stream since this exporter started (from the oldest retained)."
        ) { snapshot in
            (events[snapshot.partition] ?? [:]).sorted { $0.key < $1.key }.map {
                ([("type", $0.key)], Double($0.value))
            }
        }
        return out.text
    }
}

/// Counts each partition's events by type as new entries appear, reading at most `batch` entries per
/// partition per scrape (a long backlog is caught up over several scrapes). Event types are bounded:
/// beyond `maxTypes` per partition they count as `other`.
actor EventCounter {
    private var last: [String: String] = [:]
    private var counts: FleetMetrics.EventCounts = [:]
    let batch: Int
    let maxTypes: Int

    init(batch: Int = 2_000, maxTypes: Int = 50) {
        self.batch = batch
        self.maxTypes = maxTypes
    }

    func update(_ partitions: [String], reader: FleetReader) async throws -> FleetMetrics.EventCounts {
        for partition in partitions {
            let events = try await reader.events(partition, after: last[partition] ?? "0", count: batch)
            var table = counts[partition] ?? [:]
            for event in events {
                let type = table[event.type] != nil || table.count < maxTypes ? event.type : "other"
                table[type, default: 0] += 1
            }
            counts[partition] = table
            if let id = events.last?.id { last[partition] = id }
        }
        return counts
    }
}
