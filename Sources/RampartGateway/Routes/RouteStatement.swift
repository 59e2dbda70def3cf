/// A parsed route: `FROM <source> [WHERE <condition>] INTO <sink>`.
///
/// ```swift
/// let route = try RouteStatement.parse("FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream")
/// if route.matches(message) { deliver(message, to: route.sink) }
/// ```
public struct RouteStatement: Sendable, Hashable {
    /// The longest route text accepted, in Unicode scalars.
    public static let maximumLength = 1024
    /// How deeply parentheses, function calls and prefix operators may nest in a condition.
    public static let maximumNesting = 64

    /// The normalised source: a lowercased prefix that ends in `/`, e.g. `/messages/` for `/messages/*`.
    public var source: String
    /// The condition, or nil when the route has no `WHERE` and takes every message from its source.
    public var condition: RouteExpression?
    /// Where selected messages go.
    public var sink: RouteSink

    /// Creates a route from its parts.
    ///
    /// - Parameters:
    ///   - source: A source path such as `/messages/*`; it is normalised as ``normalizedSource(_:)`` says.
    ///   - condition: The condition, or nil for every message.
    ///   - sink: Where selected messages go.
    public init(source: String, condition: RouteExpression? = nil, sink: RouteSink) {
        self.source = Self.normalizedSource(source)
        self.condition = condition
        self.sink = sink
    }

    /// Parses `FROM <source> [WHERE <condition>] INTO <sink>`, also accepting a leading `SELECT *`.
    ///
    /// Keywords and function names ignore case; `true`, `false`, `null` and `undefined` are lowercase.
    /// The text may span lines.
    ///
    /// - Parameter text: The route as written in the deployment manifest.
    /// - Returns: The parsed route.
    /// - Throws: ``RouteError`` naming the line and column of the first problem and what was expected there.
    public static func parse(_ text: String) throws(RouteError) -> RouteStatement {
        var parser = try RouteParser(text)
        return try parser.parseStatement()
    }

    /// Whether the route selects a message: its source matches and its condition is exactly `true`.
    ///
    /// A condition that is `false`, `null` or `undefined` does not select the message.
    ///
    /// - Parameter message: The message to test.
    /// - Returns: True when the message should go to ``sink``.
    public func matches(_ message: RouteMessage) -> Bool {
        guard matchesSource(message.sourcePath) else { return false }
        guard let condition else { return true }
        return condition.evaluate(message) == .bool(true)
    }

    /// Whether a message from `sourcePath` comes from this route's source, ignoring the condition.
    ///
    /// The path gains a trailing `/` before the case-insensitive prefix test, so the source
    /// `/messages/modules/m/outputs/o` matches that output but not `/messages/modules/m/outputs/o2`.
    ///
    /// - Parameter sourcePath: `/messages/`, `/messages/modules/{m}/outputs/{o}` or `/twinChangeNotifications`.
    /// - Returns: True when the source selects the path.
    public func matchesSource(_ sourcePath: String) -> Bool {
        var path = sourcePath.lowercased()
        if !path.hasSuffix("/") { path += "/" }
        return path.utf8.starts(with: source.utf8)
    }

    /// Normalises a source path: strip a trailing `*`, strip a trailing `/`, add `/`, and lowercase.
    ///
    /// - Parameter path: A source path as written, e.g. `/messages/*`.
    /// - Returns: The prefix that message source paths are matched against, e.g. `/messages/`.
    public static func normalizedSource(_ path: String) -> String {
        var normalized = Substring(path)
        if normalized.hasSuffix("*") { normalized.removeLast() }
        if normalized.hasSuffix("/") { normalized.removeLast() }
        return normalized.lowercased() + "/"
    }
}
