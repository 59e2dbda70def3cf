import RampartMQTT
import Testing

@Suite("IoT Hub property bags")
struct PropertyBagTests {
    @Test("Plain names and values stay as they are; everything else is percent-encoded, byte by byte")
    func encoding() {
        #expect(PropertyBag.percentEncode("$.cdid") == "$.cdid")
        #expect(PropertyBag.percentEncode("a-b.c_d~e") == "a-b.c_d~e")
        #expect(PropertyBag.percentEncode("a b&c=d/e?") == "a%20b%26c%3Dd%2Fe%3F")
        #expect(PropertyBag.percentEncode("%") == "%25")
        #expect(PropertyBag.percentEncode("é") == "%C3%A9")
        #expect(PropertyBag.percentEncode("") == "")
        #expect(PropertyBag.encode([]) == "")
        #expect(PropertyBag.encode([("$.ct", "application/json"), ("k", "v 1")]) == "$.ct=application%2Fjson&k=v%201")
    }

    @Test("The encoded length is counted without encoding", arguments: [
        [], [("a", "")], [("$.cdid", "device-1"), ("$.cmid", "module")], [("ünï", "a b&c"), ("x", "%/?")],
    ])
    func encodedCount(_ properties: [(String, String)]) {
        #expect(PropertyBag.encodedCount(properties) == PropertyBag.encode(properties).utf8.count)
    }

    @Test("A bag decodes to what was encoded; bad escapes and bytes that are not UTF-8 are refused")
    func roundTrip() throws {
        let properties = [("$.mid", "42"), ("temperature", "21.5 °C"), ("path", "a/b?c=d&e")]
        let decoded = try #require(PropertyBag.decode(Substring(PropertyBag.encode(properties))))
        #expect(decoded.elementsEqual(properties) { $0 == $1 })
        #expect(PropertyBag.decode("a=%4") == nil)
        #expect(PropertyBag.decode("a=%zz") == nil)
        #expect(PropertyBag.decode("a=%FF") == nil)
        #expect(PropertyBag.decode("a+b=c+d").map { $0.map { "\($0.0)|\($0.1)" } } == ["a b|c d"])
    }
}
