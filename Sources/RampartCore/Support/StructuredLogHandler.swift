import Foundation
import Logging

/// A swift-log handler that writes one structured record per line to standard error.
///
/// `json` gives machine-readable lines for log shippers; `text` gives `key=value` lines for people.
public struct StructuredLogHandler: LogHandler {
    /// The output format.
    public enum Format: String, Sendable, CaseIterable {
        case json
        case text
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: Format

    /// Creates a handler for `label`.
    public init(label: String, format: Format, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        FileHandle.standardError.write(Data((line(for: event, at: Date()) + "\n").utf8))
    }

    /// One record as a line, without the newline. Written by hand: every request logs one, and Foundation's
    /// `JSONSerialization` (sorting keys by locale) and date formatting showed in the attestation profile.
    func line(for event: LogEvent, at date: Date) -> String {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Self.timestamp(date)
        switch format {
        case .json:
            var fields: [(String, String)] = merged.map { ($0.key, "\($0.value)") }
            fields.removeAll { ["time", "level", "logger", "message"].contains($0.0) }
            fields += [("time", time), ("level", event.level.rawValue), ("logger", label), ("message", "\(event.message)")]
            fields.sort { $0.0 < $1.0 }
            var line = "{"
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { line += "," }
                Self.appendQuoted(key, to: &line)
                line += ":"
                Self.appendQuoted(value, to: &line)
            }
            return line + "}"
        case .text:
            // Escaped like JSON: a message (an app's log line, say) cannot start a record of its own with a
            // newline, or rewrite the terminal with an escape sequence. Values with a space, `=` or a quote are
            // quoted (as in logfmt), so they cannot pass for more fields.
            var line = "\(time) \(event.level.rawValue) \(label): "
            Self.appendEscaped("\(event.message)", to: &line)
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += " "
                Self.appendEscaped(key, to: &line)
                line += "="
                let text = "\(value)"
                if text.isEmpty || text.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" }) {
                    Self.appendQuoted(text, to: &line)
                } else {
                    Self.appendEscaped(text, to: &line)
                }
            }
            return line
        }
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped, the rest as is.
    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        appendEscaped(text, to: &line, quotes: true)
        line += "\""
    }

    /// Unicode's bidirectional formatting characters: shown raw, they reorder the rest of a line on screen.
    static let bidiControls: Set<UInt32> = [0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069]

    /// `text` with backslashes, control characters (C0, DEL, C1, U+2028/9) and bidirectional formatting
    /// characters escaped as in JSON, and with
    /// `quotes`, quotes too.
    static func appendEscaped(_ text: String, to line: inout String, quotes: Bool = false) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"" where quotes: line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || (0x2028...0x2029).contains(scalar.value)
                || Self.bidiControls.contains(scalar.value):
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(scalar)
            }
        }
    }

    /// `date` in UTC as ISO 8601 with milliseconds, e.g. `2026-11-22T02:45:01.123Z`.
    static func timestamp(_ date: Date) -> String { UTCTime(date).timestamp }
}
