import Testing

@testable import RampartGateway

@Suite struct RouteFunctionTests {
    static let typed = RouteTestSupport.jsonMessage(#"{"n": -5, "s": "abc", "t": true, "z": null}"#)

    @Test(arguments: [
        ("abs(-3)", RouteValue.number(3)),
        ("abs($body.n)", .number(5)),
        ("exp(0)", .number(1)),
        ("power(2, 10)", .number(1024)),
        ("power(4, 0.5)", .number(2)),
        ("square(3)", .number(9)),
        ("ceiling(1.2)", .number(2)),
        ("ceiling(-1.2)", .number(-1)),
        ("floor(1.8)", .number(1)),
        ("floor(-1.2)", .number(-2)),
        ("sign(-5)", .number(-1)),
        ("sign(0)", .number(0)),
        ("sign(2.5)", .number(1)),
        ("sqrt(16)", .number(4)),
        ("sqrt(-1)", .undefined),
        ("exp(1000)", .undefined),
        ("abs(undefined)", .undefined),
        ("abs($body.s)", .undefined),
        ("power(2, undefined)", .undefined),
        ("floor($body.z)", .undefined),
    ])
    func math(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: [
        ("as_number('42')", RouteValue.number(42)),
        ("as_number(' 4.5e1 ')", .number(45)),
        ("as_number('-.5')", .number(-0.5)),
        ("as_number('+7')", .number(7)),
        ("as_number('abc')", .undefined),
        ("as_number('')", .undefined),
        ("as_number('0x10')", .undefined),
        ("as_number('inf')", .undefined),
        ("as_number('nan')", .undefined),
        ("as_number('1e999')", .undefined),
        ("as_number(7)", .number(7)),
        ("as_number(undefined)", .undefined),
        ("as_number($body.t)", .undefined),
        ("is_bool(true)", .bool(true)),
        ("is_bool($body.t)", .bool(true)),
        ("is_bool('true')", .bool(false)),
        ("is_bool(undefined)", .bool(false)),
        ("is_defined(undefined)", .bool(false)),
        ("is_defined(null)", .bool(true)),
        ("is_defined($body.z)", .bool(true)),
        ("is_defined($body.missing)", .bool(false)),
        ("is_defined(missing)", .bool(false)),
        ("is_defined($connectionDeviceId)", .bool(true)),
        ("is_null(null)", .bool(true)),
        ("is_null($body.z)", .bool(true)),
        ("is_null(undefined)", .bool(false)),
        ("is_null('')", .bool(false)),
        ("is_number(1)", .bool(true)),
        ("is_number('1')", .bool(false)),
        ("is_number(undefined)", .bool(false)),
        ("is_string('1')", .bool(true)),
        ("is_string(1)", .bool(false)),
        ("is_string($connectionDeviceId)", .bool(true)),
        ("is_string(undefined)", .bool(false)),
    ])
    func types(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: [
        ("concat('a', 'b')", RouteValue.string("ab")),
        ("concat('a', 'b', 'c', $body.s)", .string("abcabc")),
        ("concat('a', undefined)", .undefined),
        ("concat('a', $body.n)", .undefined),
        ("length('héllo')", .number(5)),
        ("length('')", .number(0)),
        ("length($body.s)", .number(3)),
        ("length(undefined)", .undefined),
        ("length($body.n)", .undefined),
        ("lower('AbC')", .string("abc")),
        ("upper('AbC')", .string("ABC")),
        ("upper(undefined)", .undefined),
        ("substring('hello', 1)", .string("ello")),
        ("substring('hello', 1, 3)", .string("ell")),
        ("substring('hello', 5)", .string("")),
        ("substring('hello', 1.9, 2)", .string("el")),
        ("substring('hello', 6)", .undefined),
        ("substring('hello', 2, 4)", .undefined),
        ("substring('hello', -1)", .undefined),
        ("substring('hello', 1, -1)", .undefined),
        ("substring(undefined, 1)", .undefined),
        ("index_of('hello', 'l')", .number(2)),
        ("index_of('hello', 'z')", .number(-1)),
        ("index_of('hello', '')", .number(0)),
        ("index_of('', 'a')", .number(-1)),
        ("index_of('hello', undefined)", .undefined),
        ("starts_with('hello', 'he')", .bool(true)),
        ("starts_with('hello', 'lo')", .bool(false)),
        ("ends_with('hello', 'lo')", .bool(true)),
        ("ends_with('hello', 'he')", .bool(false)),
        ("contains('hello', 'ell')", .bool(true)),
        ("contains('hello', 'xyz')", .bool(false)),
        ("contains(undefined, 'x')", .undefined),
        ("starts_with($body.s, 'a')", .bool(true)),
    ])
    func strings(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, Self.typed) == expected)
    }

    @Test(arguments: ["IS_DEFINED(1)", "Is_Defined(1)", "is_defined(1)"])
    func functionNamesIgnoreCase(expression: String) throws {
        #expect(try RouteTestSupport.value(expression) == .bool(true))
    }

    @Test func everyFunctionHasARouteName() {
        for function in RouteFunction.allCases {
            #expect(RouteFunction(routeName: function.rawValue.uppercased()) == function)
        }
        #expect(RouteFunction(routeName: "is_array") == nil)
    }
}

@Suite struct RouteUndefinedTests {
    /// Every function answers `undefined` for `undefined` arguments, except the `is_…` family, which answers false.
    @Test(arguments: RouteFunction.allCases)
    func functionsGivenUndefined(_ function: RouteFunction) {
        let call = RouteExpression.call(
            function, Array(repeating: .literal(.undefined), count: function.arity.lowerBound))
        let expected: RouteValue = function.rawValue.hasPrefix("is_") ? .bool(false) : .undefined
        #expect(call.evaluate(RouteTestSupport.deviceMessage()) == expected)
    }

    /// Every operator spreads `undefined`, except `??`, which falls back to its right side.
    @Test(arguments: RouteBinaryOperator.allCases)
    func operatorsGivenUndefined(_ op: RouteBinaryOperator) {
        let message = RouteTestSupport.deviceMessage()
        let right: RouteExpression = .literal(op == .concatenate ? .string("a") : .number(1))
        let leftUndefined = RouteExpression.binary(op, .literal(.undefined), right)
        let rightUndefined = RouteExpression.binary(op, right, .literal(.undefined))
        #expect(leftUndefined.evaluate(message) == (op == .coalesce ? right.evaluate(message) : .undefined))
        #expect(rightUndefined.evaluate(message) == (op == .coalesce ? right.evaluate(message) : .undefined))
    }
}
