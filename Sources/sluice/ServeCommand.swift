import ArgumentParser
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Sluice
import SluiceRedis

/// `sluice serve --metrics-port N`: the fleet's state in Redis as a Prometheus endpoint.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Export the fleet's state in Redis as Prometheus metrics (GET /metrics).",
        discussion: """
            Every scrape reads Redis: the queues, leases, breakers, the reconciler's ceiling and pause, shadow \
            counters, trees and events of each partition found (or of those named with --partition). The work \
            per scrape is bounded: at most --scan-calls SCANs of 1000 keys on each primary, then one pipeline per \
            partition.
              sluice serve --metrics-port 9464
              curl -s localhost:9464/metrics | grep '^sluice_'
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "The port to listen on (0: any free port, printed at start).") var metricsPort: Int
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(
        name: .customLong("partition"),
        help: "A partition to export (repeatable; default: every partition found with SCAN).")
    var partitions: [String] = []
    @Option(help: "The most SCAN calls (COUNT 1000) per scrape, on each primary.") var scanCalls = 100

    func validate() throws {
        guard (0...65_535).contains(metricsPort) else { throw ValidationError("--metrics-port is 0...65535") }
        guard scanCalls >= 1 else { throw ValidationError("--scan-calls is at least 1") }
        guard partitions.allSatisfy({ !$0.isEmpty }) else { throw ValidationError("a --partition is not empty") }
    }

    func run() async throws {
        let client = try connection.makeClient(poolSize: 1)
        defer { client.close() }
        let exporter = MetricsExporter(
            reader: FleetReader(redis: client, configuration: .init(scanCalls: scanCalls)),
            partitions: partitions.isEmpty ? nil : partitions)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let text = await exporter.scrape()
            var headers = HTTPFields()
            headers[.contentType] = PrometheusText.contentType
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/") { _, _ in "sluice serve: the fleet's state is at /metrics\n" }
        var logger = Logger(label: "sluice.serve")
        logger.logLevel = .warning
        let host = self.host
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: metricsPort), serverName: "sluice"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                FileHandle.standardOutput.write(
                    Data("sluice serve: listening on http://\(host):\(port)/metrics\n".utf8))
            },
            logger: logger)
        try await app.runService()
    }
}

/// One scrape at a time: concurrent scrapers share the read in progress, so Redis sees at most one.
actor MetricsExporter {
    let reader: FleetReader
    let partitions: [String]?
    private let events = EventCounter()
    private var running: Task<String, Never>?

    init(reader: FleetReader, partitions: [String]?) {
        self.reader = reader
        self.partitions = partitions
    }

    func scrape() async -> String {
        if let running { return await running.value }
        let task = Task { await self.read() }
        running = task
        let text = await task.value
        running = nil
        return text
    }

    private func read() async -> String {
        let started = ContinuousClock.now
        do {
            let snapshots = try await reader.snapshots(partitions)
            let counts = try await events.update(snapshots.map(\.partition), reader: reader)
            return FleetMetrics.render(
                snapshots, events: counts, scrapeSeconds: seconds(since: started), up: true)
        } catch {
            FileHandle.standardError.write(Data("sluice serve: reading Redis failed: \(error)\n".utf8))
            return FleetMetrics.render([], events: [:], scrapeSeconds: seconds(since: started), up: false)
        }
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}
