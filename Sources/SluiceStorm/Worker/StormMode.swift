/// How the fleet guards the provider.
public struct StormMode: Codable, Sendable, Hashable, CustomStringConvertible {
    public let name: String

    public init?(_ name: String) {
        guard Self.all.map(\.name).contains(name) else { return nil }
        self.name = name
    }

    private init(unchecked name: String) { self.name = name }

    /// Workers call the provider directly and retry naively (fixed short delay, retry-after ignored).
    public static let none = StormMode(unchecked: "none")
    /// One fleet-wide token bucket in Redis in front of the provider, sized at its stated limit; retries honour
    /// retry-after with exponential backoff. The common setup.
    public static let singleBucket = StormMode(unchecked: "single-bucket")
    /// The Sluice library: hierarchical quotas, scheduled admission, reserve/settle, and what else is available.
    public static let sluice = StormMode(unchecked: "sluice")

    public static let all: [StormMode] = [.none, .singleBucket, .sluice]

    public var description: String { name }

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let mode = StormMode(name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "mode \(name)"))
        }
        self = mode
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}
