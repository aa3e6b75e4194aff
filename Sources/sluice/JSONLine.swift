/// A flat JSON object with its keys in a fixed order, for the commands' `--json` output.
struct JSONLine {
    enum Value {
        case string(String)
        case int(Int)
        case number(Double)
        case bool(Bool)
        case null
        case raw(String)
    }

    var fields: [(String, Value)]

    init(_ fields: [(String, Value)]) { self.fields = fields }

    var text: String {
        "{" + fields.map { "\(Self.quoted($0.0)): \(Self.render($0.1))" }.joined(separator: ", ") + "}"
    }

    static func render(_ value: Value) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .int(let number): return String(number)
        case .number(let number):
            guard number.isFinite else { return "null" }
            return number == number.rounded() && abs(number) < 1e15
                ? String(Int(number)) : String((number * 1000).rounded() / 1000)
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        case .raw(let json): return json
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count)
                    + String(c.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
