import ArgumentParser
import Sluice

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sluice observe`: what Sluice's reconciler reads from one provider response.
struct ObserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Print what the reconciler reads from a provider response's headers.",
        discussion: """
            FILE holds a raw header block, one 'Name: value' per line, as 'curl -i' or 'curl -D -' prints it. \
            A leading status line such as 'HTTP/1.1 429 Too Many Requests' gives the status unless --status \
            does; without either, the response counts as 200. A blank line ends the headers.

            Reads OpenAI and Azure OpenAI (x-ratelimit-*-requests/-tokens, retry-after-ms, x-ms-retry-after-ms), \
            Anthropic (anthropic-ratelimit-*), the IETF RateLimit and RateLimit-Policy fields (and the older \
            RateLimit-Limit/-Remaining/-Reset), GitHub-style X-RateLimit-* epochs, and Retry-After. Header names \
            match in any case; malformed values show as unknown. Absolute times count from the block's Date \
            header when it has one, else from this machine's clock.

            Classes: ok; quota (429: wait, then retry); overload (5xx, 529, 408: back off); do_not_retry (other \
            4xx, or a 429 asking to wait more than an hour).
            """
    )

    @Option(
        name: .customLong("headers"),
        help: ArgumentHelp("The header block to read; '-' reads standard input.", valueName: "file")
    )
    var headersPath: String

    @Option(help: ArgumentHelp("The response's HTTP status (default: the block's status line, else 200)."))
    var status: Int?

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(
        name: .customLong("apply"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Merge the observation into the reconciler's state of this path's partition (its root scope).",
            valueName: "scope"))
    var applyScopes: [String] = []

    @Option(
        help: ArgumentHelp(
            "With --apply: when the request was sent, ms since 1970 in Redis' clock (default: now, so a 429 cuts).",
            valueName: "ms"))
    var sentAt: Int64?

    @OptionGroup var reconciler: ReconcilerOptions
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if let status, !(100...599).contains(status) {
            throw ValidationError("--status must be an HTTP status between 100 and 599, not \(status)")
        }
        if !applyScopes.isEmpty {
            do {
                _ = try ScopePath(parsing: applyScopes)
            } catch {
                throw ValidationError(error.message)
            }
            _ = try reconciler.configuration()
        }
        if let sentAt, sentAt <= 0 { throw ValidationError("--sent-at is ms since 1970") }
    }

    func run() async throws {
        let block = HeaderBlock(parsing: try readHeaderBlock())
        for line in block.ignoredLines {
            printWarning("line \(line) is not a 'Name: value' header; ignored")
        }
        let observation = ObservationParser().observe(
            status: status ?? block.status ?? 200, headers: block.headers, now: Date()
        )
        print(json ? observation.json : Self.table(observation))
        guard !applyScopes.isEmpty else { return }
        let limiter = try Limiter(client: try connection.makeClient(poolSize: 1))
        defer { limiter.client.close() }
        let reconciler = try Reconciler(limiter: limiter, configuration: try reconciler.configuration())
        let path = try ScopePath(parsing: applyScopes)
        let outcome = try await reconciler.record(observation, path: path, sentAt: sentAt)
        let pause = outcome.pausedUntil.map { "paused for \($0 - outcome.mergedAt) ms" } ?? "not paused"
        let line =
            "applied to \(path.root): \(pause)\(outcome.startedPause ? " (a new pause)" : "")"
            + (outcome.cut ? ", ceiling cut" : "")
        if json {
            printWarning(line)
        } else {
            print("\n" + line)
        }
    }

    private func readHeaderBlock() throws -> String {
        if headersPath == "-" {
            var text = ""
            while let line = readLine(strippingNewline: false) { text += line }
            return text
        }
        guard let data = FileManager.default.contents(atPath: headersPath) else {
            throw ObserveError(description: "cannot read the header block at '\(headersPath)'")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The observation as aligned text:
    ///
    ///     status       429
    ///     class        quota
    ///     retry after  1.5s
    ///
    ///     resource      limit  remaining  resets in
    ///     requests         60          0  1s
    static func table(_ observation: ProviderObservation) -> String {
        var lines = [
            "status       \(observation.status.map(String.init) ?? "none (no response)")",
            "class        \(observation.responseClass.name)",
            "retry after  \(observation.retryAfter.map(readable) ?? "-")",
            "",
        ]
        guard !observation.resources.isEmpty else {
            lines.append("no rate-limit headers found")
            return lines.joined(separator: "\n")
        }
        var rows = [["resource", "limit", "remaining", "resets in"]]
        for resource in observation.resources.keys.sorted() {
            let values = observation.resources[resource] ?? ResourceObservation()
            rows.append([
                resource.name, values.limit.map(String.init) ?? "-", values.remaining.map(String.init) ?? "-",
                values.resetAfter.map(readable) ?? "-",
            ])
        }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let resource = row[0] + String(repeating: " ", count: widths[0] - row[0].count)
            let numbers = (1...2).map { String(repeating: " ", count: widths[$0] - row[$0].count) + row[$0] }
            lines.append("\(resource)  \(numbers[0])  \(numbers[1])  \(row[3])")
        }
        return lines.joined(separator: "\n")
    }

    /// A duration as Go and OpenAI write them, to the millisecond (rounded up): `12ms`, `1.5s`, `2m59.56s`,
    /// `23h47m36.648s`.
    static func readable(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var milliseconds = seconds * 1_000 + attoseconds / 1_000_000_000_000_000
        if attoseconds % 1_000_000_000_000_000 > 0 { milliseconds += 1 }
        if milliseconds < 1_000 { return "\(milliseconds)ms" }
        var text = ""
        let hours = milliseconds / 3_600_000
        let minutes = milliseconds / 60_000 % 60
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        let wholeSeconds = milliseconds / 1_000 % 60
        let fraction = milliseconds % 1_000
        text += "\(wholeSeconds)"
        if fraction > 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 3 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "s"
    }

    private func printWarning(_ message: String) {
        let text = "warning: \(message)\n"
        _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }
}

private struct ObserveError: Error, CustomStringConvertible {
    var description: String
}
