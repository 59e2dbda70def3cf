// A libFuzzer target for the router control channel's parser and reader (issue 7 §2).
//
// Build and run (scripts/fuzz does both):
//   swift build --scratch-path .build-fuzz --product rampart-router-fuzz \
//     -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING
//   .build-fuzz/debug/rampart-router-fuzz NEW_UNITS_DIR Fuzz/router-channel/corpus
//
// SwiftPM links its own `main`, so libFuzzer's is not used: this file calls LLVMFuzzerRunDriver itself.
#if FUZZING
import Foundation
import RampartCore
import RampartLink

/// Feeds the input to a reader in chunks whose sizes and arrival times come from the input itself, and checks
/// the invariants no input may break.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // Every line on its own through the parser: it throws or returns a value in range, never traps.
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        if let message = try? RouterMessageParser.parse(line) {
            var facts = LinkFacts()
            message.apply(to: &facts)
            check(facts)
            precondition(line.count <= RouterMessageParser.maximumLineLength)
        }
    }
    // The stream through the reader: the first byte of each chunk is its length and the milliseconds since
    // the previous one.
    var reader = RouterChannelReader()
    var now = Duration.zero
    var index = 0
    var acceptedTotal = 0
    while index < bytes.count {
        let header = Int(bytes[index])
        index += 1
        let end = min(bytes.count, index + (header & 0x3F) + 1)
        now += .milliseconds((header >> 6) * 400)
        let (accepted, verdict) = reader.consume(bytes[index..<end], now: now)
        acceptedTotal += accepted.count
        index = end
        check(reader.facts)
        if case .disconnect = verdict { reader = RouterChannelReader() }
    }
    let counters = reader.counters
    precondition(counters.accepted >= 0 && counters.unknown >= 0 && counters.malformed >= 0)
    precondition(counters.accepted <= acceptedTotal)
    return 0
}

func check(_ facts: LinkFacts) {
    if let signal = facts.signalDBm { precondition((-113 ... -51).contains(signal)) }
    if let ber = facts.bitErrorRate { precondition((0...7).contains(ber)) }
    if let name = facts.operatorName {
        precondition((1...RouterMessageParser.maximumOperatorLength).contains(name.utf8.count))
        precondition(name.utf8.allSatisfy { (0x20...0x7E).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
    }
    if let sent = facts.routerSentBytes { precondition(sent >= 0) }
    if let received = facts.routerReceivedBytes { precondition(received >= 0) }
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
#else
print("rampart-router-fuzz is a libFuzzer target: build it with -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING (see scripts/fuzz).")
#endif
