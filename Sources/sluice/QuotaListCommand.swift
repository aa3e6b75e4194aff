import ArgumentParser
import Sluice

/// `sluice quota list`: every config field of every partition, flagging the invalid ones.
struct QuotaListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every quota set in Redis; invalid values (ignored by decisions) are marked INVALID.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print one JSON object per line instead of text.") var json = false

    func run() async throws {
        let client = try connection.makeClient()
        defer { client.close() }
        let fields = try await QuotaStore(client: client).list()
        if fields.isEmpty && !json { print("no quotas set") }
        for field in fields { print(json ? Self.json(field) : Self.text(field)) }
    }

    static func text(_ field: QuotaField) -> String {
        switch field.spec {
        case .success(let spec): return "\(field.key)  \(field.field)  \(spec)"
        case .failure(let error): return "\(field.key)  \(field.field)  \(field.value)  INVALID: \(error.message)"
        }
    }

    static func json(_ field: QuotaField) -> String {
        var fields: [(String, JSONLine.Value)] = [
            ("key", .string(field.key)), ("field", .string(field.field)), ("value", .string(field.value)),
        ]
        switch field.spec {
        case .success: fields += [("valid", .bool(true)), ("error", .null)]
        case .failure(let error): fields += [("valid", .bool(false)), ("error", .string(error.message))]
        }
        return JSONLine(fields).text
    }
}
