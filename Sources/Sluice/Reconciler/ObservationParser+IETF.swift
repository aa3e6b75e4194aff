// The IETF rate-limit fields: draft-ietf-httpapi-ratelimit-headers in its structured (drafts 8-10), dictionary
// (drafts 3-7) and separate-field (drafts 0-2) forms. The structured fields are read with swift-http-structured-headers'
// RFC 9651 parser.

import RawStructuredFieldValues

extension ObservationParser.Context {
    func ietfResources() -> [RateLimitResource: ResourceObservation] {
        var found = structuredFieldResources()
        if found[.requests] == nil, let requests = separateFieldRequests() {
            found[.requests] = requests
        }
        return found
    }

    /// The resource that an IETF quota unit counts. No unit means requests (the draft's default); units that Sluice
    /// does not limit (`content-bytes`, `concurrent-requests`, anything unknown) give nil and are skipped.
    static func resource(ofQuotaUnit unit: String?) -> RateLimitResource? {
        guard let unit else { return .requests }
        switch unit.lowercased() {
        case "requests", "request": return .requests
        case "tokens", "token", "total-tokens", "total_tokens": return .tokens
        case "input-tokens", "input_tokens", "prompt-tokens", "prompt_tokens": return .inputTokens
        case "output-tokens", "output_tokens", "completion-tokens", "completion_tokens": return .outputTokens
        default: return nil
        }
    }

    // MARK: Drafts 8 to 10: RateLimit-Policy and RateLimit as structured lists

    private struct Policy {
        var name: String
        var quota: Int?
        var unit: String?
    }

    /// `RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400` and `RateLimit: "burst";r=50;t=30`.
    ///
    /// Each `RateLimit` item is joined to the policy of the same name, whose `qu` parameter names the unit (`pu`
    /// is read too, for servers that spell it so). When several policies count the same resource, the most
    /// restrictive wins: the one with the least remaining (on a tie, the later reset); without any remaining, the
    /// first listed. A field that is not a valid structured field is ignored as a whole, as the draft requires.
    private func structuredFieldResources() -> [RateLimitResource: ResourceObservation] {
        let policies = (fields.combined(.rateLimitPolicy).flatMap(Self.parseList) ?? []).compactMap {
            member -> Policy? in
            guard case .item(let item) = member, let name = Self.text(item.rfc9651BareItem) else { return nil }
            return Policy(
                name: name, quota: item.rfc9651Parameters["q"].flatMap(Self.count), unit: Self.unit(of: item))
        }

        var candidates: [(resource: RateLimitResource, observation: ResourceObservation)] = []
        var policiesWithLimits: Set<String> = []
        if let field = fields.combined(.rateLimit) {
            if let members = Self.parseList(field) {
                for case .item(let item) in members {
                    guard let name = Self.text(item.rfc9651BareItem) else { continue }
                    let policy = policies.first { $0.name == name }
                    policiesWithLimits.insert(name)
                    guard let resource = Self.resource(ofQuotaUnit: policy?.unit ?? Self.unit(of: item)) else {
                        continue
                    }
                    let observation = ResourceObservation(
                        limit: policy?.quota, remaining: item.rfc9651Parameters["r"].flatMap(Self.count),
                        resetAfter: item.rfc9651Parameters["t"].flatMap(Self.seconds)
                    )
                    candidates.append((resource, observation))
                }
            } else if let dictionary = Self.parseDictionary(field) {
                candidates.append((.requests, Self.draft7Limit(dictionary)))
            }
        }
        for policy in policies where !policiesWithLimits.contains(policy.name) {
            guard let resource = Self.resource(ofQuotaUnit: policy.unit) else { continue }
            candidates.append((resource, ResourceObservation(limit: policy.quota)))
        }

        var found: [RateLimitResource: ResourceObservation] = [:]
        for candidate in candidates {
            if let chosen = found[candidate.resource], !Self.isMoreRestrictive(candidate.observation, than: chosen) {
                continue
            }
            found[candidate.resource] = candidate.observation
        }
        return found
    }

    /// Drafts 3 to 7: `RateLimit: limit=100, remaining=50, reset=30`.
    private static func draft7Limit(_ dictionary: OrderedMap<String, ItemOrInnerList>) -> ResourceObservation {
        func value(_ key: String) -> RFC9651BareItem? {
            guard case .item(let item)? = dictionary[key] else { return nil }
            return item.rfc9651BareItem
        }
        return ResourceObservation(
            limit: value("limit").flatMap(count), remaining: value("remaining").flatMap(count),
            resetAfter: value("reset").flatMap(seconds)
        )
    }

    /// A List, such as `"burst";q=100;w=60, "daily";q=1000;w=86400`; nil when the field is not a valid one (RFC 9651
    /// rejects such a field as a whole).
    private static func parseList(_ field: Substring) -> [ItemOrInnerList]? {
        var parser = StructuredFieldValueParser(Array(field.utf8))
        return try? parser.parseListFieldValue()
    }

    /// A Dictionary, such as `limit=100, remaining=50, reset=30`; nil when the field is not a valid one.
    private static func parseDictionary(_ field: Substring) -> OrderedMap<String, ItemOrInnerList>? {
        var parser = StructuredFieldValueParser(Array(field.utf8))
        return try? parser.parseDictionaryFieldValue()
    }

    /// The text of a String or a Token, which rate-limit fields use interchangeably for names and units.
    private static func text(_ item: RFC9651BareItem) -> String? {
        switch item {
        case .string(let text), .token(let text): text
        default: nil
        }
    }

    private static func isMoreRestrictive(_ candidate: ResourceObservation, than chosen: ResourceObservation) -> Bool {
        guard let remaining = candidate.remaining else { return false }
        guard let chosenRemaining = chosen.remaining else { return true }
        if remaining != chosenRemaining { return remaining < chosenRemaining }
        return (candidate.resetAfter ?? .zero) > (chosen.resetAfter ?? .zero)
    }

    private static func unit(of item: Item) -> String? {
        (item.rfc9651Parameters["qu"] ?? item.rfc9651Parameters["pu"]).flatMap(text)
    }

    private static func count(_ item: RFC9651BareItem) -> Int? {
        guard case .integer(let value) = item, value >= 0 else { return nil }
        return Int(exactly: value)
    }

    /// Whole or decimal seconds. A Decimal has at most three fractional digits (exponent -3 to 0), so it converts to
    /// whole milliseconds exactly.
    private static func seconds(_ item: RFC9651BareItem) -> Duration? {
        switch item {
        case .integer(let value) where value >= 0:
            return .seconds(value)
        case .decimal(let value) where value.mantissa >= 0 && (-3...0).contains(value.exponent):
            var milliseconds = value.mantissa
            for _ in 0..<(3 + Int(value.exponent)) { milliseconds *= 10 }
            return .milliseconds(milliseconds)
        default:
            return nil
        }
    }

    // MARK: Drafts 0 to 2: RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset

    /// `RateLimit-Limit: 100` (or `100, 100;w=60, 1000;w=3600`, whose first number is the limit in effect),
    /// `RateLimit-Remaining: 50`, `RateLimit-Reset: 30` (seconds).
    private func separateFieldRequests() -> ResourceObservation? {
        guard
            var observation = resource(
                limit: .rateLimitLimit, remaining: .rateLimitRemaining, reset: .rateLimitReset,
                parsingReset: resetNumber
            )
        else { return nil }
        observation.limit = fields[.rateLimitLimit].flatMap { limit in
            HeaderNumbers.count(HeaderText.trimmed(limit.prefix { $0 != "," && $0 != ";" }))
        }
        return observation
    }
}
