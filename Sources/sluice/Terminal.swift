import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The controlling terminal in raw mode on the alternate screen, for `sluice top`: keys arrive one by
/// one without echo, and ``restore()`` (also on SIGTERM, SIGHUP and SIGINT) puts the terminal back.
final class Terminal: @unchecked Sendable {
    /// A key `sluice top` understands.
    enum Key: Sendable, Equatable {
        case up, down, enter, escape, quit
        case character(Character)
    }

    // Written once in init, read by restore(); restore runs on the main task or in a signal source.
    private var original = termios()
    private let restored = NSLock()
    private var isRestored = false
    private var signalSources: [DispatchSourceSignal] = []

    init() throws {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            throw TerminalError("sluice top needs a terminal (use `sluice status` or `sluice serve` in scripts)")
        }
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { throw TerminalError("cannot read the terminal's mode") }
        var raw = original
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0 else {
            throw TerminalError("cannot put the terminal in raw mode")
        }
        write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
        for number in [SIGTERM, SIGHUP, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                restore()
                exit(128 + number)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// Leaves the alternate screen, shows the cursor and restores the terminal's mode (once).
    func restore() {
        restored.lock()
        defer { restored.unlock() }
        guard !isRestored else { return }
        isRestored = true
        write("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l")
        _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
    }

    /// The terminal's size (columns, rows); 120 x 40 when it does not say.
    var size: (columns: Int, rows: Int) {
        var window = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0, window.ws_row > 0 {
            return (Int(window.ws_col), Int(window.ws_row))
        }
        return (120, 40)
    }

    func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { writeOut($0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Keys as they are typed, read by a thread of their own (a blocking read must not hold a task's thread).
    func keys() -> AsyncStream<Key> {
        let (stream, continuation) = AsyncStream<Key>.makeStream()
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 64)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                for key in Self.parse(Array(buffer[0..<count])) { continuation.yield(key) }
            }
            continuation.finish()
        }
        thread.start()
        return stream
    }

    /// The keys in one read: arrows arrive as `ESC [ A` (or `ESC O A`) in one piece, a lone ESC is Escape.
    static func parse(_ bytes: [UInt8]) -> [Key] {
        var keys: [Key] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case 0x1B:
                if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "[") || bytes[index] == UInt8(ascii: "O") {
                    let final = bytes[index + 1]
                    index += 2
                    if final == UInt8(ascii: "A") { keys.append(.up) }
                    if final == UInt8(ascii: "B") { keys.append(.down) }
                } else {
                    keys.append(.escape)
                }
            case 0x03, UInt8(ascii: "q"), UInt8(ascii: "Q"): keys.append(.quit)
            case 0x0D, 0x0A: keys.append(.enter)
            case UInt8(ascii: "j"): keys.append(.down)
            case UInt8(ascii: "k"): keys.append(.up)
            case 0x7F, 0x08: keys.append(.escape)
            default: keys.append(.character(Character(Unicode.Scalar(byte))))
            }
        }
        return keys
    }
}

/// `write(2)` to standard output (``Terminal/write(_:)`` hides the C function's name).
private func writeOut(_ pointer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(STDOUT_FILENO, pointer, count)
}

struct TerminalError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
