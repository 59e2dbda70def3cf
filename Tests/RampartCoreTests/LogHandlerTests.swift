import Foundation
import Logging
@testable import RampartCore
import Testing

@Suite("Structured log lines")
struct LogHandlerTests {
    func event(_ message: Logger.Message, _ metadata: Logger.Metadata) -> LogEvent {
        LogEvent(level: .info, message: message, metadata: metadata, source: nil, file: #fileID, function: #function, line: #line)
    }

    @Test("a JSON line parses back to every field, whatever the values hold, with keys sorted")
    func json() throws {
        var handler = StructuredLogHandler(label: "rampart.test", format: .json, level: .info)
        handler[metadataKey: "tenant"] = "t1"
        let awkward = "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} del\u{7F} sep\u{2028} é 🙂 /"
        let line = handler.line(
            for: event("request \(awkward)", ["path": "\(awkward)", "level": "spoofed", "status": "200"]),
            at: Date(timeIntervalSince1970: 1_800_000_000.123_9))
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object == [
            "level": "info", "logger": "rampart.test", "message": "request \(awkward)", "path": awkward,
            "status": "200", "tenant": "t1", "time": "2027-01-15T08:00:00.123Z",
        ])
        let keys = line.split(separator: ",").compactMap { $0.split(separator: ":").first }.map { String($0.drop { $0 == "{" }) }
        #expect(keys.first == "\"level\"" && keys.last?.hasPrefix("\"time\"") == true)
    }

    @Test("timestamps are UTC ISO 8601 with milliseconds, zero-padded")
    func timestamps() {
        #expect(StructuredLogHandler.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(StructuredLogHandler.timestamp(Date(timeIntervalSince1970: 1_709_251_205.007)) == "2024-03-01T00:00:05.007Z")
        #expect(StructuredLogHandler.timestamp(Date(timeIntervalSince1970: 4_102_444_799.999)) == "2099-12-31T23:59:59.999Z")
        #expect(StructuredLogHandler.timestamp(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
    }

    @Test("UTC fields without Foundation's Calendar: months across a leap day and a year's end, minutes of the day")
    func utcFields() {
        // 2024-02-29T23:59:00Z, a minute before March.
        let leap = UTCTime(Date(timeIntervalSince1970: 1_709_251_140))
        #expect(leap.yearMonth == "2024-02" && leap.day == 29 && leap.minuteOfDay == 23 * 60 + 59)
        #expect(UTCTime(Date(timeIntervalSince1970: 1_709_251_200)).yearMonth == "2024-03")
        #expect(UTCTime(Date(timeIntervalSince1970: 1_798_761_599)).yearMonth == "2026-12")
        #expect(UTCTime(Date(timeIntervalSince1970: 1_798_761_600)).yearMonth == "2027-01")
        #expect(UTCTime(Date(timeIntervalSince1970: 2 * 3600 + 59)).minuteOfDay == 120)
        #expect(UTCTime.pad(7, 3) == "007" && UTCTime.pad(12345, 2) == "12345")
    }

    @Test("a text line is time, level, label, message, then sorted key=value fields")
    func text() {
        let handler = StructuredLogHandler(label: "rampart.test", format: .text, level: .info)
        let line = handler.line(for: event("started", ["b": "2", "a": "1"]), at: Date(timeIntervalSince1970: 0))
        #expect(line == "1970-01-01T00:00:00.000Z info rampart.test: started a=1 b=2")
        // A hostile message (an app's log line) cannot forge a second record or send terminal escapes.
        let forged = handler.line(
            for: event("ok\n1970-01-01T00:00:00.000Z error rampart.server: forged\r\u{1B}[2J\u{9B}", ["k\n": "v\u{0}"]),
            at: Date(timeIntervalSince1970: 0))
        #expect(forged == "1970-01-01T00:00:00.000Z info rampart.test: ok\\n1970-01-01T00:00:00.000Z error rampart.server: forged\\r\\u001b[2J\\u009b k\\n=v\\u0000")
        #expect(!forged.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        // Bidirectional overrides cannot reorder what an operator reads.
        #expect(handler.line(for: event("a\u{202E}b\u{2066}", [:]), at: Date(timeIntervalSince1970: 0)).hasSuffix(#"a\u202eb\u2066"#))
        // A literal backslash-n stays apart from an escaped newline; a value cannot pass for more fields.
        let literal = handler.line(for: event("a\\nb", ["v": "x b=2", "e": ""]), at: Date(timeIntervalSince1970: 0))
        #expect(literal == #"1970-01-01T00:00:00.000Z info rampart.test: a\\nb e="" v="x b=2""#)
    }
}
