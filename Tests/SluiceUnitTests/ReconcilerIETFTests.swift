import Sluice
import Testing

/// The IETF drafts: `RateLimit-Policy` and `RateLimit` structured fields (draft 10), their dictionary form (drafts 3
/// to 7), and the older `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
@Suite("Reconciler: IETF RateLimit headers")
struct ReconcilerIETFTests {
    @Test("A policy and its service limit describe requests when no unit is given")
    func singlePolicy() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/1.1 200 OK
            Date: Wed, 21 May 2025 10:15:30 GMT
            RateLimit-Policy: "default";q=100;w=60
            RateLimit: "default";r=50;t=30
            """
        )
        #expect(
            observation.resources == [
                .requests: ResourceObservation(limit: 100, remaining: 50, resetAfter: .seconds(30))
            ])
    }

    @Test("Of several policies on one resource, the one with the least remaining counts")
    func mostRestrictivePolicyWins() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400
            RateLimit: "burst";r=80;t=20, "daily";r=5;t=3600
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: 1_000, remaining: 5, resetAfter: .seconds(3_600)))
        // On equal remaining, the later reset is the binding one.
        let tie = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "permin";q=50;w=60,"perhr";q=1000;w=3600
            RateLimit: "permin";r=0;t=12,"perhr";r=0;t=1800
            """
        )
        #expect(tie[.requests] == ResourceObservation(limit: 1_000, remaining: 0, resetAfter: .seconds(1_800)))
    }

    @Test("The qu parameter names the unit; token units map to token resources and other units are skipped")
    func quotaUnits() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "tpm";q=30000;qu="tokens";w=60, "rpm";q=500;w=60
            RateLimit-Policy: "upload";q=65535;qu="content-bytes";w=10, "parallel";q=4;qu="concurrent-requests"
            RateLimit-Policy: "in";q=20000;qu="input-tokens";w=60, "out";q=8000;qu="output-tokens";w=60
            RateLimit: "tpm";r=12000;t=20, "rpm";r=499;t=1, "upload";r=100;t=5, "parallel";r=1
            RateLimit: "in";r=19000;t=20, "out";r=7990;t=20
            """
        )
        #expect(observation[.tokens] == ResourceObservation(limit: 30_000, remaining: 12_000, resetAfter: .seconds(20)))
        #expect(observation[.requests] == ResourceObservation(limit: 500, remaining: 499, resetAfter: .seconds(1)))
        #expect(
            observation[.inputTokens] == ResourceObservation(limit: 20_000, remaining: 19_000, resetAfter: .seconds(20))
        )
        #expect(
            observation[.outputTokens] == ResourceObservation(limit: 8_000, remaining: 7_990, resetAfter: .seconds(20)))
        #expect(observation.resources.count == 4)  // content-bytes and concurrent-requests are not Sluice resources
    }

    @Test("A pu parameter is read as the unit too, and a request-only unit is skipped")
    func puParameter() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "gen";q=100000;pu="tokens";w=60
            RateLimit: "gen";r=99000;t=45
            """
        )
        #expect(
            observation[.tokens] == ResourceObservation(limit: 100_000, remaining: 99_000, resetAfter: .seconds(45)))
        #expect(observation[.requests] == nil)
        let bytesOnly = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:
            RateLimit: "peruser";r=300000000;t=60;pk=:QXBwLTk5OQ==:
            """
        )
        #expect(bytesOnly.resources.isEmpty)
    }

    @Test("A service limit without a policy, and a policy without a service limit")
    func partialInformation() {
        let limitOnly = ReconcilerFixture.observe(#"RateLimit: "default";r=999;pk=:dHJpYWwxMjEzMjM=:"#)
        #expect(limitOnly[.requests] == ResourceObservation(limit: nil, remaining: 999, resetAfter: nil))
        let policyOnly = ReconcilerFixture.observe(#"RateLimit-Policy: "default";q=100;w=10"#)
        #expect(policyOnly[.requests] == ResourceObservation(limit: 100, remaining: nil, resetAfter: nil))
    }

    @Test("Token names (as early drafts wrote them), spaces after semicolons and mixed-case field names")
    func lenientButValidSyntax() {
        let observation = ReconcilerFixture.observe(
            """
            ratelimit-policy: default;q=60;w=60
            RATELIMIT: default; r=7; t=3
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: 60, remaining: 7, resetAfter: .seconds(3)))
    }

    @Test("Negative or non-integer parameters are unknown; the rest of the item still counts")
    func malformedParameters() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "default";q=-100;w=60
            RateLimit: "default";r=-5;t=30
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: nil, remaining: nil, resetAfter: .seconds(30)))
        let strings = ReconcilerFixture.observe(#"RateLimit: "default";r="50";t=?1"#)
        #expect(strings[.requests] == ResourceObservation(limit: nil, remaining: nil, resetAfter: nil))
    }

    @Test("Decimal resets are exact to the millisecond, a repeated parameter's last value wins, a Date is no count")
    func decimalsAndRFC9651Items() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Policy: "tpm";q=30000;qu="tokens";w=60, "rpm";q=500;w=60
            RateLimit: "tpm";r=100;t=0.3, "rpm";r=7;r=5;t=1.25
            """
        )
        #expect(
            observation[.tokens] == ResourceObservation(limit: 30_000, remaining: 100, resetAfter: .milliseconds(300)))
        #expect(
            observation[.requests] == ResourceObservation(limit: 500, remaining: 5, resetAfter: .milliseconds(1_250)))
        // RFC 9651 Dates and Display Strings are valid structured values, but not counts or seconds.
        let dated = ReconcilerFixture.observe(#"RateLimit: "default";r=%"fifty";t=@1747822560, "other";r=3"#)
        #expect(dated[.requests] == ResourceObservation(limit: nil, remaining: 3, resetAfter: nil))
    }

    @Test(
        "A field that is not a valid structured field is ignored as a whole",
        arguments: [
            #""default";r=50;t="#, #""default";r=50,"#, #""default" ;r=50"#, #""default;r=50"#, #""default";R=50"#,
            #""default";r=50;t=30 trailing"#, "{default}", #""default";r=1234567890123456"#,
        ]
    )
    func malformedField(text: String) {
        let observation = ReconcilerFixture.observe("RateLimit: \(text)")
        #expect(observation.resources.isEmpty)
    }

    @Test("The dictionary form of drafts 3 to 7")
    func dictionaryForm() {
        let observation = ReconcilerFixture.observe("RateLimit: limit=100, remaining=50, reset=30")
        #expect(observation[.requests] == ResourceObservation(limit: 100, remaining: 50, resetAfter: .seconds(30)))
    }

    @Test("The separate fields of the first drafts")
    func separateFields() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Limit: 100
            RateLimit-Remaining: 0
            RateLimit-Reset: 7
            """, status: 429
        )
        #expect(observation.responseClass == .quota)
        #expect(observation[.requests] == ResourceObservation(limit: 100, remaining: 0, resetAfter: .seconds(7)))

        let withPolicies = ReconcilerFixture.observe("RateLimit-Limit: 10, 10;w=1, 1000;w=3600\nratelimit-remaining: 9")
        #expect(withPolicies[.requests] == ResourceObservation(limit: 10, remaining: 9, resetAfter: nil))

        let malformed = ReconcilerFixture.observe("RateLimit-Limit: ten\nRateLimit-Remaining: -1\nRateLimit-Reset: -7")
        #expect(malformed[.requests] == ResourceObservation(limit: nil, remaining: nil, resetAfter: nil))
    }

    @Test("The structured fields win over the older separate fields")
    func structuredBeatsSeparate() {
        let observation = ReconcilerFixture.observe(
            """
            RateLimit-Limit: 100
            RateLimit-Remaining: 90
            RateLimit-Reset: 50
            RateLimit-Policy: "default";q=100;w=60
            RateLimit: "default";r=42;t=12
            """
        )
        #expect(observation[.requests] == ResourceObservation(limit: 100, remaining: 42, resetAfter: .seconds(12)))
    }
}
