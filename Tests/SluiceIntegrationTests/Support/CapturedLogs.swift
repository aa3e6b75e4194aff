import Logging
import SluiceRedis

/// A log backend for tests: every line a `Logger` made from ``logger(label:)`` emits, with its metadata (the
/// logger's and the line's), kept in memory to be asserted on.
final class CapturedLogs: Sendable {
    struct Record: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata

        /// The whole line as a log backend would print it: message and every metadata value.
        var description: String {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(level) \(message) \(fields)"
        }
    }

    private let records = SluiceMutex<[Record]>([])

    /// Every line so far.
    var all: [Record] { records.withLock { $0 } }

    /// The lines whose message contains `text`.
    func lines(containing text: String) -> [Record] { all.filter { $0.message.contains(text) } }

    /// A logger whose lines (at `level` and above) land here.
    func logger(label: String, level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(sink: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ record: Record) { records.withLock { $0.append(record) } }

    private struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}
