// libFuzzer target: a pasted header block (as `sluice observe` reads it) through the provider-header parser.
//
// Beyond "does not crash", it checks what ObservationParser documents: no negative count or duration survives,
// header names match whatever their case, the same fields given as (name, value) pairs (as AsyncHTTPClient has
// them) read the same, and the numbers Reconciler.record sends to Redis are computable.
import Foundation

@testable import Sluice

/// A fixed arrival time, so that a run is reproducible (absolute resets are measured from it).
let now = Date(timeIntervalSince1970: 1_747_822_530)
let parsers = [
    ObservationParser(),
    ObservationParser(
        configuration: .init(families: HeaderFamily.all.reversed(), maximumRetryableWait: .milliseconds(1))),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let block = HeaderBlock(parsing: text)
    // Statuses outside HTTP's range too: the parser takes any Int.
    let status = block.status ?? (size > 0 ? Int(Int8(bitPattern: data[0])) * 7 : 429)
    let shouted = HeaderBlock(parsing: uppercasingNames(text))
    precondition(shouted.status == block.status, "uppercasing names changed the status")
    let pairs = block.headers.map { (name: $0.name.rawName, value: $0.value) }

    for parser in parsers {
        let observation = parser.observe(status: status, headers: block.headers, now: now)
        check(observation)
        precondition(
            parser.observe(status: status, headers: shouted.headers, now: now) == observation,
            "header names must match whatever their case")
        precondition(
            parser.observe(status: status, headers: pairs, now: now) == observation,
            "(name, value) pairs must read as the HTTPFields they come from")
    }
    return 0
}

func check(_ observation: ProviderObservation) {
    if let retryAfter = observation.retryAfter {
        precondition(retryAfter >= .zero, "negative retry-after \(retryAfter)")
        _ = retryAfter.milliseconds  // Reconciler.record's argument
    }
    for (resource, values) in observation.resources {
        precondition((values.limit ?? 0) >= 0, "\(resource.name): negative limit")
        precondition((values.remaining ?? 0) >= 0, "\(resource.name): negative remaining")
        if let reset = values.resetAfter {
            precondition(reset >= .zero, "\(resource.name): negative reset \(reset)")
            _ = reset.milliseconds  // Reconciler.record's argument
        }
    }
    _ = observation.json
}

/// `text` with the ASCII letters of every header name uppercased: the part before the first `:` of each line that
/// is not a status line (`HTTP/…`, `:status:`) or a continuation.
func uppercasingNames(_ text: String) -> String {
    var out = ""
    var line: [Character] = []
    func flush() {
        let isHeader =
            line.first != " " && line.first != "\t" && line.first != ":"
            && !String(line).uppercased().hasPrefix("HTTP/")
        var inName = isHeader
        for character in line {
            if character == ":" { inName = false }
            out.append(
                inName && character.isASCII && character.isLetter ? Character(character.uppercased()) : character)
        }
        line = []
    }
    for character in text {
        if character.isNewline {
            flush()
            out.append(character)
        } else {
            line.append(character)
        }
    }
    flush()
    return out
}
