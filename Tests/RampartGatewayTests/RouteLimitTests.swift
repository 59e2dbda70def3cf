import Testing

@testable import RampartGateway

@Suite struct RouteLimitTests {
    static let prefix = "FROM /* WHERE "
    static let suffix = " INTO $upstream"

    @Test func routesUpToTheMaximumLengthParse() throws {
        let padding = RouteStatement.maximumLength - Self.prefix.count - Self.suffix.count - "a = ''".count
        let route = Self.prefix + "a = '" + String(repeating: "x", count: padding) + "'" + Self.suffix
        #expect(route.count == RouteStatement.maximumLength)
        #expect(throws: Never.self) { try RouteStatement.parse(route) }
    }

    @Test func longerRoutesAreRefusedAtTheFirstCharacterTooMany() throws {
        let line = "FROM /* WHERE a = 'b'\n"
        let route = line + "  AND c = '" + String(repeating: "x", count: 2_000) + "'" + Self.suffix
        let error = try #require(RouteTestSupport.parseError(route))
        #expect(error.code == .routeTooLong)
        #expect(error.line == 2)
        #expect(error.column == RouteStatement.maximumLength - line.count + 1)
    }

    /// Ways a condition can nest.
    enum Nesting: CaseIterable, Sendable {
        case parentheses, not, negation, calls

        func condition(_ depth: Int) -> String {
            switch self {
            case .parentheses: String(repeating: "(", count: depth) + "true" + String(repeating: ")", count: depth)
            case .not: String(repeating: "NOT ", count: depth) + "true"
            case .negation: String(repeating: "-", count: depth) + "1 = 1"
            case .calls: String(repeating: "abs(", count: depth) + "1" + String(repeating: ")", count: depth) + " = 1"
            }
        }
    }

    @Test(arguments: Nesting.allCases)
    func nestingUpToTheMaximumParses(_ nesting: Nesting) throws {
        let depth = RouteStatement.maximumNesting
        #expect(throws: Never.self) { try RouteStatement.parse(Self.prefix + nesting.condition(depth) + Self.suffix) }
        let error = try #require(
            RouteTestSupport.parseError(Self.prefix + nesting.condition(depth + 1) + Self.suffix))
        #expect(error.code == .nestingTooDeep)
        #expect(error.line == 1)
    }

    @Test func hostileNestingFailsAtTheFirstLevelTooDeep() throws {
        let route = Self.prefix + String(repeating: "(", count: 1_000)
        let error = try #require(RouteTestSupport.parseError(route))
        #expect(error.code == .nestingTooDeep)
        #expect(error.column == Self.prefix.count + RouteStatement.maximumNesting + 1)
        #expect(error.message.contains("64"))
    }

    /// Long operator chains are not nesting: they parse and evaluate left to right.
    @Test func longChainsOfOperatorsEvaluate() throws {
        let terms = (RouteStatement.maximumLength - Self.prefix.count - Self.suffix.count - 10) / 4
        let sum = Array(repeating: "1", count: terms).joined(separator: " + ")
        let route = try RouteStatement.parse(Self.prefix + sum + " = \(terms)" + Self.suffix)
        #expect(route.matches(RouteTestSupport.deviceMessage()))
    }
}
