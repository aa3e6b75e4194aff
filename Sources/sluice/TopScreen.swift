import Sluice

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `sluice top` shows, as a pure function of the snapshots and the selection: the overview of every
/// partition, or one partition in detail. ``frame(columns:rows:)`` is the whole screen as ANSI text.
struct TopScreen {
    var source: String
    var snapshots: [FleetSnapshot] = []
    var selected = 0
    var drilledIn = false
    var error: String?
    var updatedAt: Int64 = 0

    /// One screen line: its text and an SGR style for the whole line.
    struct Line {
        var text: String
        var style: String = ""
    }

    enum Style {
        static let title = "\u{1B}[1;7m"
        static let heading = "\u{1B}[1m"
        static let selected = "\u{1B}[7m"
        static let alert = "\u{1B}[31m"
        static let warn = "\u{1B}[33m"
        static let dim = "\u{1B}[2m"
    }

    mutating func handle(_ key: Terminal.Key) -> Bool {
        switch key {
        case .quit: return false
        case .up where !drilledIn: selected = max(0, selected - 1)
        case .down where !drilledIn: selected = min(max(0, snapshots.count - 1), selected + 1)
        case .enter where !snapshots.isEmpty: drilledIn = true
        case .escape: drilledIn = false
        default: break
        }
        return true
    }

    /// New data; the selection follows its partition by name.
    mutating func update(_ snapshots: [FleetSnapshot]) {
        let name = self.snapshots.indices.contains(selected) ? self.snapshots[selected].partition : nil
        self.snapshots = snapshots
        if let name, let index = snapshots.firstIndex(where: { $0.partition == name }) { selected = index }
        selected = min(selected, max(0, snapshots.count - 1))
        if snapshots.isEmpty { drilledIn = false }
        updatedAt = snapshots.first?.now ?? updatedAt
        error = nil
    }

    func frame(columns: Int, rows: Int) -> String {
        var lines = drilledIn && snapshots.indices.contains(selected) ? detail(snapshots[selected]) : overview()
        let footer = Line(
            text: drilledIn
                ? " Esc back · q quit" : " ↑/↓ or j/k select · Enter drill in · q quit", style: Style.dim)
        if lines.count > rows - 1 { lines = Array(lines.prefix(max(0, rows - 1))) }
        while lines.count < rows - 1 { lines.append(Line(text: "")) }
        lines.append(footer)
        var out = "\u{1B}[H"
        for (index, line) in lines.enumerated() {
            var text = Self.fit(line.text, columns)
            text += String(repeating: " ", count: max(0, columns - text.count))
            out += line.style + text + "\u{1B}[0m\u{1B}[K" + (index == lines.count - 1 ? "" : "\r\n")
        }
        return out + "\u{1B}[J"
    }

    // MARK: - Screens

    private func header(_ title: String) -> [Line] {
        var text = " sluice top · \(title) · \(source)"
        if updatedAt > 0 { text += " · \(Self.clock(updatedAt))" }
        var lines = [Line(text: text, style: Style.title)]
        if let error { lines.append(Line(text: " ! \(error)", style: Style.alert)) }
        return lines
    }

    private func overview() -> [Line] {
        var lines = header("\(snapshots.count) partition\(snapshots.count == 1 ? "" : "s")")
        lines.append(Line(text: ""))
        var rows = [
            [
                "PARTITION", "WAITING", "IN FLIGHT", "LEASES", "BREAKERS open/half/closed", "CEILING / STATED",
                "SHARE", "PAUSED", "TREES", "WORKERS", "EVENTS",
            ]
        ]
        for snapshot in snapshots {
            let first = snapshot.reconciler.first?.resources.first
            rows.append([
                snapshot.partition + (snapshot.truncated ? " (partial)" : ""),
                String(snapshot.scopes.map(\.waiting).reduce(0, +)),
                String(snapshot.scopes.map(\.inFlight).reduce(0, +)),
                String(snapshot.scopes.map(\.leasesHeld).reduce(0, +)),
                Self.breakerCounts(snapshot.breakers),
                first.map { Self.ceiling($0) } ?? "-",
                first.map { Self.percent($0.share) } ?? "-",
                Self.pause(snapshot),
                String(snapshot.treesOpen), String(snapshot.workers), String(snapshot.streamLength),
            ])
        }
        let table = Self.table(rows, rightAligned: [1, 2, 3, 8, 9, 10])
        lines.append(Line(text: "   " + table[0], style: Style.heading))
        for (index, row) in table.dropFirst().enumerated() {
            let snapshot = snapshots[index]
            let style =
                index == selected
                ? Style.selected
                : snapshot.breakers.contains { $0.state == .open } || Self.isPaused(snapshot) ? Style.alert : ""
            lines.append(Line(text: (index == selected ? " > " : "   ") + row, style: style))
        }
        if snapshots.isEmpty {
            lines.append(Line(text: "   no Sluice keys found in this Redis yet", style: Style.dim))
        }
        if snapshots.indices.contains(selected) {
            let snapshot = snapshots[selected]
            lines.append(Line(text: ""))
            lines.append(Line(text: " RECENT EVENTS · \(snapshot.partition)", style: Style.heading))
            lines += events(snapshot, count: 10)
        }
        return lines
    }

    private func detail(_ snapshot: FleetSnapshot) -> [Line] {
        var lines = header(snapshot.partition + (snapshot.truncated ? " (partial: the read stopped at its bound)" : ""))
        lines.append(
            Line(
                text:
                    " workers \(snapshot.workers) · trees \(snapshot.treesOpen) · events \(snapshot.streamLength) · "
                    + "paused \(Self.pause(snapshot))"))

        lines.append(Line(text: ""))
        lines.append(Line(text: " SCOPES", style: Style.heading))
        var rows = [["SCOPE", "WAITING", "IN FLIGHT", "LEASES HELD", "LEASES GRANTED"]]
        for scope in snapshot.scopes {
            rows.append([
                scope.name, String(scope.waiting), String(scope.inFlight), String(scope.leasesHeld),
                String(scope.leasesGranted),
            ])
        }
        lines += Self.section(rows, rightAligned: [1, 2, 3, 4], empty: "no queue or lease pool")

        lines.append(Line(text: " BREAKERS", style: Style.heading))
        rows = [["BREAKER", "STATE", "CALLS", "FAILURES", "PROBES", "OPENED", "DETAIL"]]
        var styles: [String] = []
        for breaker in snapshot.breakers {
            var detail = ""
            if let until = breaker.openUntil {
                detail =
                    until > snapshot.now
                    ? "open for \(Self.seconds(until - snapshot.now)) more"
                    : "cool-down over: half-open on its next call"
            }
            rows.append([
                breaker.name, breaker.state.description, String(breaker.calls), String(breaker.failures),
                String(breaker.probes), String(breaker.timesOpened), detail,
            ])
            styles.append(breaker.state == .open ? Style.alert : breaker.state == .halfOpen ? Style.warn : "")
        }
        lines += Self.section(rows, rightAligned: [2, 3, 4, 5], empty: "no breaker state", styles: styles)

        lines.append(Line(text: " RECONCILER", style: Style.heading))
        rows = [["ROOT", "RESOURCE", "STATED", "WINDOW", "CEILING", "SHARE", "SAFETY", "CUTS", "PAUSED"]]
        for status in snapshot.reconciler {
            let paused = status.pausedUntil.map { $0 > status.now ? "\(Self.seconds($0 - status.now)) more" : "no" }
            for resource in status.resources {
                rows.append([
                    status.root.description, resource.name, resource.statedLimit.map(String.init) ?? "-",
                    Self.seconds(Int64(resource.window / .milliseconds(1))),
                    resource.ceiling.map { String(Int64($0.rounded(.down))) } ?? "-", Self.percent(resource.share),
                    String(resource.safetyFactor), String(status.cuts), paused ?? "no",
                ])
            }
        }
        lines += Self.section(rows, rightAligned: [2, 4, 5, 6, 7], empty: "no provider response recorded")

        let sampled = snapshot.treesRead < snapshot.treesOpen ? ", \(snapshot.treesRead) read" : ""
        lines.append(
            Line(text: " TREES SPENDING MOST (of \(snapshot.treesOpen) open\(sampled))", style: Style.heading))
        rows = [["TREE", "SPENT / BUDGET", "CALLS", "DEADLINE"]]
        for tree in snapshot.topTrees {
            let spent = tree.spent.keys.sorted().map { resource in
                let budget = tree.budgets[resource] ?? 0
                return "\(resource) \(tree.spent[resource] ?? 0)" + (budget > 0 ? "/\(budget)" : "")
            }
            rows.append([
                tree.id, spent.isEmpty ? "-" : spent.joined(separator: ", "), String(tree.callsInFlight),
                tree.deadline.map { $0 > snapshot.now ? "in \(Self.seconds($0 - snapshot.now))" : "passed" } ?? "-",
            ])
        }
        lines += Self.section(rows, rightAligned: [2], empty: "no tree")

        if !snapshot.shadow.isEmpty {
            lines.append(Line(text: " SHADOW WOULD-DENY", style: Style.heading))
            rows = [["SCOPE KIND", "RESOURCE", "LIMIT", "COUNT"]]
            for count in snapshot.shadow {
                rows.append([count.scopeKind, count.resource, count.limitKind, String(count.count)])
            }
            lines += Self.section(rows, rightAligned: [3], empty: "")
        }

        lines.append(Line(text: " RECENT EVENTS", style: Style.heading))
        lines += events(snapshot, count: 20)
        return lines
    }

    private func events(_ snapshot: FleetSnapshot, count: Int) -> [Line] {
        let recent = snapshot.recentEvents.suffix(count).reversed()
        guard !recent.isEmpty else { return [Line(text: "   no events", style: Style.dim)] }
        return recent.map { event in
            let fields = event.fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            let style =
                event.type.hasPrefix("breaker-open") || event.type == "pause" || event.type == "shed"
                ? Style.alert : ""
            return Line(text: "   \(Self.clock(event.milliseconds))  \(event.type)  \(fields)", style: style)
        }
    }

    // MARK: - Formatting

    static func section(
        _ rows: [[String]], rightAligned: Set<Int>, empty: String, styles: [String] = []
    ) -> [Line] {
        guard rows.count > 1 else {
            return empty.isEmpty ? [] : [Line(text: "   \(empty)", style: Style.dim), Line(text: "")]
        }
        let aligned = Self.table(rows, rightAligned: rightAligned)
        var lines = [Line(text: "   " + aligned[0], style: Style.dim)]
        for (index, row) in aligned.dropFirst().enumerated() {
            lines.append(Line(text: "   " + row, style: styles.indices.contains(index) ? styles[index] : ""))
        }
        lines.append(Line(text: ""))
        return lines
    }

    /// Rows as aligned columns (two spaces apart), each cell cut at 40 characters.
    static func table(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        let cells = rows.map { $0.map { $0.count > 40 ? String($0.prefix(39)) + "…" : $0 } }
        let count = cells.map(\.count).max() ?? 0
        let widths = (0..<count).map { column in cells.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return cells.map { row in
            row.indices.map { column in
                let pad = String(repeating: " ", count: widths[column] - row[column].count)
                return rightAligned.contains(column) ? pad + row[column] : row[column] + pad
            }.joined(separator: "  ")
        }
    }

    static func fit(_ text: String, _ columns: Int) -> String {
        text.count <= columns ? text : String(text.prefix(max(0, columns - 1))) + "…"
    }

    static func breakerCounts(_ breakers: [FleetSnapshot.Breaker]) -> String {
        guard !breakers.isEmpty else { return "-" }
        let open = breakers.filter { $0.state == .open }.count
        let half = breakers.filter { $0.state == .halfOpen }.count
        return "\(open)/\(half)/\(breakers.count - open - half)"
    }

    static func ceiling(_ resource: ReconcilerStatus.Resource) -> String {
        let ceiling = resource.ceiling.map { String(Int64($0.rounded(.down))) } ?? "-"
        return "\(resource.name) \(ceiling)/\(resource.statedLimit.map(String.init) ?? "-")"
    }

    static func isPaused(_ snapshot: FleetSnapshot) -> Bool {
        snapshot.reconciler.contains { ($0.pausedUntil ?? 0) > $0.now }
    }

    static func pause(_ snapshot: FleetSnapshot) -> String {
        let until = snapshot.reconciler.compactMap(\.pausedUntil).max() ?? 0
        return until > snapshot.now ? "yes, \(seconds(until - snapshot.now))" : "no"
    }

    static func percent(_ share: Double) -> String { "\(Int((share * 100).rounded()))%" }

    /// `850ms`, `12.5s`, `4m10s`
    static func seconds(_ ms: Int64) -> String {
        if ms < 1_000 { return "\(max(0, ms))ms" }
        if ms < 120_000 { return "\(Double(ms / 100) / 10)s" }
        return "\(ms / 60_000)m\(ms / 1_000 % 60)s"
    }

    /// `HH:MM:SS` in local time.
    static func clock(_ ms: Int64) -> String {
        var seconds = time_t(ms / 1_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
