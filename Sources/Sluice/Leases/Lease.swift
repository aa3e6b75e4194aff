/// One concurrency slot held in a ``LeasePool``: it expires unless renewed (a crashed holder's slot
/// comes back by itself), and its fencing token only ever grows within a scope, so a downstream
/// resource can reject a holder whose lease was lost.
public struct Lease: Sendable, Hashable {
    /// The scope whose slot this is.
    public let scope: String
    /// The partition holding the scope's leases.
    public let partition: String
    /// The fencing token: unique and increasing per scope.
    public let token: Int64
    /// Who holds it (free text, shown to operators).
    public let holder: String
    /// How long the lease lasts without a renewal.
    public let ttl: Duration

    /// The member of the scope's lease set: `<token>|<holder>`.
    var member: String { "\(token)|\(holder)" }
}
