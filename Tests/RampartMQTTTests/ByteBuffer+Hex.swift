import NIOCore

extension ByteBuffer {
    /// A buffer holding the bytes of a hex string; spaces are ignored so that packets can be written field by field.
    init(hex: String) {
        let digits = hex.filter { !$0.isWhitespace }.map { UInt8(String($0), radix: 16) ?? 0 }
        var bytes: [UInt8] = []
        var index = 0
        while index + 1 < digits.count {
            bytes.append(digits[index] << 4 | digits[index + 1])
            index += 2
        }
        self.init(bytes: bytes)
    }

    /// The readable bytes as upper-case hex pairs separated by spaces, for readable failure messages.
    var hexDump: String {
        readableBytesView.map { byte in
            let text = String(byte, radix: 16, uppercase: true)
            return text.count == 1 ? "0" + text : text
        }.joined(separator: " ")
    }
}
