import Foundation
import InMemoryTracing
import Sluice
import SluiceRedis
import Testing
import Tracing

/// `Backpressure.call` records a span, `sluice.call`, a child of the caller's `ServiceContext`, with a child span per
/// stage; the provider call runs inside its attempt's span, so an instrumented HTTP client continues the trace.
/// Each test gives its layer an `InMemoryTracer` of its own (no process-wide bootstrap).
@Suite("Tracing: a span per call, a child span per stage")
struct TracingTests {
    private static func partition() -> String { "tracing-\(UUID().uuidString.prefix(8))" }

    private static func spans(_ tracer: InMemoryTracer, named name: String) -> [FinishedInMemorySpan] {
        tracer.finishedSpans.filter { $0.operationName == name }
    }

    @Test("Two round trips: admit, attempt, settle under sluice.call, under the caller's span; a refusal is recorded")
    func twoTrips() async throws {
        let partition = Self.partition()
        let client = try patientRedisClient()
        defer { client.close() }
        let limiter = try Limiter(
            client: client, configuration: .init(defaults: ["tenant": "tokens: budget 1000"]))
        let tracer = InMemoryTracer()
        let backpressure = Backpressure(
            redis: client, configuration: .init(partition: partition, health: patientHealth, heartbeat: nil),
            limiter: limiter,
            tracer: tracer)
        let call = ProviderCall(
            scope: "openai/gpt-4o", estimate: ["tokens": 600],
            quotaPath: try ScopePath(parsing: ["global=\(partition)", "tenant=tenant-zq91"]), concurrency: 2,
            timeout: .seconds(30), maxAttempts: 1)

        let root = tracer.startSpan("request")
        let seenInOperation = try await ServiceContext.withValue(root.context) {
            try await backpressure.call(call) { _ in
                // The operation runs with the attempt's span current.
                CallOutcome(ServiceContext.current?.inMemorySpanContext, usage: ["tokens": 600])
            }.value
        }
        // The second call is denied by the tenant's budget: its span records the refusal.
        await #expect(throws: BackpressureError.self) {
            try await ServiceContext.withValue(root.context) {
                _ = try await backpressure.call(call) { _ in CallOutcome(()) }
            }
        }
        root.end()

        let calls = Self.spans(tracer, named: "sluice.call")
        #expect(calls.count == 2)
        #expect(calls.allSatisfy { $0.parentSpanID == root.context.inMemorySpanContext?.spanID })
        let admitted = try #require(calls.first)
        #expect(admitted.attributes["sluice.partition"]?.toSpanAttribute() == .string(partition))
        #expect(admitted.attributes["sluice.attempts"]?.toSpanAttribute() == .int64(1))
        let denied = try #require(calls.last)
        #expect(denied.errors.count == 1 && denied.status?.code == .error)

        let admits = Self.spans(tracer, named: "sluice.admit")
        let attempts = Self.spans(tracer, named: "sluice.attempt")
        let settles = Self.spans(tracer, named: "sluice.settle")
        #expect(admits.count == 2 && attempts.count == 1 && settles.count == 1)
        #expect(admits.map(\.parentSpanID) == calls.map(\.spanID))
        #expect(attempts.first?.parentSpanID == admitted.spanID && settles.first?.parentSpanID == admitted.spanID)
        #expect(seenInOperation?.spanID == attempts.first?.spanID, "the operation did not run in its attempt's span")
        #expect(seenInOperation?.traceID == root.context.inMemorySpanContext?.traceID)
        // No span names the tenant: attributes carry bounded values only.
        for span in tracer.finishedSpans {
            #expect(!"\(span.attributes)".contains("tenant-zq91"), "\(span.operationName): \(span.attributes)")
        }
    }

    @Test("Stage by stage (no quota path): queue, lease, attempt, settle under sluice.call")
    func stageByStage() async throws {
        let client = try patientRedisClient()
        defer { client.close() }
        let tracer = InMemoryTracer()
        let backpressure = Backpressure(
            redis: client, configuration: .init(partition: Self.partition(), health: patientHealth, heartbeat: nil),
            tracer: tracer)
        let call = ProviderCall(scope: "m", concurrency: 1, timeout: .seconds(30), maxAttempts: 1)
        _ = try await backpressure.call(call) { _ in CallOutcome(()) }
        let span = try #require(Self.spans(tracer, named: "sluice.call").first)
        for stage in ["sluice.queue", "sluice.lease", "sluice.attempt", "sluice.settle"] {
            let stages = Self.spans(tracer, named: stage)
            #expect(stages.count == 1 && stages.first?.parentSpanID == span.spanID, "\(stage)")
        }
    }
}
