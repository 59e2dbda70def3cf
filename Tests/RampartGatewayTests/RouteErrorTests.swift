import Testing

@testable import RampartGateway

/// One parse failure: the route, and the code, place and message words a user should see.
struct RouteErrorCase: CustomTestStringConvertible, Sendable {
    var route: String
    var code: RouteError.Code
    var line: Int
    var column: Int
    var says: String

    var testDescription: String { "\(code) in \(route.debugDescription)" }
}

@Suite struct RouteErrorTests {
    @Test func errorDescriptionNamesLineAndColumn() throws {
        let error = try #require(RouteTestSupport.parseError("FROM /messages/* WHERE a = 'x' INT $upstream"))
        #expect(error.description == "line 1, column 32: expected INTO after the condition, found 'INT'")
        #expect(error.code == .unexpectedToken)
    }

    @Test(arguments: [
        // Lexical errors.
        RouteErrorCase(
            route: "FROM /* WHERE a = 'abc INTO $upstream", code: .unterminatedString, line: 1, column: 19,
            says: "unterminated string"),
        RouteErrorCase(
            route: "FROM /* WHERE a = \"abc INTO $upstream", code: .unterminatedString, line: 1, column: 19,
            says: "closing \""),
        RouteErrorCase(
            route: "FROM /* WHERE a = 1 # 2 INTO $upstream", code: .unknownCharacter, line: 1, column: 21,
            says: "unexpected character '#'"),
        RouteErrorCase(
            route: "FROM /* WHERE a ! 'b' INTO $upstream", code: .unknownCharacter, line: 1, column: 17,
            says: "'!='"),
        RouteErrorCase(
            route: "FROM /* WHERE a = 'x\\n' INTO $upstream", code: .invalidEscape, line: 1, column: 21,
            says: "invalid escape '\\n'"),
        RouteErrorCase(
            route: "FROM /* WHERE a = '\\u12' INTO $upstream", code: .invalidEscape, line: 1, column: 20,
            says: "four hexadecimal digits"),
        RouteErrorCase(
            route: "FROM /* WHERE 12abc = 1 INTO $upstream", code: .invalidNumber, line: 1, column: 15,
            says: "invalid number '12abc'"),
        RouteErrorCase(
            route: "FROM /* WHERE 1.2.3 = 1 INTO $upstream", code: .invalidNumber, line: 1, column: 15,
            says: "invalid number"),
        RouteErrorCase(
            route: "FROM /* WHERE $ = 'a' INTO $upstream", code: .unexpectedToken, line: 1, column: 15,
            says: "after '$'"),
        // Statement structure.
        RouteErrorCase(
            route: "/messages/* INTO $upstream", code: .unexpectedToken, line: 1, column: 1,
            says: "expected FROM at the start of the route, found '/'"),
        RouteErrorCase(
            route: "", code: .unexpectedToken, line: 1, column: 1,
            says: "expected FROM at the start of the route, found the end of the route"),
        RouteErrorCase(
            route: "SELECT FROM /* INTO $upstream", code: .unexpectedToken, line: 1, column: 8,
            says: "expected '*' after SELECT"),
        RouteErrorCase(
            route: "FROM INTO $upstream", code: .invalidSource, line: 1, column: 6,
            says: "expected a source path such as /messages/* after FROM, found 'INTO'"),
        RouteErrorCase(
            route: "FROM", code: .invalidSource, line: 1, column: 5,
            says: "found the end of the route"),
        RouteErrorCase(
            route: "FROM /messages/*/x INTO $upstream", code: .invalidSource, line: 1, column: 16,
            says: "'*' may only be the whole last segment"),
        RouteErrorCase(
            route: "FROM //messages INTO $upstream", code: .invalidSource, line: 1, column: 7,
            says: "expected a path segment"),
        RouteErrorCase(
            route: "FROM / INTO $upstream", code: .invalidSource, line: 1, column: 7,
            says: "expected a path segment"),
        RouteErrorCase(
            route: "FROM /messages/a(b) INTO $upstream", code: .invalidSource, line: 1, column: 17,
            says: "unexpected character '('"),
        RouteErrorCase(
            route: "FROM /messages/*", code: .unexpectedToken, line: 1, column: 17,
            says: "expected WHERE or INTO after the source, found the end of the route"),
        RouteErrorCase(
            route: "FROM /messages/* WHEN a = 'b' INTO $upstream", code: .unexpectedToken, line: 1, column: 18,
            says: "expected WHERE or INTO after the source, found 'WHEN'"),
        RouteErrorCase(
            route: "FROM /* WHERE INTO $upstream", code: .unexpectedToken, line: 1, column: 15,
            says: "expected a condition after WHERE, found 'INTO'"),
        RouteErrorCase(
            route: "FROM /* WHERE a = 'b'", code: .unexpectedToken, line: 1, column: 22,
            says: "expected INTO after the condition, found the end of the route"),
        RouteErrorCase(
            route: "FROM /* INTO $upstream extra", code: .unexpectedToken, line: 1, column: 24,
            says: "expected the end of the route after the sink, found 'extra'"),
        // Sinks.
        RouteErrorCase(
            route: "FROM /* INTO $downstream", code: .invalidSink, line: 1, column: 14,
            says: "unknown sink '$downstream'"),
        RouteErrorCase(
            route: "FROM /* INTO Somewhere", code: .unexpectedToken, line: 1, column: 14,
            says: "expected $upstream or BrokeredEndpoint"),
        RouteErrorCase(
            route: "FROM /* INTO BrokeredEndpoint(\"/modules/m/outputs/o\")", code: .invalidSink, line: 1,
            column: 31, says: "\"/modules/{module}/inputs/{input}\""),
        RouteErrorCase(
            route: "FROM /* INTO BrokeredEndpoint(\"/modules//inputs/i\")", code: .invalidSink, line: 1,
            column: 31, says: "BrokeredEndpoint needs a path"),
        RouteErrorCase(
            route: "FROM /* INTO BrokeredEndpoint(/modules/m/inputs/i)", code: .unexpectedToken, line: 1,
            column: 31, says: "expected a quoted path"),
        RouteErrorCase(
            route: "FROM /* INTO BrokeredEndpoint(\"/modules/m/inputs/i\"", code: .unexpectedToken, line: 1,
            column: 52, says: "expected ')' after the BrokeredEndpoint path"),
        // Parentheses.
        RouteErrorCase(
            route: "FROM /* WHERE (a = '1' INTO $upstream", code: .unexpectedToken, line: 1, column: 24,
            says: "expected ')' to close the '(' at line 1, column 15, found 'INTO'"),
        RouteErrorCase(
            route: "FROM /* WHERE a = '1') INTO $upstream", code: .unexpectedToken, line: 1, column: 22,
            says: "unmatched ')'"),
        RouteErrorCase(
            route: "FROM /* WHERE () INTO $upstream", code: .unexpectedToken, line: 1, column: 16,
            says: "expected a value, property, function call or '(' after '(', found ')'"),
        RouteErrorCase(
            route: "FROM /* WHERE is_defined(a INTO $upstream", code: .unexpectedToken, line: 1, column: 28,
            says: "expected ',' or ')' in the arguments of is_defined, found 'INTO'"),
        RouteErrorCase(
            route: "FROM /* WHERE {connectionDeviceId} = 'd' INTO $upstream", code: .unexpectedToken, line: 1,
            column: 16, says: "expected a $name inside '{ }'"),
        // Multi-line routes report the line.
        RouteErrorCase(
            route: "FROM /messages/*\nWHERE a = 'x'\n  AND b =\nINTO $upstream", code: .unexpectedToken,
            line: 4, column: 1, says: "expected a value, property, function call or '(' after '=', found 'INTO'"),
        RouteErrorCase(
            route: "FROM /messages/*\r\nWHERE a = 'x'\r\n  AND b = 'y' + 1\r\n INTO $upstream", code: .typeMismatch,
            line: 3, column: 15, says: "'+' needs a number on both sides, but its left side is a string"),
        // Functions.
        RouteErrorCase(
            route: "FROM /* WHERE foo(1) INTO $upstream", code: .unknownFunction, line: 1, column: 15,
            says: "unknown function 'foo'"),
        RouteErrorCase(
            route: "FROM /* WHERE power(2) = 4 INTO $upstream", code: .wrongArgumentCount, line: 1, column: 15,
            says: "power takes 2 arguments, found 1"),
        RouteErrorCase(
            route: "FROM /* WHERE\n  IS_DEFINED() INTO $upstream", code: .wrongArgumentCount, line: 2, column: 3,
            says: "is_defined takes 1 argument, found 0"),
        RouteErrorCase(
            route: "FROM /* WHERE concat('a') = 'a' INTO $upstream", code: .wrongArgumentCount, line: 1,
            column: 15, says: "concat takes at least 2 arguments, found 1"),
        RouteErrorCase(
            route: "FROM /* WHERE substring('a', 1, 2, 3) = 'a' INTO $upstream", code: .wrongArgumentCount,
            line: 1, column: 15, says: "substring takes 2 or 3 arguments, found 4"),
        RouteErrorCase(
            route: "FROM /* WHERE abs(reading) = 1 INTO $upstream", code: .typeMismatch, line: 1, column: 19,
            says: "abs needs a number as its argument, found a string; properties are strings"),
        RouteErrorCase(
            route: "FROM /* WHERE starts_with(name, 1) INTO $upstream", code: .typeMismatch, line: 1, column: 33,
            says: "starts_with needs a string as argument 2, found a number"),
        // Types known from the route text alone.
        RouteErrorCase(
            route: "FROM /* WHERE temperature > 50 INTO $upstream", code: .typeMismatch, line: 1, column: 27,
            says: "'>' compares a string with a number"),
        RouteErrorCase(
            route: "FROM /* WHERE $connectionModuleId = null INTO $upstream", code: .typeMismatch, line: 1,
            column: 35, says: "is_defined"),
        RouteErrorCase(
            route: "FROM /* WHERE NOT status = 'ok' INTO $upstream", code: .typeMismatch, line: 1, column: 15,
            says: "NOT (a = b)"),
        RouteErrorCase(
            route: "FROM /* WHERE a = 'x' AND b INTO $upstream", code: .typeMismatch, line: 1, column: 23,
            says: "'AND' needs Booleans on both sides, but its right side is a string"),
        RouteErrorCase(
            route: "FROM /* WHERE 'a' || 1 = 'a1' INTO $upstream", code: .typeMismatch, line: 1, column: 19,
            says: "'||' needs a string on both sides"),
        RouteErrorCase(
            route: "FROM /* WHERE - name = 1 INTO $upstream", code: .typeMismatch, line: 1, column: 15,
            says: "'-' needs a number"),
        RouteErrorCase(
            route: "FROM /* WHERE severity INTO $upstream", code: .typeMismatch, line: 1, column: 15,
            says: "the condition is a string, so it is never true"),
        // Body paths.
        RouteErrorCase(
            route: "FROM /* WHERE $body. = 1 INTO $upstream", code: .invalidBodyPath, line: 1, column: 21,
            says: "expected a member name"),
        RouteErrorCase(
            route: "FROM /* WHERE $body.a..b = 1 INTO $upstream", code: .invalidBodyPath, line: 1, column: 23,
            says: "expected a member name"),
        RouteErrorCase(
            route: "FROM /* WHERE $body.a[x] = 1 INTO $upstream", code: .invalidBodyPath, line: 1, column: 23,
            says: "expected an array index"),
        RouteErrorCase(
            route: "FROM /* WHERE $body.a[0][1] = 1 INTO $upstream", code: .invalidBodyPath, line: 1, column: 25,
            says: "expected '.' between members"),
        RouteErrorCase(
            route: "FROM /* WHERE $body[0] = 'Feb' INTO $upstream", code: .invalidBodyPath, line: 1, column: 20,
            says: "$body.values[0]"),
    ])
    func parseErrorsPointAtTheOffendingToken(_ testCase: RouteErrorCase) throws {
        let error = try #require(RouteTestSupport.parseError(testCase.route))
        #expect(error.code == testCase.code)
        #expect(error.line == testCase.line)
        #expect(error.column == testCase.column)
        #expect(error.message.contains(testCase.says), "\(error)")
    }

    @Test func errorsCompareByCode() {
        let first = RouteError(.invalidSink, line: 1, column: 2, message: "one")
        let second = RouteError(.invalidSink, line: 3, column: 4, message: "two")
        #expect(first == second)
        #expect(first != RouteError(.invalidSource, line: 1, column: 2, message: "one"))
        #expect(Set([first, second]).count == 1)
    }
}
