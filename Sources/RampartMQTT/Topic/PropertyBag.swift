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
        properties.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }

    private static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~$".utf8)

    /// Percent-encodes all but the unreserved characters (and `$`), as the bag's names and values are.
    public static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) { out.unicodeScalars.append(Unicode.Scalar(byte)) }
            else { out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2) }
        }
        return out
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

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
