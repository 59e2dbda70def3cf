import RampartCore
import RampartLink
import Testing

@Suite("Router control channel: the parser")
struct RouterMessageParserTests {
    func parse(_ line: String) throws(RouterLineError) -> RouterMessage {
        try RouterMessageParser.parse(Array(line.utf8))
    }

    @Test("the four reports parse into their values")
    func valid() throws {
        #expect(try parse("+CSQ: 23,99") == .signalQuality(rssi: 23, bitErrorRate: 99))
        #expect(try parse("+CSQ: 0,7") == .signalQuality(rssi: 0, bitErrorRate: 7))
        #expect(try parse("+CREG: 5") == .registration(.roaming))
        #expect(try parse("+CREG: 2,1") == .registration(.home))
        #expect(try parse("+COPS: 0,0,\"Example Telecom\",7") == .networkOperator(name: "Example Telecom", radio: .lte))
        #expect(try parse("+COPS: 1,0,\"NB\",9") == .networkOperator(name: "NB", radio: .nbIoT))
        #expect(try parse("+RDATA: 0,123456789012345") == .dataCounters(sent: 0, received: 123_456_789_012_345))
    }

    @Test("facts: dBm from rssi, unknown 99 clears, roaming from stat 5")
    func facts() throws {
        var facts = LinkFacts()
        try parse("+CSQ: 10,3").apply(to: &facts)
        #expect(facts.signalDBm == -93 && facts.bitErrorRate == 3)
        try parse("+CSQ: 99,99").apply(to: &facts)
        #expect(facts.signalDBm == nil && facts.bitErrorRate == nil)
        try parse("+CREG: 5").apply(to: &facts)
        #expect(facts.roaming)
        try parse("+COPS: 0,0,\"Op\",12").apply(to: &facts)
        #expect(facts.operatorName == "Op" && facts.radio == .nr)
    }

    @Test(
        "malformed reports are refused with the reason",
        arguments: [
            ("+CSQ: 32,0", "rssi 32"),
            ("+CSQ: 31,8", "ber 8"),
            ("+CSQ: 031,0", "more than 2 digits"),
            ("+CSQ: 01,0", "leading zero"),
            ("+CSQ: -1,0", "decimal"),
            ("+CSQ: 1, 0", "decimal"),
            ("+CSQ:1,0", "followed by ': '"),
            ("+CSQ: 1,0,", "at the end"),
            ("+CSQ: 1", "expected ','"),
            ("+CREG: 6", "stat 6"),
            ("+CREG: 3,1", "n 3"),
            ("+CREG: 1,1,\"00C3\"", "at the end"),
            ("+COPS: 0,2,\"26201\",7", "format 2"),
            ("+COPS: 5,0,\"Op\",7", "mode 5"),
            ("+COPS: 0,0,\"\",7", "1–32 characters"),
            ("+COPS: 0,0,\"Op\",14", "AcT 14"),
            ("+COPS: 0,0,Op,7", "quoted"),
            ("+COPS: 0,0,\"Op,7", "not closed"),
            ("+COPS: 0,0,\"a\\b\",7", "printable ASCII"),
            ("+COPS: 0,0,\"\u{7f}\",7", "printable ASCII"),
            ("+COPS: 0,0,\"123456789012345678901234567890123\",7", "1–32 characters"),
            ("+RDATA: 1234567890123456,0", "more than 15 digits"),
        ])
    func malformed(line: String, reason: String) {
        do {
            _ = try parse(line)
            Issue.record("\(line) was accepted")
        } catch {
            #expect(error.code == .malformed, "\(line)")
            #expect(error.message.contains(reason), "\(line): \(error.message)")
        }
    }

    @Test("unknown reports, and lines too long, have their own codes", arguments: ["RING", "+CMTI: \"SM\",1", "OK", "+csq: 1,1", "+CSQ"])
    func unknown(line: String) {
        #expect(throws: RouterLineError(.unknown, "")) { try parse(line) }
    }

    @Test("an oversized line is refused before it is read")
    func oversized() {
        let line = "+COPS: 0,0,\"" + String(repeating: "x", count: 80) + "\",7"
        #expect(throws: RouterLineError(.oversized, "")) { try parse(line) }
        #expect(RouterMessageParser.printable(Array("a\u{1}\\".utf8)) == "a\\x01\\x5C")
    }
}

@Suite("Router control channel: framing, rate limits and floods")
struct RouterChannelReaderTests {
    func feed(_ reader: inout RouterChannelReader, _ text: String, at seconds: Double) -> (accepted: [RouterMessage], verdict: RouterChannelReader.Verdict) {
        reader.consume(Array(text.utf8), now: .milliseconds(Int64(seconds * 1000)))
    }

    @Test("lines are framed across chunks, CR LF or LF, blank lines ignored")
    func framing() {
        var reader = RouterChannelReader()
        var result = feed(&reader, "+CSQ: 2", at: 0)
        #expect(result.accepted.isEmpty)
        result = feed(&reader, "0,99\r\n\r\n+CREG: 1\n", at: 0)
        #expect(result.accepted == [.signalQuality(rssi: 20, bitErrorRate: 99), .registration(.home)])
        #expect(result.verdict == .keepReading)
        #expect(reader.facts.signalDBm == -73 && reader.facts.registration == .home)
        #expect(reader.counters.accepted == 2)
    }

    @Test("an oversized line is counted once, skipped to its end, and the next line is read")
    func oversizedLine() {
        var reader = RouterChannelReader()
        let result = feed(&reader, String(repeating: "A", count: 500) + "\n+CSQ: 5,0\n", at: 0)
        #expect(result.accepted == [.signalQuality(rssi: 5, bitErrorRate: 0)])
        #expect(reader.counters.oversized == 1)
        #expect(reader.lastRejection?.code == .oversized)
    }

    @Test("unknown and malformed lines are counted and dropped, never applied")
    func dropped() {
        var reader = RouterChannelReader()
        let result = feed(&reader, "RING\n+CSQ: 40,0\n+CREG: 5\n", at: 0)
        #expect(result.accepted == [.registration(.roaming)])
        #expect(reader.counters.unknown == 1 && reader.counters.malformed == 1)
        #expect(reader.facts.signalDBm == nil)
    }

    @Test("each type is limited to a burst, then one a second")
    func rateLimit() {
        var reader = RouterChannelReader()
        var result = feed(&reader, String(repeating: "+CSQ: 10,0\n", count: 7) + "+CREG: 1\n", at: 0)
        #expect(result.accepted.count == 6)  // five CSQ and the CREG
        #expect(reader.counters.rateLimited == 2)
        result = feed(&reader, "+CSQ: 11,0\n+CSQ: 12,0\n", at: 1.0)
        #expect(result.accepted == [.signalQuality(rssi: 11, bitErrorRate: 0)])
        #expect(reader.facts.signalDBm == -91)
    }

    @Test("a flood of lines, of bytes, or of garbage disconnects", arguments: [
        String(repeating: "+CSQ: 10,0\n", count: 60),
        String(repeating: "X", count: 5000),
        String(repeating: "+XYZ: 1\n", count: 31),
    ])
    func flood(stream: String) {
        var reader = RouterChannelReader()
        guard case .disconnect = feed(&reader, stream, at: 0).verdict else {
            Issue.record("not disconnected")
            return
        }
        #expect(reader.counters.disconnects == 1)
    }

    @Test("a steady, well-behaved router is never disconnected")
    func steady() {
        var reader = RouterChannelReader()
        for second in 0..<300 {
            let result = feed(&reader, "+CSQ: 15,0\r\n+CREG: 1\r\n+COPS: 0,0,\"Op\",7\r\n+RDATA: \(second * 100),\(second * 900)\r\n", at: Double(second))
            #expect(result.verdict == .keepReading)
        }
        #expect(reader.counters.accepted == 1200)
        let received: Int64? = 299 * 900
        #expect(reader.facts.routerReceivedBytes == received)
    }
}

@Suite("Router control channel: windows across reconnects")
struct RouterChannelWindowTests {
    @Test("after a flood and a reconnect, the next second's reports are read again")
    func afterFlood() {
        var reader = RouterChannelReader()
        guard case .disconnect = reader.consume(Array(String(repeating: "+CSQ: 9,0\n", count: 600).utf8), now: .seconds(30)).verdict else {
            Issue.record("no disconnect")
            return
        }
        reader.reset()
        #expect(reader.consume(Array("+CSQ: 28,0\n".utf8), now: .seconds(32)).accepted == [.signalQuality(rssi: 28, bitErrorRate: 0)])
        // A clock that went backwards restarts the windows instead of freezing them full.
        #expect(reader.consume(Array("+CREG: 1\n".utf8), now: .seconds(1)).verdict == .keepReading)
    }
}
