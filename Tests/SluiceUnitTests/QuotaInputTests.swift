import Testing

@testable import Sluice

@Suite("Quota inputs are validated before any I/O")
struct QuotaInputTests {
    @Test(
        "Scopes: KIND=NAME with an identifier kind and a non-empty name",
        arguments: [
            "tenant", "=acme", "tenant=", "1tenant=acme", "ten ant=acme", "tenänt=x",
            String(repeating: "k", count: 33) + "=x",
        ])
    func invalidScopes(text: String) {
        #expect(throws: QuotaError.self) { try Scope(parsing: text) }
        do { _ = try Scope(parsing: text) } catch { #expect(error.code == .invalidScope) }
    }

    @Test("A name may hold anything, = included")
    func namesMayHoldAnything() throws {
        let scope = try Scope(parsing: "tree=a=b {c}")
        #expect(scope.kind == "tree" && scope.name == "a=b {c}")
    }

    @Test("Paths: not empty, not deeper than 8")
    func paths() throws {
        #expect(throws: QuotaError.self) { try ScopePath([Scope]()) }
        do { _ = try ScopePath([Scope]()) } catch { #expect(error.code == .emptyPath) }
        let deep = try (0..<9).map { try Scope("k\($0)", "n") }
        do { _ = try ScopePath(deep) } catch { #expect(error.code == .pathTooDeep) }
        #expect(try ScopePath("global=a", "tenant=b c", "tree=d").scopes[1].name == "b c")
    }

    @Test("Costs: integers from 0 to 2^50 for identifier resources, at least one")
    func costs() throws {
        func code(_ cost: Cost) -> QuotaError.Code? {
            do { _ = try cost.validated() } catch { return error.code }
            return nil
        }
        #expect(code([:]) == .emptyCost)
        #expect(code(["tokens": -1]) == .invalidCost)
        #expect(code(["tokens": Cost.maximumAmount + 1]) == .invalidCost)
        #expect(code(["to kens": 1]) == .invalidResource)
        #expect(code(["": 1]) == .invalidResource)
        #expect(code(["tokens": 0, "requests": 1]) == nil)
        #expect(try Cost(parsing: ["requests=1", "tokens=20"]).amounts == ["requests": 1, "tokens": 20])
        for bad in ["tokens=1.5", "tokens", "tokens=", "tokens=1e3", "tokens=-2", "=3"] {
            #expect(throws: QuotaError.self) { try Cost(parsing: [bad]) }
        }
        #expect(throws: QuotaError.self) { try Cost.amount(2.5) }
        #expect(throws: QuotaError.self) { try Cost.amount(.nan) }
        #expect(try Cost.amount(42) == 42)
    }

    @Test("Limiter defaults that do not parse are refused at once")
    func defaults() throws {
        #expect(throws: QuotaError.self) {
            try Limiter.Configuration(defaults: ["tenant": "tokens: bucket"]).validate()
        }
        #expect(throws: QuotaError.self) { try Limiter.Configuration(defaults: ["ten ant": "tokens: none"]).validate() }
        try Limiter.Configuration(defaults: ["tenant": "tokens: bucket rate=10/s"]).validate()
    }

    @Test("Rates: N/UNIT with a known unit")
    func rates() throws {
        #expect(try Rate(parsing: "90000/min").milliseconds == 60_000)
        #expect(try Rate(parsing: "100/10s").milliseconds == 10_000)
        for bad in ["90000/mins", "0/s", "1/0s", "1/", "/s", "1.5/s", "1/-2s", "1/ms", "x/s"] {
            #expect(throws: QuotaError.self) { try Rate(parsing: bad) }
        }
    }

    @Test("Scope patterns: exact root, then * only at the end")
    func patterns() throws {
        #expect(
            try ScopePattern(parsing: ["global=openai", "tenant=*", "tree=*"]).field == "global=openai tenant=* tree=*")
        #expect(try ScopePattern(parsing: ["global=openai", "tenant=a b"]).field == "global=openai tenant=a%20b")
        #expect(throws: QuotaError.self) { try ScopePattern(parsing: ["global=*"]) }
        #expect(throws: QuotaError.self) { try ScopePattern(parsing: ["global=o", "tenant=*", "tree=x"]) }
        #expect(throws: QuotaError.self) { try ScopePattern(parsing: []) }
    }
}
