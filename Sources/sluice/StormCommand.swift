import ArgumentParser
import Foundation
import SluiceStorm

/// `sluice storm`: replays the failure stories of agent fleets against a mock provider, in each mode side by
/// side, and writes a report.
struct StormCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm",
        abstract: "Replay agent-fleet failure stories against a mock LLM provider, with and without Sluice.",
        discussion: """
            Starts a mock provider (OpenAI's or Anthropic's API) on loopback and, per scenario and mode, N worker \
            processes that share one Redis and run agent request trees against it. Without --redis and \
            $REDIS_URL, a throwaway redis-server is started and stopped. Built-in scenarios: \
            \(BuiltinScenarios.names.joined(separator: ", ")); --scenario also takes a JSON file \
            (see --print-scenario for the format). Modes: none, single-bucket, sluice.
            """
    )

    @Option(
        name: .customLong("redis"),
        help: "Redis URL shared by the workers (default: $REDIS_URL, else a throwaway redis-server).")
    var redis: String?

    @OptionGroup var tlsFiles: TLSFileOptions

    @Option(help: "Worker processes per run.")
    var workers = 4

    @Option(help: "Seconds per run (rescales each scenario's timeline; default: the scenario's own duration).")
    var duration: Double?

    @Option(
        help: ArgumentHelp(
            "Multiply every time of the scenarios, the provider's reset period included (1: a provider minute "
                + "in a second, as the built-ins are written; 60: real provider time).",
            valueName: "factor"))
    var timeScale = 1.0

    @Option(
        name: .customLong("scenario"),
        help: "A built-in scenario name or a scenario file; repeatable (default: all built-ins).")
    var scenarios: [String] = []

    @Option(name: .customLong("mode"), help: "none, single-bucket or sluice; repeatable (default: all three).")
    var modes: [String] = []

    @Option(name: .customLong("report"), help: "Directory for summary.json and report.html.")
    var reportDirectory = "reports/storm"

    @Option(help: "Print a built-in scenario's JSON and exit.")
    var printScenario: String?

    @Flag(help: "Print summary.json to standard output as well.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Worker i of each run serves its swift-metrics (the library's sluice_* metrics) for Prometheus on "
                + "127.0.0.1:(port + i)/metrics while it runs (default: none).",
            valueName: "port"))
    var workerMetricsPortBase: Int?

    func run() async throws {
        if let name = printScenario {
            guard let text = BuiltinScenarios.text(named: name) else {
                throw ValidationError(
                    "no built-in scenario \(name); try \(BuiltinScenarios.names.joined(separator: ", "))")
            }
            print(text)
            return
        }
        let loaded = try (scenarios.isEmpty ? BuiltinScenarios.names : scenarios).map(BuiltinScenarios.load)
        let chosenModes = try (modes.isEmpty ? StormMode.all.map(\.name) : modes).map { name in
            guard let mode = StormMode(name) else {
                throw ValidationError("unknown mode \(name): none, single-bucket, sluice")
            }
            return mode
        }
        if let duration, !(duration >= 2 && duration <= 3_600) {
            throw ValidationError("--duration must be 2...3600 s")
        }
        guard timeScale >= 0.25, timeScale <= 600 else {
            throw ValidationError("--time-scale must be 0.25...600")
        }
        if let base = workerMetricsPortBase, !(1...(65_535 - 64)).contains(base) {
            throw ValidationError("--worker-metrics-port-base must be 1...65471")
        }
        var redisURL = redis
        if redisURL == nil, let fromEnvironment = ProcessInfo.processInfo.environment["REDIS_URL"],
            !fromEnvironment.isEmpty
        {
            redisURL = fromEnvironment
        }
        redisURL = try withTLSFiles(redisURL)
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let options = StormOptions(
            redisURL: redisURL, workers: workers, duration: duration, timeScale: timeScale, scenarios: loaded,
            modes: chosenModes, workerExecutable: executable, workerMetricsPortBase: workerMetricsPortBase)
        ChildProcesses.shared.installSignalHandlers()
        let interactive = isatty(STDERR_FILENO) == 1
        let runner = StormRunner(options: options) { line, transient in
            if interactive {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (transient ? "" : "\n")).utf8))
            } else if !transient {
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        }
        let report: StormReport
        do {
            report = try await runner.run()
        } catch {
            ChildProcesses.shared.stopAll()
            throw error
        }
        try report.write(to: reportDirectory)
        print(report.table)
        print("report: \(reportDirectory)/report.html, \(reportDirectory)/summary.json")
        if json { print(try report.summaryJSON, terminator: "") }
        let failures = report.metrics.flatMap(\.workerFailures)
        if !failures.isEmpty {
            throw ValidationError("\(failures.count) worker(s) failed:\n" + failures.joined(separator: "\n"))
        }
    }

    /// The URL the workers get: the TLS files of the options in its query (redis-server's option names), which
    /// every worker process reads back with the URL.
    private func withTLSFiles(_ url: String?) throws -> String? {
        let files = tlsFiles.named
        if files.isEmpty { return url }
        guard let url, url.hasPrefix("rediss://") || url.hasPrefix("rediss-sentinel://") else {
            throw tlsFiles.needsTLS
        }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=#+")
        let query = files.map { name, file in
            name + "=" + (file.addingPercentEncoding(withAllowedCharacters: allowed) ?? file)
        }
        // Only a Sentinel URL has a fragment (its primary's name); elsewhere a '#' belongs to the URL (a password).
        let sentinel = url.hasPrefix("rediss-sentinel://")
        let fragment = sentinel ? url.firstIndex(of: "#").map { String(url[$0...]) } ?? "" : ""
        let base = String(url.dropLast(fragment.count))
        return base + (base.contains("?") ? "&" : "?") + query.joined(separator: "&") + fragment
    }
}
