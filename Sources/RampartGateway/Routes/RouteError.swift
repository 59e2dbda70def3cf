/// A route that could not be parsed, pointing at the offending place in the route text.
///
/// Modelled on `RampartError`: a stable ``Code`` to switch on and a message that says what was expected.
/// ``line`` and ``column`` are 1-based and count Unicode scalars, so a multi-line route from a deployment
/// manifest can be fixed where it is written. Two errors are equal when their codes are equal.
public struct RouteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable error code such as `unexpectedToken` or `unterminatedString`.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
        ExpressibleByStringLiteral
    {
        /// The code as it appears in logs and on the wire.
        public var rawValue: String
        /// Creates a code from its wire form.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Creates a code from a literal.
        public init(stringLiteral value: String) { self.rawValue = value }
        /// The code as it appears in logs and on the wire.
        public var description: String { rawValue }
    }

    /// The stable code.
    public var code: Code
    /// The 1-based line of the offending token.
    public var line: Int
    /// The 1-based column of the offending token, counted in Unicode scalars.
    public var column: Int
    /// What was wrong and what was expected instead.
    public var message: String

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The stable code.
    ///   - line: The 1-based line of the offending token.
    ///   - column: The 1-based column of the offending token.
    ///   - message: What was wrong and what was expected instead.
    public init(_ code: Code, line: Int, column: Int, message: String) {
        self.code = code
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line L, column C: message`.
    public var description: String { "line \(line), column \(column): \(message)" }

    /// Two errors are equal when their codes are equal (STYLE.md).
    public static func == (lhs: RouteError, rhs: RouteError) -> Bool { lhs.code == rhs.code }
    /// Hashes the code only, to agree with ``==(_:_:)``.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension RouteError.Code {
    /// A token appeared where the grammar wanted something else.
    public static let unexpectedToken: Self = "unexpectedToken"
    /// A character that starts no token.
    public static let unknownCharacter: Self = "unknownCharacter"
    /// A string literal with no closing quote.
    public static let unterminatedString: Self = "unterminatedString"
    /// A backslash escape other than `\'`, `\"`, `\\` or `\uXXXX`.
    public static let invalidEscape: Self = "invalidEscape"
    /// A malformed number literal.
    public static let invalidNumber: Self = "invalidNumber"
    /// `FROM` is not followed by a valid source path.
    public static let invalidSource: Self = "invalidSource"
    /// `INTO` is not followed by `$upstream` or a valid `BrokeredEndpoint("/modules/{m}/inputs/{i}")`.
    public static let invalidSink: Self = "invalidSink"
    /// A `$body` path that is not `$body.name[index].name…`.
    public static let invalidBodyPath: Self = "invalidBodyPath"
    /// A call to a function the route language does not have.
    public static let unknownFunction: Self = "unknownFunction"
    /// A call with too few or too many arguments.
    public static let wrongArgumentCount: Self = "wrongArgumentCount"
    /// An operator or function applied to a value of the wrong type, known before any message arrives.
    public static let typeMismatch: Self = "typeMismatch"
    /// The route text is longer than ``RouteStatement/maximumLength``.
    public static let routeTooLong: Self = "routeTooLong"
    /// The condition nests deeper than ``RouteStatement/maximumNesting``.
    public static let nestingTooDeep: Self = "nestingTooDeep"
}
