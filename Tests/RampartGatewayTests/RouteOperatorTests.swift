import Testing

@testable import RampartGateway

@Suite struct RouteOperatorTests {
    /// A body whose values have every runtime type, to reach the operators' dynamic paths.
    static let typed = RouteTestSupport.jsonMessage(#"{"n": 5, "four": 4, "s": "a", "t": true, "z": null}"#)

    @Test(arguments: [
        ("2 * 3", RouteValue.number(6)),
        ("7 / 2", .number(3.5)),
        ("7 % 3", .number(1)),
        ("-7 % 3", .number(-1)),
        ("7.5 % 2", .number(1.5)),
        ("1 + 2", .number(3)),
        ("5 - 2", .number(3)),
        ("-(2)", .number(-2)),
        ("- - 2", .number(2)),
        ("- $body.four", .number(-4)),
        ("$body.n * $body.four", .number(20)),
        ("1 / 0", .undefined),
        ("0 % 0", .undefined),
        ("undefined + 1", .undefined),
        ("1 - undefined", .undefined),
        ("- undefined", .undefined),
        ("$body.s + 1", .undefined),
        ("- $body.s", .undefined),
        ("$body.z * 2", .undefined),
    ])
    func arithmetic(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: [
        ("'a' || 'b'", RouteValue.string("ab")),
        ("'' || ''", .string("")),
        ("$body.s || 'b'", .string("ab")),
        ("'a' || undefined", .undefined),
        ("$body.n || 'b'", .undefined),
    ])
    func concatenation(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: [
        ("1 < 2", RouteValue.bool(true)),
        ("2 < 2", .bool(false)),
        ("2 <= 2", .bool(true)),
        ("3 > 2", .bool(true)),
        ("2 >= 3", .bool(false)),
        ("2 = 2", .bool(true)),
        ("2 != 2", .bool(false)),
        ("2 <> 3", .bool(true)),
        ("0x1F = 31", .bool(true)),
        ("1.5e2 = 150", .bool(true)),
        (".5 = 0.5", .bool(true)),
        ("'a' < 'b'", .bool(true)),
        ("'B' < 'a'", .bool(true)),
        ("'abc' = 'abc'", .bool(true)),
        ("'a' != 'A'", .bool(true)),
        ("'é' = 'e\\u0301'", .bool(false)),
        ("false < true", .bool(true)),
        ("true = true", .bool(true)),
        ("null = null", .bool(true)),
        ("null <= null", .bool(true)),
        ("null < null", .bool(false)),
        ("null != null", .bool(false)),
        ("undefined = undefined", .undefined),
        ("1 = undefined", .undefined),
        ("undefined != 'a'", .undefined),
        ("$body.n = '5'", .undefined),
        ("$body.n != '5'", .undefined),
        ("$body.s > 1", .undefined),
        ("$body.z = 0", .undefined),
        ("$body.t = true", .bool(true)),
        ("$body.n = 5", .bool(true)),
        ("$body.missing = 5", .undefined),
    ])
    func comparison(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    /// Three-valued, as edgeHub's `Bool`: a known `false` decides `AND` and a known `true` decides `OR`.
    @Test(arguments: [
        ("true AND true", RouteValue.bool(true)),
        ("true AND false", .bool(false)),
        ("false AND undefined", .bool(false)),
        ("undefined AND false", .bool(false)),
        ("true AND undefined", .undefined),
        ("undefined AND undefined", .undefined),
        ("null AND true", .undefined),
        ("$body.s AND true", .undefined),
        ("false OR false", .bool(false)),
        ("false OR true", .bool(true)),
        ("true OR undefined", .bool(true)),
        ("undefined OR true", .bool(true)),
        ("false OR undefined", .undefined),
        ("NOT true", .bool(false)),
        ("NOT false", .bool(true)),
        ("NOT undefined", .undefined),
        ("NOT null", .undefined),
        ("NOT $body.s", .undefined),
        ("not not true", .bool(true)),
    ])
    func logic(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: [
        ("undefined ?? 'x'", RouteValue.string("x")),
        ("null ?? 'x'", .null),
        ("'a' ?? 'x'", .string("a")),
        ("missing ?? 'fallback'", .string("fallback")),
        ("$connectionModuleId ?? $connectionDeviceId", .string("device-1")),
        ("$body.missing ?? $body.n", .number(5)),
        ("undefined ?? undefined", .undefined),
    ])
    func coalesce(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    /// Precedence from edgeHub's `Condition.g4`, loosest last: `* / %`, `+ - ||`, `< <= > >=`, `= != <>`, `AND`,
    /// `OR`, `??`; `NOT` and unary `-` bind tightest.
    @Test(arguments: [
        ("1 + 2 * 3", RouteValue.number(7)),
        ("(1 + 2) * 3", .number(9)),
        ("2 - 1 - 1", .number(0)),
        ("8 / 4 / 2", .number(1)),
        ("-2 * 3", .number(-6)),
        ("1 < 2 = true", .bool(true)),
        ("true OR false AND false", .bool(true)),
        ("(true OR false) AND false", .bool(false)),
        ("NOT false AND false", .bool(false)),
        ("NOT $body.t = false", .bool(true)),
        ("'a' ?? 1 = 2", .string("a")),
        ("'a' || 'b' = 'ab'", .bool(true)),
        ("1 + 1 = 2 AND 2 * 2 = 4 OR false", .bool(true)),
    ])
    func precedence(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test func notBindsTighterThanComparison() throws {
        let parsed = try RouteParser.expression("NOT $body.t = false")
        let body = RouteExpression.body(RouteBodyPath(components: [.member("t")], spelling: "body.t"), escaped: false)
        #expect(parsed == .binary(.equal, .unary(.not, body), .literal(.bool(false))))
    }

    @Test(arguments: [
        (#"'it\'s' = "it's""#, RouteValue.bool(true)),
        (#""say \"hi\"" = 'say "hi"'"#, .bool(true)),
        (#"'back\\slash' = 'back' || '\\' || 'slash'"#, .bool(true)),
        (#"'\u00e9' = 'é'"#, .bool(true)),
        (#"'\uD83D\uDE00' = '😀'"#, .bool(true)),
        ("'line\nbreak' = 'line' || '\n' || 'break'", .bool(true)),
    ])
    func stringLiterals(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression) == expected)
    }

    @Test func literalsAreLowercaseOnly() throws {
        let message = RouteTestSupport.deviceMessage(app: ["TRUE": "yes"])
        #expect(try RouteTestSupport.value("TRUE", message) == .string("yes"))
        #expect(try RouteTestSupport.value("True", message) == .string("yes"))
        #expect(try RouteTestSupport.value("true", message) == .bool(true))
    }
}
