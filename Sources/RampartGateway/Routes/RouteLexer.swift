/// One token of route text, with the place it starts.
struct RouteToken: Sendable {
    /// Words the grammar reserves; matched ignoring case.
    enum Keyword: String, Sendable {
        case select, from, `where`, into, and, or, not
    }

    /// Punctuation and operators.
    enum Symbol: String, Sendable {
        case openParen = "("
        case closeParen = ")"
        case openBrace = "{"
        case closeBrace = "}"
        case comma = ","
        case star = "*"
        case slash = "/"
        case percent = "%"
        case plus = "+"
        case minus = "-"
        case concatenate = "||"
        case coalesce = "??"
        case equal = "="
        case notEqual = "!="
        case lessGreater = "<>"
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    enum Kind: Sendable, Equatable {
        /// A bare name: an application property, a function, or `BrokeredEndpoint`.
        case name(String)
        case keyword(Keyword)
        /// `$…`, holding what follows the `$` (which may contain `.`, `[` and `]`).
        case dollar(String)
        case string(String)
        case number(Double)
        /// `true`, `false`, `null` or `undefined`, which are lowercase only.
        case literal(RouteValue)
        case symbol(Symbol)
        case end
    }

    var kind: Kind
    /// The token as written, for error messages.
    var text: String
    var line: Int
    var column: Int

    /// How an error message names this token: `'text'`, or `the end of the route`.
    var found: String {
        if case .end = kind { return "the end of the route" }
        let shown = text.unicodeScalars.count > 40 ? String(text.unicodeScalars.prefix(37)) + "..." : text
        return "'\(shown)'"
    }
}

/// Splits route text into tokens on demand, so that the parser can read the `FROM` path raw.
///
/// Columns count Unicode scalars; only `\n` starts a new line, so `\r\n` counts once.
struct RouteLexer {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private(set) var line = 1
    private(set) var column = 1

    init(_ text: String) {
        self.scalars = Array(text.unicodeScalars)
    }

    /// Reads the next token.
    mutating func next() throws(RouteError) -> RouteToken {
        skipWhitespace()
        let startLine = line
        let startColumn = column
        let start = index
        func token(_ kind: RouteToken.Kind) -> RouteToken {
            RouteToken(kind: kind, text: text(from: start), line: startLine, column: startColumn)
        }
        func fail(_ code: RouteError.Code, _ message: String) -> RouteError {
            RouteError(code, line: startLine, column: startColumn, message: message)
        }

        guard let scalar = peek() else { return token(.end) }
        switch scalar {
        case "'", "\"":
            let value = try scanString()
            return token(.string(value))
        case "0"..."9":
            return token(.number(try scanNumber()))
        case ".":
            guard let after = peek(1), Self.isDigit(after) else {
                advance()
                throw fail(.unknownCharacter, "unexpected character '.'; a number needs a digit before or after '.'")
            }
            return token(.number(try scanNumber()))
        case "$":
            advance()
            while let next = peek(), Self.isNameContinuation(next) || next == "[" || next == "]" { advance() }
            guard index > start + 1 else {
                throw fail(.unexpectedToken, "expected a system property name or $body path after '$'")
            }
            return token(.dollar(text(from: start + 1)))
        default:
            break
        }
        if Self.isNameStart(scalar) {
            while let next = peek(), Self.isNameContinuation(next) { advance() }
            let word = text(from: start)
            if let keyword = RouteToken.Keyword(rawValue: word.lowercased()) { return token(.keyword(keyword)) }
            switch word {
            case "true": return token(.literal(.bool(true)))
            case "false": return token(.literal(.bool(false)))
            case "null": return token(.literal(.null))
            case "undefined": return token(.literal(.undefined))
            default: return token(.name(word))
            }
        }

        advance()
        let second = peek()
        func pair(_ symbol: RouteToken.Symbol) -> RouteToken {
            advance()
            return token(.symbol(symbol))
        }
        switch scalar {
        case "(": return token(.symbol(.openParen))
        case ")": return token(.symbol(.closeParen))
        case "{": return token(.symbol(.openBrace))
        case "}": return token(.symbol(.closeBrace))
        case ",": return token(.symbol(.comma))
        case "*": return token(.symbol(.star))
        case "/": return token(.symbol(.slash))
        case "%": return token(.symbol(.percent))
        case "+": return token(.symbol(.plus))
        case "-": return token(.symbol(.minus))
        case "=": return token(.symbol(.equal))
        case "|" where second == "|": return pair(.concatenate)
        case "?" where second == "?": return pair(.coalesce)
        case "!" where second == "=": return pair(.notEqual)
        case "<" where second == "=": return pair(.lessOrEqual)
        case "<" where second == ">": return pair(.lessGreater)
        case "<": return token(.symbol(.less))
        case ">" where second == "=": return pair(.greaterOrEqual)
        case ">": return token(.symbol(.greater))
        case "|": throw fail(.unknownCharacter, "unexpected character '|'; string concatenation is '||'")
        case "?": throw fail(.unknownCharacter, "unexpected character '?'; coalesce is '??'")
        case "!": throw fail(.unknownCharacter, "unexpected character '!'; use NOT, or '!=' for 'not equal'")
        default:
            throw fail(.unknownCharacter, "unexpected character \(Self.show(scalar))")
        }
    }

    /// Reads the `FROM` path: the run of characters up to the next whitespace, or nil at the end of the text.
    mutating func nextWord() -> (text: String, line: Int, column: Int)? {
        skipWhitespace()
        guard peek() != nil else { return nil }
        let start = index
        let startLine = line
        let startColumn = column
        while let next = peek(), !next.properties.isWhitespace { advance() }
        return (text(from: start), startLine, startColumn)
    }

    // MARK: - Scalars

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    private mutating func advance() {
        if scalars[index] == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }

    private mutating func skipWhitespace() {
        while let next = peek(), next.properties.isWhitespace { advance() }
    }

    private func text(from start: Int) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[start..<index])
        return String(view)
    }

    // MARK: - Literals

    /// Reads a quoted string; edgeHub's escapes are `\'`, `\"`, `\\` and `\uXXXX`, and strings may span lines.
    private mutating func scanString() throws(RouteError) -> String {
        let quote = scalars[index]
        let startLine = line
        let startColumn = column
        advance()
        var value = String.UnicodeScalarView()
        var pendingHighSurrogate: (value: UInt32, line: Int, column: Int)?
        while true {
            guard let scalar = peek() else {
                throw RouteError(
                    .unterminatedString, line: startLine, column: startColumn,
                    message: "unterminated string: add a closing \(quote) to the string that starts here")
            }
            if scalar == quote && pendingHighSurrogate == nil {
                advance()
                return String(value)
            }
            guard scalar == "\\" else {
                if let pending = pendingHighSurrogate {
                    throw RouteError(
                        .invalidEscape, line: pending.line, column: pending.column,
                        message: "invalid escape: a high surrogate \\u must be followed by a low surrogate \\u")
                }
                value.append(scalar)
                advance()
                continue
            }
            let escapeLine = line
            let escapeColumn = column
            func invalid(_ message: String) -> RouteError {
                RouteError(.invalidEscape, line: escapeLine, column: escapeColumn, message: message)
            }
            advance()
            guard let escaped = peek() else { continue }  // reported as unterminated on the next pass
            if let pending = pendingHighSurrogate, escaped != "u" && escaped != "U" {
                throw RouteError(
                    .invalidEscape, line: pending.line, column: pending.column,
                    message: "invalid escape: a high surrogate \\u must be followed by a low surrogate \\u")
            }
            switch escaped {
            case "'", "\"", "\\":
                value.append(escaped)
                advance()
            case "u", "U":
                advance()
                var code: UInt32 = 0
                for _ in 0..<4 {
                    guard let digit = peek(), let nibble = Self.hexValue(digit) else {
                        throw invalid("invalid escape: \\u needs exactly four hexadecimal digits")
                    }
                    code = code << 4 | nibble
                    advance()
                }
                if let pending = pendingHighSurrogate {
                    guard (0xDC00...0xDFFF).contains(code) else {
                        throw invalid("invalid escape: a high surrogate \\u must be followed by a low surrogate \\u")
                    }
                    value.append(Unicode.Scalar(0x10000 + ((pending.value - 0xD800) << 10) + (code - 0xDC00))!)
                    pendingHighSurrogate = nil
                } else if (0xD800...0xDBFF).contains(code) {
                    pendingHighSurrogate = (code, escapeLine, escapeColumn)
                } else if let decoded = Unicode.Scalar(code) {
                    value.append(decoded)
                } else {
                    throw invalid("invalid escape: a low surrogate \\u must follow a high surrogate")
                }
            default:
                throw invalid(
                    "invalid escape '\\\(escaped)' in a string; the escapes are \\', \\\", \\\\ and \\uXXXX")
            }
        }
    }

    /// Reads a decimal (`12`, `1.5`, `.5`, `2e3`) or hexadecimal (`0x1F`) number. A leading `-` is an operator.
    private mutating func scanNumber() throws(RouteError) -> Double {
        let start = index
        let startLine = line
        let startColumn = column
        func invalid() -> RouteError {
            while let next = peek(), Self.isNameContinuation(next) { advance() }
            return RouteError(
                .invalidNumber, line: startLine, column: startColumn,
                message: "invalid number '\(text(from: start))'")
        }
        if peek() == "0", let x = peek(1), x == "x" || x == "X" {
            advance()
            advance()
            var value: UInt64 = 0
            var digits = 0
            while let next = peek(), let nibble = Self.hexValue(next) {
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 16)
                guard !overflow else { throw invalid() }
                value = shifted | UInt64(nibble)
                digits += 1
                advance()
            }
            guard digits > 0, !Self.endsNumberBadly(peek()) else { throw invalid() }
            return Double(value)
        }
        while let next = peek(), Self.isDigit(next) { advance() }
        if peek() == ".", let after = peek(1), Self.isDigit(after) {
            advance()
            while let next = peek(), Self.isDigit(next) { advance() }
        }
        if let e = peek(), e == "e" || e == "E" {
            var offset = 1
            if let sign = peek(1), sign == "+" || sign == "-" { offset = 2 }
            guard let digit = peek(offset), Self.isDigit(digit) else { throw invalid() }
            for _ in 0..<offset { advance() }
            while let next = peek(), Self.isDigit(next) { advance() }
        }
        guard !Self.endsNumberBadly(peek()), let value = Double(text(from: start)), value.isFinite else {
            throw invalid()
        }
        return value
    }

    // MARK: - Character classes

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool { ("0"..."9").contains(scalar) }

    /// Names start with a letter or `_`.
    static func isNameStart(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || scalar.properties.isAlphabetic
    }

    /// Names go on with letters, digits, `_`, `-` and `.`, as edgeHub's lexer allows, so `a-b` is one name
    /// and subtraction needs spaces: `a - b`.
    static func isNameContinuation(_ scalar: Unicode.Scalar) -> Bool {
        isNameStart(scalar) || scalar == "-" || scalar == "." || scalar.properties.generalCategory == .decimalNumber
    }

    /// A number may not run straight into a name: `12abc` and `1.2.3` are mistakes, not two tokens.
    private static func endsNumberBadly(_ scalar: Unicode.Scalar?) -> Bool {
        guard let scalar else { return false }
        return isNameStart(scalar) || isDigit(scalar) || scalar == "."
    }

    private static func hexValue(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar {
        case "0"..."9": scalar.value - 48
        case "a"..."f": scalar.value - 87
        case "A"..."F": scalar.value - 55
        default: nil
        }
    }

    /// Shows a character in a message, spelling out invisible ones.
    static func show(_ scalar: Unicode.Scalar) -> String {
        if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format {
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        return "'\(scalar)'"
    }
}
