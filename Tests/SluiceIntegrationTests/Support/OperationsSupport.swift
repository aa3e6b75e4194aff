import Foundation
import SluiceRedis
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A plain HTTP/1.1 GET over a loopback socket, for scraping `sluice serve`.
enum HTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    /// GETs `path`; while `waiting` lasts, a refused connection is tried again (the server is starting).
    static func get(port: Int, path: String, waiting: Duration = .zero) async throws -> Response {
        let end = ContinuousClock.now + waiting
        while true {
            if let response = try once(port: port, path: path) { return response }
            guard ContinuousClock.now < end else { throw RedisError(.connect, "nothing answers on port \(port)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// nil when the connection is refused.
    private static func once(port: Int, path: String) throws -> Response? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisError(.io, "socket failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
        else { throw RedisError(.io, "sending the request failed") }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            data += buffer[0..<count]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw RedisError(.protocolError, "no HTTP response") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        var body = String(text[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ text: String) -> String {
        var bytes = Array(text.utf8)[...]
        var out: [UInt8] = []
        while let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\r")) {
            let size = Int(String(decoding: bytes[bytes.startIndex..<lineEnd], as: UTF8.self), radix: 16) ?? 0
            let start = lineEnd + 2
            guard size > 0, start + size <= bytes.endIndex else { break }
            out += bytes[start..<(start + size)]
            bytes = bytes[(start + size + 2)...]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A strict reader of the Prometheus text format 0.0.4: every line is a `# HELP`, a `# TYPE` or a sample
/// of the family typed last; anything else is an error.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(parsing text: String) throws {
        var family = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["gauge", "counter", "histogram", "summary", "untyped"].contains(parts[3]),
                    types[String(parts[2])] == nil
                else { throw Malformed(line: String(line)) }
                family = String(parts[2])
                types[family] = String(parts[3])
                continue
            }
            let sample = try Self.sample(String(line))
            guard sample.name == family || sample.name.hasPrefix(family + "_") else {
                throw Malformed(line: String(line))
            }
            samples.append(sample)
        }
    }

    struct Malformed: Error, CustomStringConvertible {
        let line: String
        var description: String { "not Prometheus text format: \(line)" }
    }

    static func sample(_ line: String) throws -> Sample {
        var characters = Array(line)[...]
        var name = ""
        while let c = characters.first, c.isLetter || c.isNumber || c == "_" || c == ":" {
            name.append(c)
            characters.removeFirst()
        }
        guard !name.isEmpty, !(name.first?.isNumber ?? true) else { throw Malformed(line: line) }
        var labels: [String: String] = [:]
        if characters.first == "{" {
            characters.removeFirst()
            while characters.first != "}" {
                var label = ""
                while let c = characters.first, c != "=" {
                    label.append(c)
                    characters.removeFirst()
                }
                guard characters.popFirst() == "=", characters.popFirst() == "\"", !label.isEmpty else {
                    throw Malformed(line: line)
                }
                var value = ""
                while let c = characters.popFirst(), c != "\"" {
                    if c == "\\" {
                        switch characters.popFirst() {
                        case "n": value.append("\n")
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        default: throw Malformed(line: line)
                        }
                    } else {
                        value.append(c)
                    }
                }
                labels[label] = value
                if characters.first == "," { characters.removeFirst() }
                guard !characters.isEmpty else { throw Malformed(line: line) }
            }
            characters.removeFirst()
        }
        guard characters.popFirst() == " " else { throw Malformed(line: line) }
        let rest = String(characters).split(separator: " ")
        guard (1...2).contains(rest.count) else { throw Malformed(line: line) }
        let value: Double
        switch rest[0] {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let number = Double(rest[0]) else { throw Malformed(line: line) }
            value = number
        }
        return Sample(name: name, labels: labels, value: value)
    }

    /// The `sluice_` families with a sample labelled `partition="<partition>"`.
    func families(labelled partition: String) -> Set<String> {
        Set(samples.filter { $0.name.hasPrefix("sluice_") && $0.labels["partition"] == partition }.map(\.name))
    }

    /// The value of the one sample of `name` whose labels are exactly `labels`.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        let matching = samples.filter { $0.name == name && $0.labels == labels }
        return matching.count == 1 ? matching[0].value : nil
    }
}

/// A tmux server of the test's own (its own socket), running one session 160 x 50.
///
/// tmux runs through `posix_spawn` with a clean signal mask (``ChildProcess``), not Foundation's `Process`:
/// the test runner blocks signals that a child would inherit, and a tmux server (and the `sluice top` in it)
/// that inherits a blocked SIGTERM or SIGHUP cannot be stopped.
final class Tmux: Sendable {
    let socket = "sluice-test-\(UUID().uuidString.prefix(8))"
    let binary: String
    let statusFile = FileManager.default.temporaryDirectory.appendingPathComponent(
        "sluice-tmux-status-\(UUID().uuidString)"
    ).path

    init() throws {
        binary = try RedisServer.which("tmux").path
    }

    /// Starts `command` in a detached session that stays after the command exits; a shell around it
    /// writes its exit status to ``statusFile``.
    func start(_ command: String) async throws {
        let shell =
            "\(command); echo $? >\(Self.quote(statusFile)).part && mv \(Self.quote(statusFile)).part \(Self.quote(statusFile))"
        try await run(["new-session", "-d", "-s", "top", "-x", "160", "-y", "50", shell])
        try await run(["set-option", "-t", "top", "remain-on-exit", "on"])
    }

    func send(_ key: String) async throws {
        try await run(["send-keys", "-t", "top", key])
    }

    func capture(escapes: Bool = false) async throws -> String {
        try await run(["capture-pane", "-p"] + (escapes ? ["-e"] : []) + ["-t", "top"])
    }

    /// Captures the pane until `predicate` holds (at most 30 s); returns that screen.
    func waitFor(_ predicate: (String) -> Bool) async throws -> String {
        let end = ContinuousClock.now + .seconds(30)
        var screen = ""
        while ContinuousClock.now < end {
            screen = try await capture()
            if predicate(screen) { return screen }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the screen never matched; last screen:\n\(screen)")
        throw RedisError(.timeout, "tmux screen did not match")
    }

    /// Waits until the command has exited; returns its exit status (128 + the signal that ended it).
    ///
    /// The status comes from the shell that runs the command, not from tmux: tmux 3.3 marks a pane dead
    /// when its terminal closes and sometimes never reaps the process, so its `pane_dead_status` can stay empty.
    func waitForExit() async throws -> Int {
        let end = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < end {
            let text = (try? String(contentsOfFile: statusFile, encoding: .utf8)) ?? ""
            if text.hasSuffix("\n"), let status = Int(text.dropLast()) { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RedisError(.timeout, "the command in tmux did not exit")
    }

    /// Stops this test's tmux server (only this socket's) and the command in it.
    func kill() async {
        _ = try? await run(["kill-server"])
        try? FileManager.default.removeItem(atPath: statusFile)
    }

    /// Runs one tmux command through `sh`, its output in a file (the server `new-session` forks keeps the
    /// client's standard output open: a pipe would never reach its end).
    @discardableResult
    private func run(_ arguments: [String]) async throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tmux-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let words = ([binary, "-L", socket, "-f", "/dev/null"] + arguments).map(Self.quote)
        let command = words.joined(separator: " ") + " >\(Self.quote(file.path)) 2>&1 </dev/null"
        let pid = try ChildProcess.spawn("/bin/sh", ["sh", "-c", command])
        let status = await WorkerProcess(pid: pid, out: "/dev/null/none").exitStatus()
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw RedisError(.io, "tmux \(arguments.joined(separator: " ")) failed (\(status)): \(text)")
        }
        return text
    }

    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
