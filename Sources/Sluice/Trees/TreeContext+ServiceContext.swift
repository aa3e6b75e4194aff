import Tracing

extension ServiceContext {
    /// The request tree this work belongs to, carried wherever the application carries its `ServiceContext`:
    /// into child tasks, and to other processes by ``TreeContextPropagator``. ``TreeContext/run(isolation:_:)``
    /// sets it; ``TreeContext/current`` reads it.
    public var sluiceTree: TreeContext? {
        get { self[TreeContextKey.self] }
        set { self[TreeContextKey.self] = newValue }
    }
}

private enum TreeContextKey: ServiceContextKey {
    typealias Value = TreeContext
    static var nameOverride: String? { "sluice-tree" }
}

/// Carries ``ServiceContext/sluiceTree`` between processes in the `Sluice-Tree` header (``TreeContext/headerValue``),
/// for applications whose HTTP client and server middleware already propagate `ServiceContext` through the
/// bootstrapped instrument:
///
/// ```swift
/// InstrumentationSystem.bootstrap(MultiplexInstrument([tracer, TreeContextPropagator()]))
/// ```
///
/// The header names the sending node; the receiving agent starts its own node under it with
/// ``RequestTrees/spawn(from:nodeID:)`` or ``TreeContext/child(nodeID:)``. A malformed header is ignored
/// rather than joining the wrong tree.
public struct TreeContextPropagator: Instrument {
    public init() {}

    public func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let tree = context.sluiceTree else { return }
        injector.inject(tree.headerValue, forKey: TreeContext.headerName, into: &carrier)
    }

    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let value = extractor.extract(key: TreeContext.headerName, from: carrier),
            let tree = TreeContext(headerValue: value)
        else { return }
        context.sluiceTree = tree
    }
}
