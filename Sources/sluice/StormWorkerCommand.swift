import ArgumentParser
import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus
import SluiceStorm

/// `sluice storm-worker`: one worker process of a storm, started by `sluice storm` (hidden).
struct StormWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm-worker",
        abstract: "Run one storm worker (started by `sluice storm`).",
        shouldDisplay: false
    )

    @Option(help: "The worker's assignment, a JSON file written by `sluice storm`.")
    var assignment: String

    func run() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: assignment))
        let decoded = try JSONDecoder().decode(WorkerAssignment.self, from: data)
        guard let port = decoded.metricsPort else {
            try await StormWorker.run(decoded)
            return
        }
        // `sluice storm --worker-metrics-port-base`: this process's swift-metrics go to a Prometheus registry
        // (bootstrapped before the worker makes its Redis client and its Backpressure, which take the factory as
        // they are made), served on loopback while the worker runs.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let server = Self.metricsServer(registry, port: port)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await server.runService()
                } catch {
                    // The storm goes on without this worker's metrics; the worker's log says why.
                    FileHandle.standardError.write(Data("storm-worker: metrics on port \(port): \(error)\n".utf8))
                }
            }
            try await StormWorker.run(decoded)
            group.cancelAll()
        }
    }

    private static func metricsServer(_ registry: PrometheusCollectorRegistry, port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var text: [UInt8] = []
            registry.emit(into: &text)
            var headers = HTTPFields()
            headers[.contentType] = PrometheusText.contentType
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        var logger = Logger(label: "sluice.storm-worker")
        logger.logLevel = .warning
        return Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: port), serverName: "sluice-storm-worker"),
            logger: logger)
    }
}
