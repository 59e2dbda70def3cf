/// The one error type that crosses module and wire boundaries.
///
/// Modelled on swift-certificates' `CertificateError`: a stable ``Code`` that clients can switch on, an HTTP
/// status for the server, and a human message that says what was wrong and what to do about it.
/// Two errors are equal when their codes are equal.
public struct RampartError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, wire-visible error code such as `notFound` or `tokenExpired`.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }
    }

    /// The stable code.
    public var code: Code
    /// What went wrong and what to do about it.
    public var message: String
    /// The HTTP status the server answers with.
    public var status: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, status: Int = 400) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: RampartError, rhs: RampartError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension RampartError.Code {
    public static let invalidRequest: Self = "invalidRequest"
    public static let malformedJSON: Self = "malformedJSON"
    public static let unknownField: Self = "unknownField"
    public static let bodyTooLarge: Self = "bodyTooLarge"
    public static let invalidName: Self = "invalidName"
    public static let unauthenticated: Self = "unauthenticated"
    public static let tokenInvalid: Self = "tokenInvalid"
    public static let tokenExpired: Self = "tokenExpired"
    public static let forbidden: Self = "forbidden"
    public static let notFound: Self = "notFound"
    public static let methodNotAllowed: Self = "methodNotAllowed"
    public static let conflict: Self = "conflict"
    public static let invitationInvalid: Self = "invitationInvalid"
    public static let invitationUsed: Self = "invitationUsed"
    public static let invitationExpired: Self = "invitationExpired"
    public static let challengeInvalid: Self = "challengeInvalid"
    public static let signatureInvalid: Self = "signatureInvalid"
    public static let lastAdministrator: Self = "lastAdministrator"
    public static let certificateInvalid: Self = "certificateInvalid"
    public static let storeUnavailable: Self = "storeUnavailable"
    public static let serverUnreachable: Self = "serverUnreachable"
    /// Servicing would leave through a network interface the runtime does not manage (`[network]` in device.toml).
    public static let networkPathRefused: Self = "networkPathRefused"
    public static let configurationInvalid: Self = "configurationInvalid"
    public static let invalidParent: Self = "invalidParent"
    public static let notChild: Self = "notChild"
    public static let deviceNotClaimed: Self = "deviceNotClaimed"
    public static let deviceQueueFull: Self = "deviceQueueFull"
    public static let internalError: Self = "internalError"
}

extension RampartError {
    /// 400: the request is malformed.
    public static func invalidRequest(_ message: String) -> Self { .init(.invalidRequest, message, status: 400) }
    /// 404, worded so that it never reveals whether the object exists elsewhere.
    public static func notFound(_ what: String) -> Self {
        .init(.notFound, "\(what) was not found, or you have no access to it.", status: 404)
    }
    /// 403: authenticated but the role does not allow it.
    public static func forbidden(_ message: String) -> Self { .init(.forbidden, message, status: 403) }
    /// 409: the request conflicts with the current state.
    public static func conflict(_ code: Code = .conflict, _ message: String) -> Self { .init(code, message, status: 409) }
    /// 401: a bearer token is missing or unusable.
    public static func unauthenticated(_ code: Code = .unauthenticated, _ message: String) -> Self {
        .init(code, message, status: 401)
    }
}
