/// A parsed route condition, the part between `WHERE` and `INTO`.
///
/// Build one with ``RouteStatement/parse(_:)``; evaluate it with ``evaluate(_:)``.
public indirect enum RouteExpression: Sendable, Hashable {
    /// A literal: a number, a string, `true`, `false`, `null` or `undefined`.
    case literal(RouteValue)
    /// A bare name: the application property of that name.
    case applicationProperty(String)
    /// `$name` or `{$name}`: the system property `name`.
    ///
    /// When `escaped` is false (`$name`), an application property literally called `$name` wins, as in
    /// edgeHub; `{$name}` always reads the system property.
    case systemProperty(String, escaped: Bool)
    /// `$body.a.b[0]`: a value inside a JSON body.
    ///
    /// When `escaped` is false, an application property literally called `$body.a.b[0]` wins, as in edgeHub.
    case body(RouteBodyPath, escaped: Bool)
    /// A prefix operator.
    case unary(RouteUnaryOperator, RouteExpression)
    /// An infix operator.
    case binary(RouteBinaryOperator, RouteExpression, RouteExpression)
    /// A built-in function call.
    case call(RouteFunction, [RouteExpression])
}

/// A prefix operator.
public enum RouteUnaryOperator: String, Sendable, Hashable, CaseIterable {
    /// `-x`: arithmetic negation.
    case negate = "-"
    /// `NOT x`: Boolean negation.
    case not = "NOT"
}

/// An infix operator, with its precedence.
public enum RouteBinaryOperator: String, Sendable, Hashable, CaseIterable {
    /// `*`
    case multiply = "*"
    /// `/`
    case divide = "/"
    /// `%`, the remainder with the sign of the dividend.
    case remainder = "%"
    /// `+`
    case add = "+"
    /// `-`
    case subtract = "-"
    /// `||`, string concatenation.
    case concatenate = "||"
    /// `<`
    case less = "<"
    /// `<=`
    case lessOrEqual = "<="
    /// `>`
    case greater = ">"
    /// `>=`
    case greaterOrEqual = ">="
    /// `=`
    case equal = "="
    /// `!=` or `<>`
    case notEqual = "!="
    /// `AND`, three-valued.
    case and = "AND"
    /// `OR`, three-valued.
    case or = "OR"
    /// `??`: the left side unless it is `undefined`, else the right side.
    case coalesce = "??"

    /// How tightly the operator binds; higher binds tighter.
    ///
    /// The order is edgeHub's `Condition.g4`: `* / %`, then `+ - ||`, then `< <= > >=`, then `= != <>`,
    /// then `AND`, then `OR`, and `??` loosest of all. `NOT` and unary `-` bind tighter than any of them.
    public var precedence: Int {
        switch self {
        case .multiply, .divide, .remainder: 7
        case .add, .subtract, .concatenate: 6
        case .less, .lessOrEqual, .greater, .greaterOrEqual: 5
        case .equal, .notEqual: 4
        case .and: 3
        case .or: 2
        case .coalesce: 1
        }
    }
}

/// A path into a JSON body: `$body.` followed by names, each with an optional `[index]`.
public struct RouteBodyPath: Sendable, Hashable, CustomStringConvertible {
    /// One step of the path.
    public enum Component: Sendable, Hashable {
        /// An object member, matched case-sensitively as JSON keys are.
        case member(String)
        /// An array element, zero-based.
        case index(Int)
    }

    /// The steps after `$body`.
    public var components: [Component]
    /// The path as written after `$`, e.g. `body.Weather.HistoricalData[0].Month`.
    public var spelling: String

    /// Creates a path.
    ///
    /// - Parameters:
    ///   - components: The steps after `$body`.
    ///   - spelling: The path as written after `$`.
    public init(components: [Component], spelling: String) {
        self.components = components
        self.spelling = spelling
    }

    /// `$` followed by ``spelling``.
    public var description: String { "$" + spelling }
}
