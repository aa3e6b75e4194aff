#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The commands' `--json` output: an `Encodable` value as one line of JSON, written by `JSONEncoder` with its keys
/// sorted. The key names are an interface (scripts, benchmarks and tests read them): each command spells them out in
/// its `CodingKeys`.
enum JSONOutput {
    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// A value that is written as `null` when absent, where a plain optional would leave its key out: the commands'
/// objects keep every key, null where a figure does not apply.
struct OrNull<Wrapped: Encodable>: Encodable {
    var value: Wrapped?

    init(_ value: Wrapped?) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
}

/// A measured figure (a rate, a latency, a ratio), rounded to three decimals. Not finite (a rate over no time) or
/// absent, it is written as `null`: `JSONEncoder` refuses non-finite numbers.
struct Figure: Encodable {
    var value: Double?

    init(_ value: Double?) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        guard let value, value.isFinite else { return try container.encodeNil() }
        let rounded = (value * 1000).rounded() / 1000
        try container.encode(rounded.isFinite ? rounded : value)
    }
}
