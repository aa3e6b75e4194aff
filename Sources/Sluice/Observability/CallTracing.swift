import Tracing

extension Backpressure {
    /// The tracer of this layer's spans: the one given to `init`, else the bootstrapped `InstrumentationSystem.tracer`
    /// (read at each call, so that a bootstrap after `init` still counts).
    var activeTracer: any Tracer { tracer ?? InstrumentationSystem.tracer }

    /// Runs `body` in a span named `name`: a child of the current `ServiceContext`'s span, whose own context is the
    /// current one inside `body`. A thrown error is recorded on the span.
    func traced<T>(
        _ name: String, _ body: (any Span) async throws -> T
    ) async throws -> T {
        let span = Self.startSpan(activeTracer, name)
        defer { span.end() }
        do {
            return try await ServiceContext.withValue(span.context) { try await body(span) }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private static func startSpan<T: Tracer>(_ tracer: T, _ name: String) -> any Span {
        tracer.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .internal)
    }
}
