/// IoT Hub's property bag, the last segment of its device topics: URL-encoded `k=v&k2=v2`; system
/// properties are prefixed `$.`. Shared by the gateway and the device runtime's own connection.
public enum PropertyBag {
    /// Decodes a bag; `nil` when it is not valid percent-encoding.
    public static func decode(_ text: Substring) -> [(String, String)]? {
        if text.isEmpty { return [] }
        var result: [(String, String)] = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(parts[0]), !name.isEmpty else { return nil }
            let value = parts.count == 2 ? percentDecode(parts[1]) : ""
            guard let value else { return nil }
            result.append((name, value))
        }
        return result
    }

    /// Encodes a bag.
    public static func encode(_ properties: [(String, String)]) -> String {
        var out = ""
        out.reserveCapacity(encodedCount(properties))
        for (index, (name, value)) in properties.enumerated() {
            if index > 0 { out += "&" }
            out += percentEncode(name)
            out += "="
            out += percentEncode(value)
        }
        return out
    }

    /// The length in bytes of ``encode(_:)``'s result, without building it.
    public static func encodedCount(_ properties: [(String, String)]) -> Int {
        func count(_ text: String) -> Int { text.utf8.reduce(0) { $0 + (isUnreserved($1) ? 1 : 3) } }
        return properties.reduce(max(0, properties.count - 1)) { $0 + count($1.0) + 1 + count($1.1) }
    }

    /// The unreserved characters of RFC 3986, and `$`, which the bag's system property names start with.
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "$"):
            true
        default: false
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Percent-encodes all but the unreserved characters (and `$`), as the bag's names and values are.
    public static func percentEncode(_ text: String) -> String {
        // Names and values are mostly plain: those come back as they are, without a copy.
        guard text.utf8.contains(where: { !isUnreserved($0) }) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (and, in a property bag, `+` as a space); `nil` for a bad escape or bytes
    /// that are not UTF-8.
    public static func percentDecode(_ text: Substring, plusIsSpace: Bool = true) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else if plusIsSpace, byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
