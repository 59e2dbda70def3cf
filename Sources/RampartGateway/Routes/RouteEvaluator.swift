import Foundation

/// Evaluates one expression against one message, parsing a JSON body at most once.
struct RouteEvaluator {
    let message: RouteMessage
    private var parsedBody: RouteJSONValue??

    init(message: RouteMessage) {
        self.message = message
    }

    mutating func evaluate(_ expression: RouteExpression) -> RouteValue {
        switch expression {
        case .literal(let value):
            return value
        case .applicationProperty(let name):
            return RouteMessage.lookUp(name, in: message.applicationProperties).map(RouteValue.string) ?? .undefined
        case .systemProperty(let name, let escaped):
            if !escaped, let value = RouteMessage.lookUp("$" + name, in: message.applicationProperties) {
                return .string(value)
            }
            return RouteMessage.lookUp(name, in: message.systemProperties).map(RouteValue.string) ?? .undefined
        case .body(let path, let escaped):
            if !escaped, let value = RouteMessage.lookUp("$" + path.spelling, in: message.applicationProperties) {
                return .string(value)
            }
            return bodyValue(at: path)
        case .unary(.negate, let operand):
            guard case .number(let value) = evaluate(operand) else { return .undefined }
            return .number(-value)
        case .unary(.not, let operand):
            guard case .bool(let value) = evaluate(operand) else { return .undefined }
            return .bool(!value)
        case .binary(.and, let left, let right):
            let lhs = Self.truth(evaluate(left))
            if lhs == false { return .bool(false) }
            let rhs = Self.truth(evaluate(right))
            if rhs == false { return .bool(false) }
            return lhs == true && rhs == true ? .bool(true) : .undefined
        case .binary(.or, let left, let right):
            let lhs = Self.truth(evaluate(left))
            if lhs == true { return .bool(true) }
            let rhs = Self.truth(evaluate(right))
            if rhs == true { return .bool(true) }
            return lhs == false && rhs == false ? .bool(false) : .undefined
        case .binary(.coalesce, let left, let right):
            let lhs = evaluate(left)
            return lhs.isDefined ? lhs : evaluate(right)
        case .binary(let op, let left, let right):
            return Self.apply(op, evaluate(left), evaluate(right))
        case .call(let function, let arguments):
            var values: [RouteValue] = []
            values.reserveCapacity(arguments.count)
            for argument in arguments { values.append(evaluate(argument)) }
            return Self.call(function, values)
        }
    }

    /// `true`, `false`, or nil for anything else, which three-valued logic treats as unknown.
    private static func truth(_ value: RouteValue) -> Bool? {
        if case .bool(let bool) = value { return bool }
        return nil
    }

    // MARK: - Body

    /// Reads a `$body` path when the message says its body is JSON in a Unicode encoding, as edgeHub requires;
    /// otherwise, or when the path is missing or lands on an object or array, the value is `undefined`.
    private mutating func bodyValue(at path: RouteBodyPath) -> RouteValue {
        if parsedBody == nil { parsedBody = Self.parseBody(message) }
        guard let body = parsedBody ?? nil, let value = body.value(at: path) else { return .undefined }
        switch value {
        case .null: return .null
        case .bool(let bool): return .bool(bool)
        case .number(let number): return .finite(number)
        case .string(let string): return .string(string)
        case .array, .object: return .undefined
        }
    }

    private static func parseBody(_ message: RouteMessage) -> RouteJSONValue? {
        guard let contentType = RouteMessage.lookUp("contentType", in: message.systemProperties),
            contentType.lowercased() == "application/json",
            let encoding = RouteMessage.lookUp("contentEncoding", in: message.systemProperties),
            let text = decode(message.body, encoding: encoding.lowercased())
        else { return nil }
        var utf8 = Array(text.utf8)
        if utf8.starts(with: [0xEF, 0xBB, 0xBF]) { utf8.removeFirst(3) }
        return RouteJSONValue.parseObject(utf8)
    }

    /// Decodes a body in the encodings IoT Hub allows for JSON; UTF-16 and UTF-32 are little-endian, as .NET's
    /// `Encoding.Unicode` and `Encoding.UTF32` that edgeHub uses.
    private static func decode(_ body: [UInt8], encoding: String) -> String? {
        switch encoding {
        case "utf-8", "utf8":
            return String(validating: body, as: UTF8.self)
        case "utf-16", "utf16":
            guard body.count % 2 == 0 else { return nil }
            let units = stride(from: 0, to: body.count, by: 2).map { UInt16(body[$0]) | UInt16(body[$0 + 1]) << 8 }
            return String(validating: units, as: UTF16.self)
        case "utf-32", "utf32":
            guard body.count % 4 == 0 else { return nil }
            let units = stride(from: 0, to: body.count, by: 4).map {
                UInt32(body[$0]) | UInt32(body[$0 + 1]) << 8 | UInt32(body[$0 + 2]) << 16 | UInt32(body[$0 + 3]) << 24
            }
            return String(validating: units, as: UTF32.self)
        default:
            return nil
        }
    }

    // MARK: - Operators

    private static func apply(_ op: RouteBinaryOperator, _ left: RouteValue, _ right: RouteValue) -> RouteValue {
        switch op {
        case .multiply, .divide, .remainder, .add, .subtract:
            guard case .number(let lhs) = left, case .number(let rhs) = right else { return .undefined }
            switch op {
            case .multiply: return .finite(lhs * rhs)
            case .divide: return .finite(lhs / rhs)
            case .remainder: return .finite(lhs.truncatingRemainder(dividingBy: rhs))
            case .add: return .finite(lhs + rhs)
            default: return .finite(lhs - rhs)
            }
        case .concatenate:
            guard case .string(let lhs) = left, case .string(let rhs) = right else { return .undefined }
            return .string(lhs + rhs)
        case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual:
            guard let order = compare(left, right) else { return .undefined }
            switch op {
            case .less: return .bool(order < 0)
            case .lessOrEqual: return .bool(order <= 0)
            case .greater: return .bool(order > 0)
            case .greaterOrEqual: return .bool(order >= 0)
            case .equal: return .bool(order == 0)
            default: return .bool(order != 0)
            }
        case .and, .or, .coalesce:
            preconditionFailure("\(op) is evaluated lazily")
        }
    }

    /// Orders two values of the same type: numbers numerically, strings by Unicode scalar (ordinal, as edgeHub),
    /// `false` before `true`, and `null` equal to `null`. Values of different types, or `undefined`, have no
    /// order, so comparing them is `undefined`.
    private static func compare(_ left: RouteValue, _ right: RouteValue) -> Int? {
        switch (left, right) {
        case (.number(let lhs), .number(let rhs)):
            return lhs < rhs ? -1 : lhs > rhs ? 1 : 0
        case (.string(let lhs), .string(let rhs)):
            if lhs.unicodeScalars.elementsEqual(rhs.unicodeScalars) { return 0 }
            return lhs.unicodeScalars.lexicographicallyPrecedes(rhs.unicodeScalars) ? -1 : 1
        case (.bool(let lhs), .bool(let rhs)):
            return lhs == rhs ? 0 : lhs ? 1 : -1
        case (.null, .null):
            return 0
        default:
            return nil
        }
    }

    // MARK: - Functions

    private static func call(_ function: RouteFunction, _ arguments: [RouteValue]) -> RouteValue {
        switch function {
        case .isDefined: return .bool(arguments[0].isDefined)
        case .isNull: return .bool(arguments[0] == .null)
        case .isBool: if case .bool = arguments[0] { return .bool(true) } else { return .bool(false) }
        case .isNumber: if case .number = arguments[0] { return .bool(true) } else { return .bool(false) }
        case .isString: if case .string = arguments[0] { return .bool(true) } else { return .bool(false) }
        case .asNumber: return asNumber(arguments[0])
        case .abs, .exp, .power, .square, .ceiling, .floor, .sign, .sqrt: return math(function, arguments)
        case .concat, .length, .lower, .upper, .substring, .indexOf, .startsWith, .endsWith, .contains:
            return strings(function, arguments)
        }
    }

    private static func math(_ function: RouteFunction, _ arguments: [RouteValue]) -> RouteValue {
        var numbers: [Double] = []
        for argument in arguments {
            guard case .number(let number) = argument else { return .undefined }
            numbers.append(number)
        }
        let x = numbers[0]
        switch function {
        case .abs: return .finite(Swift.abs(x))
        case .exp: return .finite(Foundation.exp(x))
        case .power: return .finite(Foundation.pow(x, numbers[1]))
        case .square: return .finite(x * x)
        case .ceiling: return .finite(x.rounded(.up))
        case .floor: return .finite(x.rounded(.down))
        case .sign: return .number(x > 0 ? 1 : x < 0 ? -1 : 0)
        case .sqrt: return .finite(x.squareRoot())
        default: preconditionFailure("\(function) is not a math function")
        }
    }

    /// `as_number`: numbers pass through; strings in decimal notation, with optional sign, fraction, exponent and
    /// surrounding whitespace, convert; anything else is `undefined`.
    private static func asNumber(_ value: RouteValue) -> RouteValue {
        switch value {
        case .number:
            return value
        case .string(let text):
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard isDecimal(trimmed), let number = Double(trimmed) else { return .undefined }
            return .finite(number)
        default:
            return .undefined
        }
    }

    /// `[+-]? digits? (. digits)? ([eE] [+-]? digits)?` with at least one mantissa digit, which keeps out the
    /// `inf`, `nan` and hexadecimal forms that `Double.init` would also accept.
    private static func isDecimal(_ text: String) -> Bool {
        var scalars = Substring(text).unicodeScalars[...]
        func digits() -> Int {
            var count = 0
            while let first = scalars.first, RouteLexer.isDigit(first) {
                scalars.removeFirst()
                count += 1
            }
            return count
        }
        if let sign = scalars.first, sign == "+" || sign == "-" { scalars.removeFirst() }
        var mantissa = digits()
        if scalars.first == "." {
            scalars.removeFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if let e = scalars.first, e == "e" || e == "E" {
            scalars.removeFirst()
            if let sign = scalars.first, sign == "+" || sign == "-" { scalars.removeFirst() }
            guard digits() > 0 else { return false }
        }
        return scalars.isEmpty
    }

    /// String functions count and index in Unicode scalars and compare ordinally, never by locale.
    private static func strings(_ function: RouteFunction, _ arguments: [RouteValue]) -> RouteValue {
        guard case .string(let text) = arguments[0] else { return .undefined }
        let scalars = Array(text.unicodeScalars)
        switch function {
        case .length:
            return .number(Double(scalars.count))
        case .lower:
            return .string(text.lowercased())
        case .upper:
            return .string(text.uppercased())
        case .concat:
            var joined = ""
            for argument in arguments {
                guard case .string(let part) = argument else { return .undefined }
                joined += part
            }
            return .string(joined)
        case .substring:
            return substring(scalars, Array(arguments.dropFirst()))
        case .indexOf, .startsWith, .endsWith, .contains:
            guard case .string(let other) = arguments[1] else { return .undefined }
            let fragment = Array(other.unicodeScalars)
            switch function {
            case .startsWith: return .bool(scalars.starts(with: fragment))
            case .endsWith: return .bool(scalars.reversed().starts(with: fragment.reversed()))
            case .contains: return .bool(firstIndex(of: fragment, in: scalars) != nil)
            default: return .number(Double(firstIndex(of: fragment, in: scalars) ?? -1))
            }
        default:
            preconditionFailure("\(function) is not a string function")
        }
    }

    /// `substring(s, start [, length])`, `undefined` when the range falls outside the string. Fractions truncate
    /// toward zero, as edgeHub's integer conversion does.
    private static func substring(_ scalars: [Unicode.Scalar], _ bounds: [RouteValue]) -> RouteValue {
        var integers: [Int] = []
        for bound in bounds {
            guard case .number(let number) = bound, number.magnitude < 1e15 else { return .undefined }
            integers.append(Int(number.rounded(.towardZero)))
        }
        let start = integers[0]
        let length = integers.count > 1 ? integers[1] : scalars.count - start
        guard start >= 0, start <= scalars.count, length >= 0, length <= scalars.count - start else {
            return .undefined
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[start..<start + length])
        return .string(String(view))
    }

    private static func firstIndex(of fragment: [Unicode.Scalar], in scalars: [Unicode.Scalar]) -> Int? {
        guard fragment.count <= scalars.count else { return nil }
        for start in 0...(scalars.count - fragment.count)
        where scalars[start..<start + fragment.count].elementsEqual(fragment) {
            return start
        }
        return nil
    }
}
