// libFuzzer target: quota spec text (what operators write with `sluice quota set` and callers give as defaults).
//
// Beyond "does not crash": a spec that parses prints canonically, and its canonical text parses to the same spec
// (what the config hash stores is what the operator meant); each limit's numbers are computable.
import Sluice

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let rate = try? Rate(parsing: text) {
        _ = rate.milliseconds
        precondition((try? Rate(parsing: rate.description)) == rate, "rate \(rate) does not round-trip")
    }
    guard let spec = try? QuotaSpec(parsing: text) else { return 0 }
    let canonical = spec.description
    let again: QuotaSpec
    do {
        again = try QuotaSpec(parsing: canonical)
    } catch {
        preconditionFailure("canonical text \(canonical) of a valid spec is refused: \(error)")
    }
    precondition(again == spec, "\(canonical) parses to \(again.description)")
    precondition(again.description == canonical, "canonical text is not stable")
    for entry in spec.entries {
        precondition(spec.limits(for: entry.resource) == entry.limits)
        for limit in entry.limits {
            _ = limit.rate?.milliseconds
            _ = limit.ceiling?.milliseconds
        }
    }
    return 0
}
