import Foundation
import RampartCore
import Testing

@Suite("Names")
struct NameTests {
    @Test("valid names are accepted and trimmed", arguments: ["Contoso", "Field Test 2", "a-b_c", String(repeating: "x", count: 50)])
    func accepts(_ name: String) throws {
        #expect(try Name.validated(" \(name) ") == name)
    }

    @Test("invalid names give invalidName", arguments: ["", "   ", String(repeating: "x", count: 51), "bad/name", "émoji", "tab\tname", "new\nline"])
    func refuses(_ name: String) {
        #expect(throws: RampartError(.invalidName, "")) { try Name.validated(name) }
    }
}

@Suite("Wire formats")
struct WireFormatTests {
    @Test("identifiers encode in lowercase")
    func lowercaseIDs() throws {
        let id = RampartID(UUID(uuidString: "ABCDEF01-2345-6789-ABCD-EF0123456789")!)
        let data = try JSONCoding.encoder().encode([id])
        #expect(String(decoding: data, as: UTF8.self) == #"["abcdef01-2345-6789-abcd-ef0123456789"]"#)
    }

    @Test("dates round-trip as RFC 3339 UTC")
    func dates() throws {
        let date = Date(timeIntervalSince1970: 1_795_000_000)
        #expect(Timestamp.format(date) == "2026-11-18T11:06:40Z")
        #expect(Timestamp.parse("2026-11-18T11:06:40Z") == date)
        #expect(Timestamp.parse("2026-11-18T11:06:40.500Z") != nil)
        #expect(Timestamp.parse("yesterday") == nil)
    }

    @Test("roles parse case-insensitively and order by power")
    func roles() throws {
        #expect(try Role(parsing: "contributor") == .contributor)
        #expect(Role.reader < Role.contributor && Role.contributor < Role.administrator)
        #expect(throws: RampartError(.invalidRequest, "")) { try Role(parsing: "Owner") }
        #expect(Permission.delete.minimumRole == .administrator)
        #expect(Permission.create.minimumRole == .contributor)
    }

    @Test("errors compare by code and describe themselves as code: message")
    func errors() {
        let error = RampartError(.notFound, "Tenant x was not found.", status: 404)
        #expect(error == RampartError(.notFound, "other"))
        #expect(error.description == "notFound: Tenant x was not found.")
    }
}

@Suite("Error report CSV")
struct ErrorReportCSVTests {
    @Test("a description that starts like a spreadsheet formula is made inert, and fields are quoted")
    func formulaInjection() {
        let row = ErrorReportRow(
            deviceId: "d", eventType: "unplanned", eventClass: "appTrap", eventCount: 2,
            description: "=HYPERLINK(\"http://x\",\"click\")", startTimestamp: Date(timeIntervalSince1970: 0),
            endTimestamp: Date(timeIntervalSince1970: 60))
        let line = ErrorReport(events: [row]).csv.split(separator: "\r\n")[1]
        #expect(line.contains(#""'=HYPERLINK(""http://x"",""click"")""#))
    }
}

@Suite("Token bucket")
struct TokenBucketTests {
    @Test("starts full, refills at its rate up to its capacity, takes all or nothing, and a clock going back adds nothing")
    func takeAndRefill() {
        var bucket = TokenBucket(capacity: 3, perSecond: 2, now: 1_000)
        var taken = [bucket.take(3, now: 1_000), bucket.take(1, now: 1_000)]
        #expect(taken == [true, false] && bucket.tokens == 0)
        taken = [bucket.take(1, now: 1_400), bucket.take(1, now: 1_500)]  // 0.8 accrued, then 1
        #expect(taken == [false, true])
        let early = bucket.take(0.5, now: 900)  // back in time: nothing accrues
        #expect(!early && bucket.tokens == 0)
        bucket.refill(now: 100_000)
        #expect(bucket.tokens == 3)
    }

    @Test("spending past empty is a debt, and the wait until it is repaid follows the rate")
    func debt() {
        var bucket = TokenBucket(capacity: 500, perSecond: 500, now: 0)
        bucket.spend(700, now: 0)
        #expect(bucket.tokens == -200)
        let waits = [bucket.millisecondsUntilSolvent(now: 0), bucket.millisecondsUntilSolvent(now: 400)]
        #expect(waits == [400, 0])
        var stopped = TokenBucket(capacity: 1, perSecond: 0, now: 0)
        stopped.spend(5, now: 0)
        let none = stopped.millisecondsUntilSolvent(now: 10)  // no rate: nothing to wait for
        #expect(none == 0)
    }
}
