/// The value of a route expression.
///
/// Objects and arrays never appear: edgeHub turns a `$body` path that lands on one into `undefined`, because
/// routes compare primitives only.
public enum RouteValue: Sendable, Hashable, CustomStringConvertible {
    /// A missing value: an absent property, a failed conversion, or an operator given the wrong types.
    case undefined
    /// JSON `null`, or the `null` literal.
    case null
    /// A Boolean.
    case bool(Bool)
    /// A number; never NaN or infinite, which become ``undefined``.
    case number(Double)
    /// A string.
    case string(String)

    /// Whether the value is anything but ``undefined`` (`null` is defined).
    public var isDefined: Bool {
        if case .undefined = self { return false }
        return true
    }

    /// The value as a route literal would spell it, for logs and test failures.
    public var description: String {
        switch self {
        case .undefined: "undefined"
        case .null: "null"
        case .bool(let value): value ? "true" : "false"
        case .number(let value):
            value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .string(let value): "'" + value.replacing("'", with: "\\'") + "'"
        }
    }

    /// A number, or ``undefined`` when the arithmetic left the finite range (`1 / 0`, `sqrt(-1)`).
    static func finite(_ value: Double) -> RouteValue {
        value.isFinite ? .number(value) : .undefined
    }
}
