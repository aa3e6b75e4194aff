/// A failure of the storm itself (not of the system under test): a provider that cannot listen, a worker that
/// cannot start, a report that cannot be written.
public struct StormError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
