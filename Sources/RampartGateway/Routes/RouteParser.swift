/// Parses `[SELECT *] FROM <source> [WHERE <condition>] INTO <sink>`.
///
/// The condition grammar and precedence follow edgeHub's `Condition.g4`. As edgeHub does, the parser also
/// knows each sub-expression's type where the route fixes it (properties are strings, literals are what they
/// are, `$body` paths are unknown until a message arrives) and rejects operators that can never apply, such as
/// `temperature > 50` on the string property `temperature`: that route would otherwise never select anything.
struct RouteParser {
    /// What the route text says about a value's type before any message arrives.
    enum StaticType: Equatable {
        case string, number, bool, null, undefined
        /// A `$body` value, or the result of `??` over different types.
        case unknown

        /// Whether a value of this type may turn out to be `expected` (or is `undefined`, which always may).
        func admits(_ expected: StaticType) -> Bool {
            self == expected || self == .unknown || self == .undefined
        }

        var phrase: String {
            switch self {
            case .string: "a string"
            case .number: "a number"
            case .bool: "a Boolean"
            case .null: "null"
            case .undefined: "undefined"
            case .unknown: "a value"
            }
        }
    }

    /// An expression with its static type and where it starts.
    struct Typed {
        var expression: RouteExpression
        var type: StaticType
        var line: Int
        var column: Int
    }

    private var lexer: RouteLexer
    private var lookahead: RouteToken?
    private var depth = 0

    init(_ text: String) throws(RouteError) {
        var line = 1
        var column = 1
        for (offset, scalar) in text.unicodeScalars.enumerated() {
            if offset == RouteStatement.maximumLength {
                throw RouteError(
                    .routeTooLong, line: line, column: column,
                    message: "the route is longer than \(RouteStatement.maximumLength) characters; "
                        + "shorten the condition or split it into several routes")
            }
            if scalar == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        self.lexer = RouteLexer(text)
    }

    // MARK: - Tokens

    private mutating func peek() throws(RouteError) -> RouteToken {
        if let lookahead { return lookahead }
        let token = try lexer.next()
        lookahead = token
        return token
    }

    @discardableResult
    private mutating func advance() throws(RouteError) -> RouteToken {
        let token = try peek()
        lookahead = nil
        return token
    }

    private func error(_ code: RouteError.Code, at token: RouteToken, _ message: String) -> RouteError {
        RouteError(code, line: token.line, column: token.column, message: message)
    }

    private func expected(_ what: String, found token: RouteToken) -> RouteError {
        error(.unexpectedToken, at: token, "expected \(what), found \(token.found)")
    }

    // MARK: - Statement

    mutating func parseStatement() throws(RouteError) -> RouteStatement {
        var token = try advance()
        if token.kind == .keyword(.select) {
            let star = try advance()
            guard star.kind == .symbol(.star) else {
                throw expected("'*' after SELECT (routes select whole messages)", found: star)
            }
            token = try advance()
        }
        guard token.kind == .keyword(.from) else {
            throw expected("FROM at the start of the route", found: token)
        }
        let source = try parseSource()

        var condition: RouteExpression?
        token = try advance()
        if token.kind == .keyword(.where) {
            condition = try parseCondition()
            token = try advance()
            guard token.kind == .keyword(.into) else {
                if token.kind == .symbol(.closeParen) {
                    throw error(.unexpectedToken, at: token, "unmatched ')': there is no '(' for it to close")
                }
                throw expected("INTO after the condition", found: token)
            }
        } else if token.kind != .keyword(.into) {
            throw expected("WHERE or INTO after the source", found: token)
        }

        let sink = try parseSink()
        let end = try advance()
        guard end.kind == .end else {
            throw expected("the end of the route after the sink", found: end)
        }
        return RouteStatement(source: source, condition: condition, sink: sink)
    }

    /// Reads the path after `FROM` raw, since `/` and `*` mean something else in conditions.
    private mutating func parseSource() throws(RouteError) -> String {
        let example = "a source path such as /messages/* after FROM"
        guard let word = lexer.nextWord() else {
            throw RouteError(
                .invalidSource, line: lexer.line, column: lexer.column,
                message: "expected \(example), found the end of the route")
        }
        guard word.text.hasPrefix("/") else {
            let found = RouteToken(kind: .name(word.text), text: word.text, line: word.line, column: word.column)
            throw RouteError(
                .invalidSource, line: word.line, column: word.column,
                message: "expected \(example), found \(found.found)")
        }
        func fail(at offset: Int, _ message: String) -> RouteError {
            RouteError(.invalidSource, line: word.line, column: word.column + offset, message: message)
        }
        let scalars = Array(word.text.unicodeScalars)
        var offset = 1
        var segmentStart = 1
        while offset <= scalars.count {
            let atEnd = offset == scalars.count
            if atEnd || scalars[offset] == "/" {
                let segment = scalars[segmentStart..<offset]
                if segment.isEmpty && !(atEnd && segmentStart > 1) {
                    throw fail(at: offset, "expected a path segment or '*' after '/' in the source")
                }
                if segment.contains("*") && (segment.count != 1 || !atEnd) {
                    throw fail(
                        at: segmentStart + segment.firstIndex(of: "*")! - segment.startIndex,
                        "'*' may only be the whole last segment of the source, as in /messages/*")
                }
                segmentStart = offset + 1
            } else if scalars[offset] != "*", Self.forbiddenInPaths.contains(scalars[offset]) {
                throw fail(at: offset, "unexpected character \(RouteLexer.show(scalars[offset])) in the source path")
            }
            offset += 1
        }
        return RouteStatement.normalizedSource(word.text)
    }

    /// Characters edgeHub does not allow in paths and names.
    private static let forbiddenInPaths: Set<Unicode.Scalar> = [
        "(", ")", "<", ">", "@", ",", ";", ":", "\\", "\"", "'", "[", "]", "?", "=", "{", "}",
    ]

    private mutating func parseSink() throws(RouteError) -> RouteSink {
        let usage = "$upstream or BrokeredEndpoint(\"/modules/{module}/inputs/{input}\")"
        let token = try advance()
        switch token.kind {
        case .dollar(let name) where name.lowercased() == "upstream":
            return .upstream
        case .dollar:
            throw error(.invalidSink, at: token, "unknown sink \(token.found); expected \(usage)")
        case .name(let name) where name.lowercased() == "brokeredendpoint":
            let open = try advance()
            guard open.kind == .symbol(.openParen) else {
                throw expected("'(' after BrokeredEndpoint", found: open)
            }
            let path = try advance()
            guard case .string(let text) = path.kind else {
                throw expected("a quoted path such as \"/modules/{module}/inputs/{input}\"", found: path)
            }
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 5, parts[0].isEmpty, parts[1].lowercased() == "modules",
                parts[3].lowercased() == "inputs", !parts[2].isEmpty, !parts[4].isEmpty,
                !text.unicodeScalars.contains(where: { $0.properties.isWhitespace })
            else {
                throw error(
                    .invalidSink, at: path,
                    "BrokeredEndpoint needs a path of the form \"/modules/{module}/inputs/{input}\", "
                        + "found \(path.found)")
            }
            let close = try advance()
            guard close.kind == .symbol(.closeParen) else {
                throw expected("')' after the BrokeredEndpoint path", found: close)
            }
            return .brokeredEndpoint(module: String(parts[2]), input: String(parts[4]))
        default:
            throw expected("\(usage) after INTO", found: token)
        }
    }

    /// Parses a whole text as one expression of any type, for tests and tools that evaluate sub-expressions.
    static func expression(_ text: String) throws(RouteError) -> RouteExpression {
        var parser = try RouteParser(text)
        let expression = try parser.parseExpression(after: "the start")
        let end = try parser.advance()
        guard end.kind == .end else { throw parser.expected("the end of the expression", found: end) }
        return expression.expression
    }

    // MARK: - Condition

    private mutating func parseCondition() throws(RouteError) -> RouteExpression {
        let first = try peek()
        if first.kind == .keyword(.into) || first.kind == .end {
            throw expected("a condition after WHERE", found: first)
        }
        let condition = try parseExpression(after: "WHERE")
        switch condition.type {
        case .string, .number, .null, .undefined:
            throw RouteError(
                .typeMismatch, line: condition.line, column: condition.column,
                message: "the condition is \(condition.type.phrase), so it is never true; "
                    + "compare it instead, for example processingPath = 'hot'")
        case .bool, .unknown:
            return condition.expression
        }
    }

    /// Precedence climbing over edgeHub's levels; operators of one level associate to the left.
    private mutating func parseExpression(minimumPrecedence: Int = 1, after context: String) throws(RouteError)
        -> Typed
    {
        var left = try parseUnary(after: context)
        while true {
            let token = try peek()
            guard let op = Self.binaryOperator(token), op.precedence >= minimumPrecedence else { return left }
            try advance()
            let right = try parseExpression(minimumPrecedence: op.precedence + 1, after: token.found)
            left = try combine(op, left, right, at: token)
        }
    }

    private static func binaryOperator(_ token: RouteToken) -> RouteBinaryOperator? {
        switch token.kind {
        case .symbol(.star): .multiply
        case .symbol(.slash): .divide
        case .symbol(.percent): .remainder
        case .symbol(.plus): .add
        case .symbol(.minus): .subtract
        case .symbol(.concatenate): .concatenate
        case .symbol(.less): .less
        case .symbol(.lessOrEqual): .lessOrEqual
        case .symbol(.greater): .greater
        case .symbol(.greaterOrEqual): .greaterOrEqual
        case .symbol(.equal): .equal
        case .symbol(.notEqual), .symbol(.lessGreater): .notEqual
        case .keyword(.and): .and
        case .keyword(.or): .or
        case .symbol(.coalesce): .coalesce
        default: nil
        }
    }

    /// Counts one level of nesting, refusing hostile input before it can exhaust the stack.
    private mutating func enter(_ token: RouteToken) throws(RouteError) {
        depth += 1
        if depth > RouteStatement.maximumNesting {
            throw error(
                .nestingTooDeep, at: token,
                "the condition nests deeper than \(RouteStatement.maximumNesting) levels of parentheses, "
                    + "function calls and prefix operators")
        }
    }

    private mutating func parseUnary(after context: String) throws(RouteError) -> Typed {
        let token = try peek()
        switch token.kind {
        case .symbol(.minus):
            try advance()
            try enter(token)
            defer { depth -= 1 }
            let operand = try parseUnary(after: "'-'")
            try require(.number, operand, of: "'-'", at: token)
            let negated: RouteExpression =
                if case .literal(.number(let value)) = operand.expression {
                    .literal(.number(-value))
                } else {
                    .unary(.negate, operand.expression)
                }
            return Typed(expression: negated, type: .number, line: token.line, column: token.column)
        case .keyword(.not):
            try advance()
            try enter(token)
            defer { depth -= 1 }
            let operand = try parseUnary(after: "NOT")
            if !operand.type.admits(.bool) && operand.type != .null {
                throw error(
                    .typeMismatch, at: token,
                    "NOT needs a Boolean, but the value after it is \(operand.type.phrase); NOT binds tightly, "
                        + "so write NOT (a = b)")
            }
            return Typed(
                expression: .unary(.not, operand.expression), type: .bool, line: token.line, column: token.column)
        default:
            return try parsePrimary(after: context)
        }
    }

    private mutating func parsePrimary(after context: String) throws(RouteError) -> Typed {
        let token = try advance()
        func typed(_ expression: RouteExpression, _ type: StaticType) -> Typed {
            Typed(expression: expression, type: type, line: token.line, column: token.column)
        }
        switch token.kind {
        case .number(let value):
            return typed(.literal(.number(value)), .number)
        case .string(let value):
            return typed(.literal(.string(value)), .string)
        case .literal(let value):
            switch value {
            case .bool: return typed(.literal(value), .bool)
            case .null: return typed(.literal(value), .null)
            default: return typed(.literal(value), .undefined)
            }
        case .name(let name):
            if try peek().kind == .symbol(.openParen) {
                return try parseCall(name, at: token)
            }
            return typed(.applicationProperty(name), .string)
        case .dollar(let name):
            return try typedReference(name, escaped: false, at: token)
        case .symbol(.openBrace):
            let inner = try advance()
            guard case .dollar(let name) = inner.kind else {
                throw expected("a $name inside '{ }', as in {$contentType}", found: inner)
            }
            let close = try advance()
            guard close.kind == .symbol(.closeBrace) else {
                throw expected("'}' after \(inner.found)", found: close)
            }
            var result = try typedReference(name, escaped: true, at: inner)
            result.line = token.line
            result.column = token.column
            return result
        case .symbol(.openParen):
            try enter(token)
            defer { depth -= 1 }
            var inner = try parseExpression(after: "'('")
            let close = try advance()
            guard close.kind == .symbol(.closeParen) else {
                throw expected("')' to close the '(' at line \(token.line), column \(token.column)", found: close)
            }
            inner.line = token.line
            inner.column = token.column
            return inner
        default:
            throw expected("a value, property, function call or '(' after \(context)", found: token)
        }
    }

    /// Resolves `$name`: a `$body.` path, or a system property.
    private func typedReference(_ name: String, escaped: Bool, at token: RouteToken) throws(RouteError) -> Typed {
        func typed(_ expression: RouteExpression, _ type: StaticType) -> Typed {
            Typed(expression: expression, type: type, line: token.line, column: token.column)
        }
        if name.lowercased().hasPrefix("body.") {
            return typed(.body(try parseBodyPath(name, at: token), escaped: escaped), .unknown)
        }
        if let bracket = name.unicodeScalars.firstIndex(where: { $0 == "[" || $0 == "]" }) {
            let offset = name.unicodeScalars.distance(from: name.unicodeScalars.startIndex, to: bracket)
            throw RouteError(
                .invalidBodyPath, line: token.line, column: token.column + 1 + offset,
                message: "'[ ]' may only index a name inside a $body path, as in $body.values[0]")
        }
        return typed(.systemProperty(name, escaped: escaped), .string)
    }

    /// Parses what follows `$body.` the way edgeHub's `JsonPath.g4` does: names joined by `.`, each with at
    /// most one `[index]`.
    private func parseBodyPath(_ spelling: String, at token: RouteToken) throws(RouteError) -> RouteBodyPath {
        let scalars = Array(spelling.unicodeScalars)
        var components: [RouteBodyPath.Component] = []
        var offset = 5  // after "body."
        func fail(_ message: String) -> RouteError {
            RouteError(.invalidBodyPath, line: token.line, column: token.column + 1 + offset, message: message)
        }
        while true {
            let start = offset
            while offset < scalars.count, scalars[offset] != ".", scalars[offset] != "[", scalars[offset] != "]" {
                offset += 1
            }
            guard offset > start else {
                throw fail("expected a member name in the $body path \(token.found)")
            }
            var name = String.UnicodeScalarView()
            name.append(contentsOf: scalars[start..<offset])
            components.append(.member(String(name)))
            if offset < scalars.count, scalars[offset] == "[" {
                offset += 1
                let digitsStart = offset
                while offset < scalars.count, RouteLexer.isDigit(scalars[offset]) { offset += 1 }
                guard offset > digitsStart, offset < scalars.count, scalars[offset] == "]",
                    offset - digitsStart <= 9
                else {
                    throw fail("expected an array index and ']' in the $body path \(token.found)")
                }
                var digits = ""
                digits.unicodeScalars.append(contentsOf: scalars[digitsStart..<offset])
                components.append(.index(Int(digits)!))
                offset += 1
            }
            if offset == scalars.count { break }
            guard scalars[offset] == "." else {
                throw fail("expected '.' between members of the $body path \(token.found)")
            }
            offset += 1
        }
        return RouteBodyPath(components: components, spelling: spelling)
    }

    private mutating func parseCall(_ name: String, at token: RouteToken) throws(RouteError) -> Typed {
        guard let function = RouteFunction(routeName: name) else {
            let known = RouteFunction.allCases.map(\.rawValue).joined(separator: ", ")
            throw error(.unknownFunction, at: token, "unknown function '\(name)'; the functions are \(known)")
        }
        let open = try advance()
        try enter(open)
        defer { depth -= 1 }
        var arguments: [Typed] = []
        if try peek().kind == .symbol(.closeParen) {
            try advance()
        } else {
            var context = "'\(name)('"
            while true {
                arguments.append(try parseExpression(after: context))
                let separator = try advance()
                if separator.kind == .symbol(.closeParen) { break }
                guard separator.kind == .symbol(.comma) else {
                    throw expected("',' or ')' in the arguments of \(name)", found: separator)
                }
                context = "','"
            }
        }
        guard function.arity.contains(arguments.count) else {
            let wanted =
                switch function.arity {
                case let arity where arity.upperBound == Int.max: "at least \(arity.lowerBound) arguments"
                case let arity where arity.count > 1: "\(arity.lowerBound) or \(arity.upperBound) arguments"
                case let arity: arity.lowerBound == 1 ? "1 argument" : "\(arity.lowerBound) arguments"
                }
            throw error(
                .wrongArgumentCount, at: token,
                "\(function.rawValue) takes \(wanted), found \(arguments.count)")
        }
        for (position, argument) in arguments.enumerated() {
            let accepted = Self.parameterTypes(function, position)
            guard accepted.contains(where: { argument.type.admits($0) }) else {
                let wanted = accepted.map(\.phrase).joined(separator: " or ")
                let place = arguments.count == 1 ? "its argument" : "argument \(position + 1)"
                var message = "\(function.rawValue) needs \(wanted) as \(place), found \(argument.type.phrase)"
                if argument.type == .string && accepted == [.number] {
                    message += "; properties are strings, so convert with as_number(...)"
                }
                throw RouteError(.typeMismatch, line: argument.line, column: argument.column, message: message)
            }
        }
        return Typed(
            expression: .call(function, arguments.map(\.expression)), type: Self.resultType(function),
            line: token.line, column: token.column)
    }

    private static func parameterTypes(_ function: RouteFunction, _ position: Int) -> [StaticType] {
        switch function {
        case .abs, .exp, .power, .square, .ceiling, .floor, .sign, .sqrt: [.number]
        case .asNumber: [.string, .number]
        case .isBool, .isDefined, .isNull, .isNumber, .isString: [.string, .number, .bool, .null]
        case .substring: position == 0 ? [.string] : [.number]
        case .concat, .length, .lower, .upper, .indexOf, .startsWith, .endsWith, .contains: [.string]
        }
    }

    private static func resultType(_ function: RouteFunction) -> StaticType {
        switch function {
        case .abs, .exp, .power, .square, .ceiling, .floor, .sign, .sqrt, .asNumber, .length, .indexOf: .number
        case .isBool, .isDefined, .isNull, .isNumber, .isString, .startsWith, .endsWith, .contains: .bool
        case .concat, .lower, .upper, .substring: .string
        }
    }

    // MARK: - Types

    private func require(_ expected: StaticType, _ operand: Typed, of op: String, at token: RouteToken)
        throws(RouteError)
    {
        guard !operand.type.admits(expected) else { return }
        var message = "\(op) needs \(expected.phrase), but its operand is \(operand.type.phrase)"
        if operand.type == .string && expected == .number {
            message += "; properties are strings, so convert with as_number(...)"
        }
        throw error(.typeMismatch, at: token, message)
    }

    private func combine(_ op: RouteBinaryOperator, _ left: Typed, _ right: Typed, at token: RouteToken)
        throws(RouteError) -> Typed
    {
        let name = token.found
        func mismatch(_ message: String) -> RouteError { error(.typeMismatch, at: token, message) }
        func needBoth(_ expected: StaticType) throws(RouteError) {
            for (side, operand) in [("left", left), ("right", right)] where !operand.type.admits(expected) {
                var message =
                    "\(name) needs \(expected.phrase) on both sides, but its \(side) side is "
                    + operand.type.phrase
                if expected == .number && operand.type == .string {
                    message +=
                        op == .add
                        ? "; join strings with '||', or convert with as_number(...)"
                        : "; properties are strings, so convert with as_number(...)"
                }
                throw mismatch(message)
            }
        }
        let type: StaticType
        switch op {
        case .multiply, .divide, .remainder, .add, .subtract:
            try needBoth(.number)
            type = .number
        case .concatenate:
            try needBoth(.string)
            type = .string
        case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual:
            let known: Set<StaticType> = [.string, .number, .bool, .null]
            if known.contains(left.type), known.contains(right.type), left.type != right.type {
                var message = "\(name) compares \(left.type.phrase) with \(right.type.phrase), which is never true"
                if Set([left.type, right.type]) == [.string, .number] {
                    message += "; properties are strings, so convert with as_number(...) or compare with a string"
                } else if left.type == .null || right.type == .null {
                    message += "; test for a missing property with is_defined(...)"
                }
                throw mismatch(message)
            }
            type = .bool
        case .and, .or:
            for (side, operand) in [("left", left), ("right", right)]
            where !operand.type.admits(.bool) && operand.type != .null {
                throw mismatch("\(name) needs Booleans on both sides, but its \(side) side is \(operand.type.phrase)")
            }
            type = .bool
        case .coalesce:
            type = left.type == .undefined ? right.type : left.type == right.type ? left.type : .unknown
        }
        return Typed(
            expression: .binary(op, left.expression, right.expression), type: type,
            line: left.line, column: left.column)
    }
}
