import HTTPTypes

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// The parser reads swift-http-types' `HTTPFields`, which Hummingbird, swift-openapi-runtime and NIOHTTPTypes hand
// over, so that a response from them goes in as it is. A client whose headers are `(name, value)` pairs, such as
// AsyncHTTPClient with its `HTTPHeaders`, passes them as they are too; they become `HTTPFields` on the way.

extension ObservationParser {
    /// Reads one response given as swift-http-types values; see ``observe(status:headers:now:)``.
    public func observe(status: HTTPResponse.Status, headers: HTTPFields, now: Date = Date()) -> ProviderObservation {
        observe(status: status.code, headers: headers, now: now)
    }

    /// Reads one swift-http-types `HTTPResponse`: its status and header fields.
    public func observe(_ response: HTTPResponse, now: Date = Date()) -> ProviderObservation {
        observe(status: response.status.code, headers: response.headerFields, now: now)
    }

    /// Reads one response whose header fields are `(name, value)` pairs, as AsyncHTTPClient's `HTTPHeaders` are:
    ///
    /// ```swift
    /// let observation = parser.observe(status: Int(response.status.code), headers: response.headers)
    /// ```
    ///
    /// The pairs become `HTTPFields` in order. A pair whose name is not a valid HTTP field name is skipped; values
    /// lose the spaces and tabs around them, and control characters in them become spaces, as `HTTPField` has it.
    public func observe(
        status: Int, headers: some Sequence<(name: String, value: String)>, now: Date = Date()
    ) -> ProviderObservation {
        observe(status: status, headers: Self.fields(headers), now: now)
    }

    /// `pairs` as `HTTPFields`, in order, without those whose name is not a valid field name.
    static func fields(_ pairs: some Sequence<(name: String, value: String)>) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(pairs.underestimatedCount)
        for pair in pairs {
            guard let name = HTTPField.Name(pair.name) else { continue }
            fields.append(HTTPField(name: name, value: pair.value))
        }
        return fields
    }
}

extension ProviderObservation {
    /// Reads a response's status and `HTTPFields` with the default ``ObservationParser``:
    ///
    /// ```swift
    /// let observation = ProviderObservation(status: response.status, headers: response.headers)  // Hummingbird
    /// ```
    public init(status: HTTPResponse.Status, headers: HTTPFields, now: Date = Date()) {
        self = ObservationParser().observe(status: status, headers: headers, now: now)
    }

    /// Reads a swift-http-types `HTTPResponse` (status and header fields) with the default ``ObservationParser``.
    public init(_ response: HTTPResponse, now: Date = Date()) {
        self = ObservationParser().observe(response, now: now)
    }

    /// Reads a response whose header fields are `(name, value)` pairs with the default ``ObservationParser``:
    ///
    /// ```swift
    /// let observation = ProviderObservation(status: Int(response.status.code), headers: response.headers)  // AsyncHTTPClient
    /// ```
    ///
    /// See ``ObservationParser/observe(status:headers:now:)`` for how the pairs are read.
    public init(status: Int, headers: some Sequence<(name: String, value: String)>, now: Date = Date()) {
        self = ObservationParser().observe(status: status, headers: headers, now: now)
    }
}
