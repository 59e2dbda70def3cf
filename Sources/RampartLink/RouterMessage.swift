import RampartCore

/// One status report from the router control channel (docs/router-control-channel.md), parsed and range-checked.
///
/// The grammar is a strict subset of 3GPP TS 27.007 result codes plus one Rampart extension, `+RDATA`.
public enum RouterMessage: Sendable, Equatable {
    /// `+CSQ: <rssi>,<ber>`: rssi 0–31 or 99 (unknown); ber 0–7 or 99 (unknown).
    case signalQuality(rssi: Int, bitErrorRate: Int)
    /// `+CREG: [<n>,]<stat>`: stat 0–5.
    case registration(LinkFacts.Registration)
    /// `+COPS: <mode>,<format>,"<oper>",<AcT>`: mode 0–4, format 0 (long alphanumeric), AcT 0–13.
    case networkOperator(name: String, radio: LinkFacts.RadioTechnology)
    /// `+RDATA: <sent>,<received>`: the router's byte counters for the cellular link.
    case dataCounters(sent: Int64, received: Int64)

    /// The message type, for rate limits and counters.
    public var kind: Kind {
        switch self {
        case .signalQuality: .signalQuality
        case .registration: .registration
        case .networkOperator: .networkOperator
        case .dataCounters: .dataCounters
        }
    }

    /// The message types; the raw value is the line's prefix.
    public enum Kind: String, Sendable, CaseIterable {
        case signalQuality = "+CSQ"
        case registration = "+CREG"
        case networkOperator = "+COPS"
        case dataCounters = "+RDATA"
    }

    /// Folds this report into `facts`.
    public func apply(to facts: inout LinkFacts) {
        switch self {
        case .signalQuality(let rssi, let ber):
            facts.signalDBm = rssi == 99 ? nil : -113 + 2 * rssi
            facts.bitErrorRate = ber == 99 ? nil : ber
        case .registration(let registration):
            facts.registration = registration
        case .networkOperator(let name, let radio):
            facts.operatorName = name
            facts.radio = radio
        case .dataCounters(let sent, let received):
            facts.routerSentBytes = sent
            facts.routerReceivedBytes = received
        }
    }
}

/// Why a line from the router was not accepted.
public struct RouterLineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The failure classes, counted separately by the channel.
    public enum Code: String, Sendable, CaseIterable {
        /// Longer than ``RouterMessageParser/maximumLineLength``.
        case oversized
        /// Not one of the known prefixes: counted and dropped.
        case unknown
        /// A known prefix whose parameters break the grammar or a range.
        case malformed
        /// Over the per-type rate.
        case rateLimited
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Two errors are equal when their codes are.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}

/// The strict parser of one router line (without its line ending).
public enum RouterMessageParser {
    /// The longest line accepted, excluding CR LF. `+COPS` with a 32-character operator is 52.
    public static let maximumLineLength = 80
    /// The longest operator name accepted.
    public static let maximumOperatorLength = 32

    /// Parses one line.
    ///
    /// - Throws: ``RouterLineError`` `oversized`, `unknown` or `malformed`.
    public static func parse(_ line: some Collection<UInt8>) throws(RouterLineError) -> RouterMessage {
        guard line.count <= maximumLineLength else {
            throw RouterLineError(.oversized, "a line of \(line.count) bytes; at most \(maximumLineLength) are allowed")
        }
        let bytes = Array(line)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else {
            throw RouterLineError(.unknown, "not a status report")
        }
        let prefix = String(decoding: bytes[..<colon], as: UTF8.self)
        guard let kind = RouterMessage.Kind(rawValue: prefix) else {
            throw RouterLineError(.unknown, "unknown report \(printable(bytes[..<colon]))")
        }
        // Exactly one space after the colon, then the parameters.
        guard colon + 1 < bytes.count, bytes[colon + 1] == UInt8(ascii: " ") else {
            throw RouterLineError(.malformed, "\(prefix) must be followed by ': '")
        }
        var scanner = Scanner(bytes: bytes[(colon + 2)...], kind: kind)
        let message: RouterMessage
        switch kind {
        case .signalQuality:
            let rssi = try scanner.integer(digits: 2, "rssi")
            try scanner.comma()
            let ber = try scanner.integer(digits: 2, "ber")
            guard (0...31).contains(rssi) || rssi == 99 else { throw scanner.error("rssi \(rssi) is outside 0–31 and 99") }
            guard (0...7).contains(ber) || ber == 99 else { throw scanner.error("ber \(ber) is outside 0–7 and 99") }
            message = .signalQuality(rssi: rssi, bitErrorRate: ber)
        case .registration:
            var stat = try scanner.integer(digits: 1, "stat")
            if scanner.atComma {
                // The query form: <n>,<stat>.
                guard (0...2).contains(stat) else { throw scanner.error("n \(stat) is outside 0–2") }
                try scanner.comma()
                stat = try scanner.integer(digits: 1, "stat")
            }
            let states: [LinkFacts.Registration] = [.notRegistered, .home, .searching, .denied, .unknown, .roaming]
            guard states.indices.contains(stat) else { throw scanner.error("stat \(stat) is outside 0–5") }
            message = .registration(states[stat])
        case .networkOperator:
            let mode = try scanner.integer(digits: 1, "mode")
            guard (0...4).contains(mode) else { throw scanner.error("mode \(mode) is outside 0–4") }
            try scanner.comma()
            let format = try scanner.integer(digits: 1, "format")
            guard format == 0 else { throw scanner.error("format \(format): only 0 (long alphanumeric) is accepted") }
            try scanner.comma()
            let name = try scanner.quoted(maximumLength: maximumOperatorLength, "operator")
            try scanner.comma()
            let act = try scanner.integer(digits: 2, "AcT")
            guard let radio = radioTechnology(act) else { throw scanner.error("AcT \(act) is outside 0–13") }
            message = .networkOperator(name: name, radio: radio)
        case .dataCounters:
            let sent = try scanner.integer(digits: 15, "sent")
            try scanner.comma()
            let received = try scanner.integer(digits: 15, "received")
            message = .dataCounters(sent: Int64(sent), received: Int64(received))
        }
        try scanner.end()
        return message
    }

    /// 27.007 `<AcT>` to its radio family.
    static func radioTechnology(_ act: Int) -> LinkFacts.RadioTechnology? {
        switch act {
        case 0, 1, 3, 8: .gsm  // GSM, GSM compact, GSM w/EGPRS, EC-GSM-IoT
        case 2, 4, 5, 6: .umts  // UTRAN, w/HSDPA, w/HSUPA, w/HSDPA and HSUPA
        case 7, 10: .lte  // E-UTRAN, E-UTRAN connected to a 5GCN
        case 9: .nbIoT  // E-UTRAN (NB-S1 mode)
        case 11, 12, 13: .nr  // NR connected to a 5GCN, NG-RAN, E-UTRA-NR dual connectivity
        default: nil
        }
    }

    /// Bytes as they may be logged: printable ASCII, everything else as `\xNN`, cut at 40.
    public static func printable(_ bytes: some Collection<UInt8>) -> String {
        var text = ""
        for byte in bytes.prefix(40) {
            if (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "\\") {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return bytes.count > 40 ? text + "…" : text
    }

    private struct Scanner {
        var bytes: ArraySlice<UInt8>
        let kind: RouterMessage.Kind

        func error(_ message: String) -> RouterLineError {
            RouterLineError(.malformed, "\(kind.rawValue): \(message)")
        }

        var atComma: Bool { bytes.first == UInt8(ascii: ",") }

        mutating func comma() throws(RouterLineError) {
            guard bytes.first == UInt8(ascii: ",") else { throw error("expected ','") }
            bytes.removeFirst()
        }

        /// A decimal without sign or leading zeros, of at most `digits` digits.
        mutating func integer(digits: Int, _ name: String) throws(RouterLineError) -> Int {
            let run = bytes.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
            guard !run.isEmpty else { throw error("\(name) must be a decimal number") }
            guard run.count <= digits else { throw error("\(name) has more than \(digits) digits") }
            guard run.count == 1 || run.first != UInt8(ascii: "0") else { throw error("\(name) has a leading zero") }
            bytes.removeFirst(run.count)
            return run.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }

        /// A double-quoted string of printable ASCII without quotes or backslashes, 1…`maximumLength` long.
        mutating func quoted(maximumLength: Int, _ name: String) throws(RouterLineError) -> String {
            guard bytes.first == UInt8(ascii: "\"") else { throw error("\(name) must be quoted") }
            bytes.removeFirst()
            guard let close = bytes.firstIndex(of: UInt8(ascii: "\"")) else { throw error("\(name) is not closed") }
            let value = bytes[..<close]
            guard !value.isEmpty, value.count <= maximumLength else {
                throw error("\(name) must be 1–\(maximumLength) characters")
            }
            guard value.allSatisfy({ (0x20...0x7E).contains($0) && $0 != UInt8(ascii: "\\") }) else {
                throw error("\(name) may hold printable ASCII only")
            }
            bytes = bytes[(close + 1)...]
            return String(decoding: value, as: UTF8.self)
        }

        func end() throws(RouterLineError) {
            guard bytes.isEmpty else { throw error("unexpected \(RouterMessageParser.printable(bytes)) at the end") }
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
