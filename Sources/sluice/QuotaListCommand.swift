import ArgumentParser
import Sluice

/// `sluice quota list`: every config field of every partition, flagging the invalid ones.
struct QuotaListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every quota set in Redis; invalid values (ignored by decisions) are marked INVALID.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: KeyNamespaceOptions
    @Flag(help: "Print one JSON object per line instead of text.") var json = false

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let fields = try await QuotaStore(client: client, namespace: keys.namespace).list()
        if fields.isEmpty && !json { print("no quotas set") }
        for field in fields { print(json ? try Self.json(field) : Self.text(field)) }
    }

    static func text(_ field: QuotaField) -> String {
        switch field.spec {
        case .success(let spec): return "\(field.key)  \(field.field)  \(spec)"
        case .failure(let error): return "\(field.key)  \(field.field)  \(field.value)  INVALID: \(error.message)"
        }
    }

    static func json(_ field: QuotaField) throws -> String {
        let error: String?
        switch field.spec {
        case .success: error = nil
        case .failure(let failure): error = failure.message
        }
        return try JSONOutput.line(
            FieldJSON(key: field.key, field: field.field, value: field.value, valid: error == nil, error: OrNull(error))
        )
    }

    /// One config field: `{"key", "field", "value", "valid", "error"}`, the error null when valid.
    struct FieldJSON: Encodable {
        var key: String
        var field: String
        var value: String
        var valid: Bool
        var error: OrNull<String>
    }
}
