/// A built-in function of the route language. Names match case-insensitively (`IS_DEFINED`, `is_defined`).
public enum RouteFunction: String, Sendable, Hashable, CaseIterable {
    /// `abs(x)`
    case abs
    /// `exp(x)`, e to the x.
    case exp
    /// `power(x, y)`, x to the y.
    case power
    /// `square(x)`
    case square
    /// `ceiling(x)`
    case ceiling
    /// `floor(x)`
    case floor
    /// `sign(x)`: -1, 0 or 1.
    case sign
    /// `sqrt(x)`
    case sqrt
    /// `as_number(x)`: a number from a decimal string; a number unchanged; otherwise `undefined`.
    case asNumber = "as_number"
    /// `is_bool(x)`
    case isBool = "is_bool"
    /// `is_defined(x)`: false only for `undefined`; `null` is defined.
    case isDefined = "is_defined"
    /// `is_null(x)`
    case isNull = "is_null"
    /// `is_number(x)`
    case isNumber = "is_number"
    /// `is_string(x)`
    case isString = "is_string"
    /// `concat(a, b, …)`: two or more strings joined.
    case concat
    /// `length(s)`, in Unicode scalars.
    case length
    /// `lower(s)`
    case lower
    /// `upper(s)`
    case upper
    /// `substring(s, start [, length])`, zero-based, in Unicode scalars.
    case substring
    /// `index_of(s, fragment)`: the zero-based position of the first match, or -1.
    case indexOf = "index_of"
    /// `starts_with(s, prefix)`
    case startsWith = "starts_with"
    /// `ends_with(s, suffix)`
    case endsWith = "ends_with"
    /// `contains(s, fragment)`
    case contains

    /// The function a route names, ignoring case, or nil when there is none.
    ///
    /// - Parameter name: The name as written in the route.
    /// - Returns: The function, or nil.
    public init?(routeName name: String) {
        self.init(rawValue: name.lowercased())
    }

    /// How many arguments the function takes; `concat` takes two or more.
    public var arity: ClosedRange<Int> {
        switch self {
        case .power, .indexOf, .startsWith, .endsWith, .contains: 2...2
        case .substring: 2...3
        case .concat: 2...Int.max
        default: 1...1
        }
    }
}
