import HTTPTypes

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// swift-http-types' `HTTPResponse` and `HTTPFields` are what Hummingbird, swift-openapi-runtime and NIOHTTPTypes hand
// over, so a response from them goes to the parser as it is, without copying its fields by hand.

extension ResponseHeaders {
    /// The fields of a swift-http-types `HTTPFields`, in order; a name that appears more than once keeps every value.
    public init(_ fields: HTTPFields) {
        self.init()
        for field in fields { add(name: field.name.rawName, value: field.value) }
    }
}

extension ObservationParser {
    /// Reads one response given as swift-http-types values; see ``observe(status:headers:now:)``.
    public func observe(status: HTTPResponse.Status, headers: HTTPFields, now: Date = Date()) -> ProviderObservation {
        observe(status: status.code, headers: ResponseHeaders(headers), now: now)
    }

    /// Reads one swift-http-types `HTTPResponse`: its status and header fields.
    public func observe(_ response: HTTPResponse, now: Date = Date()) -> ProviderObservation {
        observe(status: response.status, headers: response.headerFields, now: now)
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
}
