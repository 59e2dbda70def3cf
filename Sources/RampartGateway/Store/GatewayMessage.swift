import NIOCore
import RampartCore

/// One telemetry message as the gateway stores and forwards it.
///
/// The original device identity travels with the message (`deviceID`, and `moduleID` for module output),
/// so that the upstream sees who sent it even though the gateway's own identity carries it there.
public struct GatewayMessage: Sendable, Hashable {
    /// The device that published the message (the certificate's CN).
    public var deviceID: String
    /// The module that published it, for module output.
    public var moduleID: String?
    /// The route source path: `/messages/` or `/messages/modules/{m}/outputs/{o}`.
    public var sourcePath: String
    /// IoT Hub system properties by their route names (`contentType`, `messageId`, …).
    public var systemProperties: [String: String]
    /// Application properties in the order the device sent them.
    public var applicationProperties: [Property]
    /// The body.
    public var payload: [UInt8]
    /// When the gateway accepted it, in milliseconds since 1970.
    public var enqueuedAtMilliseconds: UInt64
    /// When it expires, in milliseconds since 1970; `nil` never expires.
    public var expiresAtMilliseconds: UInt64?

    /// One application property: the same name and value the server stores and the API carries.
    public typealias Property = MessageProperty

    /// Creates a message.
    public init(
        deviceID: String, moduleID: String? = nil, sourcePath: String = "/messages/",
        systemProperties: [String: String] = [:], applicationProperties: [Property] = [], payload: [UInt8],
        enqueuedAtMilliseconds: UInt64, expiresAtMilliseconds: UInt64? = nil
    ) {
        self.deviceID = deviceID
        self.moduleID = moduleID
        self.sourcePath = sourcePath
        self.systemProperties = systemProperties
        self.applicationProperties = applicationProperties
        self.payload = payload
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
        self.expiresAtMilliseconds = expiresAtMilliseconds
    }
}

extension GatewayMessage {
    /// `$.cdid` and `$.cmid`: the device (and module) that first sent the message, which is the sender
    /// unless a downstream gateway forwarded it on the device's behalf.
    var originProperties: [(String, String)] {
        var properties = [("$.cdid", systemProperties["cdid"] ?? deviceID)]
        if let module = systemProperties["cdid"] == nil ? moduleID : systemProperties["cmid"] {
            properties.append(("$.cmid", module))
        }
        return properties
    }

    /// The IoT Hub property bag a forwarded message carries: its origin, its system properties by their
    /// short names, then its application properties.
    var propertyBag: [(String, String)] {
        var properties = originProperties
        for (name, value) in systemProperties.sorted(by: { $0.key < $1.key }) {
            if let short = Self.shortNames[name] { properties.append(("$.\(short)", value)) }
        }
        return properties + applicationProperties.map { ($0.name, $0.value) }
    }

    /// IoT Hub's short property-bag names for system properties.
    static let shortNames: [String: String] = [
        "contentType": "ct", "contentEncoding": "ce", "messageId": "mid", "correlationId": "cid", "userId": "uid",
        "to": "to", "absoluteExpiryTime": "exp", "iothub-creation-time-utc": "ctime",
    ]

    private static let formatVersion: UInt8 = 1

    /// The stored form: a version byte, then length-prefixed fields.
    func encoded() -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: payload.count + 128)
        buffer.writeInteger(Self.formatVersion)
        buffer.writeInteger(enqueuedAtMilliseconds)
        buffer.writeInteger(expiresAtMilliseconds ?? 0)
        Self.writeString(deviceID, into: &buffer)
        Self.writeString(moduleID ?? "", into: &buffer)
        Self.writeString(sourcePath, into: &buffer)
        buffer.writeInteger(UInt16(truncatingIfNeeded: systemProperties.count))
        for (name, value) in systemProperties.sorted(by: { $0.key < $1.key }) {
            Self.writeString(name, into: &buffer)
            Self.writeString(value, into: &buffer)
        }
        buffer.writeInteger(UInt16(truncatingIfNeeded: applicationProperties.count))
        for property in applicationProperties {
            Self.writeString(property.name, into: &buffer)
            Self.writeString(property.value, into: &buffer)
        }
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        return Array(buffer.readableBytesView)
    }

    /// Parses the stored form; `nil` when the bytes are not a message of a known version.
    init?(encoded bytes: some Collection<UInt8>) {
        var buffer = ByteBuffer(bytes: bytes)
        guard buffer.readInteger(as: UInt8.self) == Self.formatVersion,
            let enqueued = buffer.readInteger(as: UInt64.self),
            let expires = buffer.readInteger(as: UInt64.self),
            let device = Self.readString(&buffer), let module = Self.readString(&buffer),
            let source = Self.readString(&buffer), let systemCount = buffer.readInteger(as: UInt16.self)
        else { return nil }
        var system: [String: String] = [:]
        for _ in 0..<systemCount {
            guard let name = Self.readString(&buffer), let value = Self.readString(&buffer) else { return nil }
            system[name] = value
        }
        guard let appCount = buffer.readInteger(as: UInt16.self) else { return nil }
        var app: [Property] = []
        app.reserveCapacity(Int(appCount))
        for _ in 0..<appCount {
            guard let name = Self.readString(&buffer), let value = Self.readString(&buffer) else { return nil }
            app.append(Property(name: name, value: value))
        }
        guard let length = buffer.readInteger(as: UInt32.self), let payload = buffer.readBytes(length: Int(length)),
            buffer.readableBytes == 0
        else { return nil }
        self.init(
            deviceID: device, moduleID: module.isEmpty ? nil : module, sourcePath: source, systemProperties: system,
            applicationProperties: app, payload: payload, enqueuedAtMilliseconds: enqueued,
            expiresAtMilliseconds: expires == 0 ? nil : expires)
    }

    /// The expiry of an encoded message, read without decoding the rest.
    static func expiry(ofEncoded bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= 17, bytes[0] == formatVersion else { return nil }
        let value = bytes.uint64(at: 9)
        return value == 0 ? nil : value
    }

    private static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        let utf8 = Array(string.utf8.prefix(Int(UInt16.max)))
        buffer.writeInteger(UInt16(utf8.count))
        buffer.writeBytes(utf8)
    }

    private static func readString(_ buffer: inout ByteBuffer) -> String? {
        guard let length = buffer.readInteger(as: UInt16.self) else { return nil }
        return buffer.readString(length: Int(length))
    }
}
