import HTTPTypes
import Sluice
import Testing

/// Header blocks as people paste them into `sluice observe`, and the JSON it prints.
@Suite("Reconciler: header blocks and JSON")
struct ReconcilerHeaderBlockTests {
    @Test("A status line sets the status; names keep any case; values lose surrounding spaces")
    func statusLine() {
        let block = HeaderBlock(parsing: "HTTP/1.1 429 Too Many Requests\r\nRetry-After:   12  \r\nX-Thing:a:b\r\n")
        #expect(block.status == 429)
        #expect(block.headers["retry-after"] == "12")
        #expect(block.headers["RETRY-AFTER"] == "12")
        #expect(block.headers["x-thing"] == "a:b")
        #expect(block.ignoredLines.isEmpty)
    }

    @Test("HTTP/2 status lines, including the :status pseudo-header")
    func http2StatusLines() {
        #expect(HeaderBlock(parsing: "HTTP/2 529\nfoo: bar").status == 529)
        #expect(HeaderBlock(parsing: ":status: 503\nfoo: bar").status == 503)
        #expect(HeaderBlock(parsing: "foo: bar").status == nil)
        #expect(HeaderBlock(parsing: "HTTP/1.1 99 Odd\nfoo: bar").status == nil)
    }

    @Test("With redirects (curl -iL), only the last response counts, and bodies are skipped")
    func redirectsAndBodies() {
        let block = HeaderBlock(
            parsing: """
                HTTP/1.1 301 Moved Permanently
                Location: https://api.example.com/v2
                RateLimit: "problemPolicy";r=0;t=10

                HTTP/2 200
                x-ratelimit-remaining-requests: 99

                {"note": "a body line: with a colon"}
                x-ratelimit-remaining-tokens: 5
                """
        )
        #expect(block.status == 200)
        #expect(block.headers["location"] == nil)
        #expect(block.headers["ratelimit"] == nil)
        #expect(block.headers["x-ratelimit-remaining-requests"] == "99")
        #expect(block.headers["x-ratelimit-remaining-tokens"] == nil)
        #expect(block.headers.count == 1)
    }

    @Test("Blank lines before the headers, folded continuation lines, and lines that are not headers")
    func oddLines() {
        let block = HeaderBlock(
            parsing: """

                RateLimit-Policy: "burst";q=100;w=60,
                    "daily";q=1000;w=86400
                this line has no colon
                Bad Name: value
                : no name
                x-ratelimit-limit-requests: 60
                """
        )
        #expect(block.headers["ratelimit-policy"] == #""burst";q=100;w=60, "daily";q=1000;w=86400"#)
        #expect(block.ignoredLines == [4, 5, 6])
        #expect(block.headers["x-ratelimit-limit-requests"] == "60")
    }

    @Test("Repeated fields keep every value in order")
    func repeatedFields() {
        let block = HeaderBlock(parsing: "RateLimit: \"a\";r=1\nratelimit: \t \"b\";r=2 \nRetry-After: 5")
        #expect(block.headers[values: HTTPField.Name("RATELIMIT")!] == [#""a";r=1"#, #""b";r=2"#])
        #expect(block.headers.contains(HTTPField.Name("ratelimit")!))
        #expect(!block.headers.contains(HTTPField.Name("ratelimit-policy")!))
        #expect(block.headers.map(\.name.rawName) == ["RateLimit", "ratelimit", "Retry-After"])
        #expect(block.headers[.retryAfter] == "5")
    }

    @Test("A line whose name is not a valid HTTP field name is ignored, not read")
    func invalidNames() {
        let block = HeaderBlock(parsing: "retry-after: 5\nx(y): 1\nnaïve: 2\n@: 3\nx-ratelimit-remaining: 4")
        #expect(block.ignoredLines == [2, 3, 4])
        #expect(block.headers.count == 2)
        #expect(block.headers["x-ratelimit-remaining"] == "4")
    }

    @Test("JSON of a 429, exactly as `sluice observe --json` prints it")
    func jsonOfRateLimitedResponse() {
        let observation = ReconcilerFixture.observe(
            """
            HTTP/2 429
            date: Wed, 21 May 2025 10:15:30 GMT
            retry-after-ms: 1456
            x-ratelimit-limit-requests: 500
            x-ratelimit-remaining-requests: 0
            x-ratelimit-reset-requests: 2m59.56s
            x-ratelimit-limit-tokens: 30000
            x-ratelimit-remaining-tokens: many
            x-ratelimit-reset-tokens: 0s
            """
        )
        #expect(
            observation.json
                == #"{"class":"quota","resources":{"#
                + #""requests":{"limit":500,"remaining":0,"reset_ms":179560},"#
                + #""tokens":{"limit":30000,"remaining":null,"reset_ms":null}},"retry_after_ms":1456,"status":429}"#
        )
    }

    @Test("JSON names every resource a header named, once each")
    func jsonResources() {
        let json = ReconcilerFixture.observe(ReconcilerAnthropicTests.successfulResponse).json
        for name in ["requests", "tokens", "input_tokens", "output_tokens"] {
            #expect(json.ranges(of: "\"\(name)\":").count == 1, "\(name) in \(json)")
        }
        #expect(json.contains(#""output_tokens":{"limit":80000,"remaining":80000,"reset_ms":0}"#))
    }

    @Test("JSON without rate-limit headers, without a response, and with do-not-retry")
    func jsonEdgeCases() {
        #expect(
            ReconcilerFixture.observe("content-type: text/plain", status: 404).json
                == #"{"class":"do_not_retry","resources":{},"retry_after_ms":null,"status":404}"#
        )
        #expect(
            ProviderObservation.noResponse.json
                == #"{"class":"overload","resources":{},"retry_after_ms":null,"status":null}"#
        )
    }

    @Test("JSON milliseconds round up, so that a positive wait never reads as zero")
    func jsonRoundsUp() {
        let json = ReconcilerFixture.observe("x-ratelimit-reset-requests: 1.5µs\nretry-after-ms: 0.2", status: 429).json
        #expect(json.contains(#""retry_after_ms":1,"#))
        #expect(json.contains(#""reset_ms":1}"#))
    }
}
