import SluiceRedis

/// An error from the limiter: bad input (caught before any I/O), an unreadable reply, or Redis.
///
/// `code` says what kind of failure it was and is extensible without breaking callers; the
/// `message` says why. Neither holds user-supplied scope names, tree ids or costs by default, so an
/// error can be logged as it is.
public struct QuotaError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// A scope is not `KIND=NAME`, its kind is not an identifier, or its name is empty.
        public static let invalidScope = Code("invalidScope")
        /// The path has no scopes.
        public static let emptyPath = Code("emptyPath")
        /// The path is deeper than ``Limiter/Configuration/maximumDepth``.
        public static let pathTooDeep = Code("pathTooDeep")
        /// A resource name is not an identifier (letters, digits, `_`; at most 32 characters).
        public static let invalidResource = Code("invalidResource")
        /// The cost names no resource.
        public static let emptyCost = Code("emptyCost")
        /// A cost is negative, not an integer, or larger than ``Cost/maximumAmount``.
        public static let invalidCost = Code("invalidCost")
        /// A limit spec (the caller's default or `quota set`'s) does not parse.
        public static let invalidSpec = Code("invalidSpec")
        /// A spec holds more than ``QuotaSpec/maximumLimits`` limits (`quota set` adding one more, say).
        public static let tooManyLimits = Code("tooManyLimits")
        /// A duration, rate or unit is out of range or unknown.
        public static let invalidDuration = Code("invalidDuration")
        /// A ``Reconciler/Configuration`` value is out of range (a factor outside (0, 1), say).
        public static let invalidReconcilerSetting = Code("invalidReconcilerSetting")
        /// A reservation id is empty.
        public static let invalidReservation = Code("invalidReservation")
        /// The reservation is already settled or cancelled (reserving again under its id).
        public static let reservationClosed = Code("reservationClosed")
        /// Settle or cancel named a reservation whose path is different.
        public static let reservationMismatch = Code("reservationMismatch")
        /// Redis failed; ``QuotaError/underlying`` (a `RedisError`) says how.
        public static let redis = Code("redis")
        /// A script answered something this version does not understand.
        public static let unexpectedReply = Code("unexpectedReply")

        public var description: String { name }
    }

    /// What kind of failure it was.
    public var code: Code
    /// Why, in words.
    public var message: String
    /// The error that caused this one, if any: the client's `RedisError` for ``Code/redis``. Not part of
    /// equality, which compares `code` and `message`.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// The client's error, for ``Code/redis``.
    public var redisError: RedisError? { underlying as? RedisError }

    public var description: String { "Sluice \(code): \(message)" }

    public static func == (lhs: QuotaError, rhs: QuotaError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }

    static func redis(_ error: RedisError) -> QuotaError {
        QuotaError(.redis, error.description, underlying: error)
    }
}
