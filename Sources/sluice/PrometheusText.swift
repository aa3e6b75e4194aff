/// The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per family, then its
/// samples, label values escaped (`\\`, `\"`, `\n`).
struct PrometheusText {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    enum Kind: String {
        case gauge, counter
    }

    private var lines: [String] = []
    private var written: Set<String> = []
    private var current = ""

    /// Starts a family (a name is written once; a second call with it only selects it again).
    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        current = name
        guard written.insert(name).inserted else { return }
        lines.append("# HELP \(name) \(Self.escapeHelp(help))")
        lines.append("# TYPE \(name) \(kind.rawValue)")
    }

    /// A sample of the current family.
    mutating func sample(_ labels: [(String, String)], _ value: Double) {
        let rendered = labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",")
        lines.append(current + (rendered.isEmpty ? "" : "{\(rendered)}") + " " + Self.format(value))
    }

    var text: String { lines.joined(separator: "\n") + "\n" }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func escapeHelp(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self { if character == target { out += replacement } else { out.append(character) } }
        return out
    }
}
