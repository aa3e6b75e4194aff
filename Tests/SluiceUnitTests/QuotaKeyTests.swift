import Testing

@testable import Sluice

@Suite("Quota keys: escaping and layout")
struct QuotaKeyTests {
    @Test("Plain names stay as they are")
    func plainNames() {
        #expect(KeyName.escape("req-7f3_A.b") == "req-7f3_A.b")
    }

    @Test(
        "Separators, braces, wildcards, spaces and % are percent-encoded",
        arguments: [
            ("a{b}c", "a%7Bb%7Dc"), ("x:y/z", "x%3Ay%2Fz"), ("k=v", "k%3Dv"), ("*", "%2A"), ("a b", "a%20b"),
            ("50%", "50%25"), ("t|r", "t%7Cr"), ("é", "%C3%A9"),
        ])
    func unsafeBytes(name: String, escaped: String) {
        #expect(KeyName.escape(name) == escaped)
    }

    @Test("Binary bytes are escaped, and distinct names stay distinct")
    func binary() {
        #expect(KeyName.escape(bytes: [0, 255, 10]) == "%00%FF%0A")
        #expect(KeyName.escape("a%7Bb") != KeyName.escape("a{b"))
    }

    @Test("An overlong name is cut and suffixed with a hash; two of them with a common prefix differ")
    func overlong() {
        let base = String(repeating: "x", count: 200)
        let one = KeyName.escape(base + "1")
        let two = KeyName.escape(base + "2")
        #expect(one != two)
        #expect(one.utf8.count == 64 + 1 + 24)
        #expect(one.hasPrefix(String(repeating: "x", count: 64) + "~"))
        #expect(!KeyName.escape(String(repeating: "y", count: 96)).contains("~"))
    }

    @Test("A cut never splits a %XX escape")
    func cutOnEscapeBoundary() {
        let escaped = KeyName.escape(String(repeating: "{", count: 60))
        let kept = escaped.prefix { $0 != "~" }
        #expect(kept.utf8.count % 3 == 0)
        #expect(kept.utf8.count <= 64)
    }

    @Test("The cut suffix is the SHA-256 of the whole name (digests from Python's hashlib)")
    func sha256Suffix() {
        #expect(
            KeyName.escape(String(repeating: "x", count: 100)) == String(repeating: "x", count: 64)
                + "~09ECB6EBC8BCEFC733F6F2EC")
        // The digest covers the raw bytes, not their escaped form.
        #expect(KeyName.escape(String(repeating: "{", count: 60)).hasSuffix("~2A77DAEB9263CFDD95CCB2C2"))
    }

    @Test("Every key of a decision carries the partition's hash tag")
    func layout() throws {
        let keys = QuotaKeys(partition: "open{ai}")
        let path = try ScopePath("global=open{ai}", "tenant=acme corp", "tree=req-1")
        #expect(keys.quotas == "sluice:{open%7Bai%7D}:quotas")
        #expect(
            keys.states(path) == [
                "sluice:{open%7Bai%7D}:s:global=open%7Bai%7D",
                "sluice:{open%7Bai%7D}:s:global=open%7Bai%7D/tenant=acme%20corp",
                "sluice:{open%7Bai%7D}:s:global=open%7Bai%7D/tenant=acme%20corp/tree=req-1",
            ])
        #expect(keys.reservation("r/1") == "sluice:{open%7Bai%7D}:r:r%2F1")
        for key in keys.states(path) + [keys.quotas, keys.stats] {
            #expect(key.filter { $0 == "{" }.count == 1 && key.filter { $0 == "}" }.count == 1)
        }
    }

    @Test("Config fields for a scope run from the exact path to the class pattern")
    func patterns() throws {
        let path = try ScopePath("global=openai", "tenant=acme", "tree=a b")
        #expect(path.patterns(at: 0) == ["global=openai"])
        #expect(
            path.patterns(at: 2) == [
                "global=openai tenant=acme tree=a%20b", "global=openai tenant=acme tree=*",
                "global=openai tenant=* tree=*",
            ])
    }
}
