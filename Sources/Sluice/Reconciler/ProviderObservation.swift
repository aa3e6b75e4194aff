import HTTPTypes

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What one response from an LLM provider says about the provider's capacity, in the same shape whichever
/// provider sent it.
///
/// Workers build one for every provider response (or timeout) and hand it to the reconciler, which merges it into
/// the fleet's shared view of the provider's real ceiling:
///
/// ```swift
/// let observation = ProviderObservation(response)  // a swift-http-types HTTPResponse (swift-openapi-runtime)
/// let observation = ProviderObservation(status: response.status, headers: response.headers)  // Hummingbird's HTTPFields
/// let observation = ProviderObservation(  // AsyncHTTPClient: NIO's HTTPHeaders are (name, value) pairs
///     status: Int(response.status.code), headers: response.headers)
/// if observation.responseClass == .quota, let wait = observation.retryAfter { ... }
/// if let tokensLeft = observation[.tokens]?.remaining { ... }
/// ```
///
/// Every time in an observation is a duration from the moment the provider answered (its `Date` header), so that
/// observations from many hosts compare without their clocks.
public struct ProviderObservation: Sendable, Hashable {
    /// The HTTP status, or nil when no response arrived (a timeout or a broken connection).
    public var status: Int?

    /// What the response means for the fleet: go on, slow down, back off, or give up.
    public var responseClass: ResponseClass

    /// How long the provider asked callers to wait before the next request (`retry-after-ms`,
    /// `x-ms-retry-after-ms` or `Retry-After`), or nil if it did not say.
    public var retryAfter: Duration?

    /// What the response says about each resource it named. A resource is present when at least one header named
    /// it, even if every value of it was malformed.
    public var resources: [RateLimitResource: ResourceObservation]

    public init(
        status: Int?, responseClass: ResponseClass, retryAfter: Duration? = nil,
        resources: [RateLimitResource: ResourceObservation] = [:]
    ) {
        self.status = status
        self.responseClass = responseClass
        self.retryAfter = retryAfter
        self.resources = resources
    }

    /// Reads a response's status and swift-http-types `HTTPFields` with the default ``ObservationParser``; see
    /// ``ObservationParser/observe(status:headers:now:)``.
    public init(status: Int, headers: HTTPFields, now: Date = Date()) {
        self = ObservationParser().observe(status: status, headers: headers, now: now)
    }

    /// A request that got no response: it timed out or its connection broke. Such failures count as
    /// ``ResponseClass/overload``.
    public static let noResponse = ProviderObservation(status: nil, responseClass: .overload)

    /// What the response says about `resource`, or nil if no header named it.
    public subscript(resource: RateLimitResource) -> ResourceObservation? {
        get { resources[resource] }
        set { resources[resource] = newValue }
    }
}

extension ProviderObservation {
    /// The observation as one line of JSON, as `sluice observe --json` prints it (`JSONEncoder`, keys sorted):
    ///
    /// ```json
    /// {"class":"quota","resources":{"requests":{"limit":60,"remaining":0,"reset_ms":1000}},"retry_after_ms":1500,
    ///  "status":429}
    /// ```
    ///
    /// `status` is null when no response arrived; durations are whole milliseconds, rounded up so that a positive
    /// wait never reads as 0; unknown values are null; only the resources that a header named appear.
    package var json: String {
        struct Resource: Encodable {
            var limit: Int64?
            var remaining: Int64?
            var resetMilliseconds: Int64?

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(limit, forKey: .limit)  // null when unknown: every key is always present
                try container.encode(remaining, forKey: .remaining)
                try container.encode(resetMilliseconds, forKey: .resetMilliseconds)
            }

            enum CodingKeys: String, CodingKey {
                case limit, remaining
                case resetMilliseconds = "reset_ms"
            }
        }
        struct Line: Encodable {
            var status: Int?
            var responseClass: String
            var retryAfterMilliseconds: Int64?
            var resources: [String: Resource]

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(status, forKey: .status)
                try container.encode(responseClass, forKey: .responseClass)
                try container.encode(retryAfterMilliseconds, forKey: .retryAfterMilliseconds)
                try container.encode(resources, forKey: .resources)
            }

            enum CodingKeys: String, CodingKey {
                case status, resources
                case responseClass = "class"
                case retryAfterMilliseconds = "retry_after_ms"
            }
        }
        var named: [String: Resource] = [:]
        for (resource, observation) in resources {
            named[resource.name] = Resource(
                limit: observation.limit.map(Int64.init), remaining: observation.remaining.map(Int64.init),
                resetMilliseconds: observation.resetAfter?.millisecondsRoundedUp)
        }
        let line = Line(
            status: status, responseClass: responseClass.name,
            retryAfterMilliseconds: retryAfter?.millisecondsRoundedUp, resources: named)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings, optional integers and dictionaries of them: nothing here can fail to encode.
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
