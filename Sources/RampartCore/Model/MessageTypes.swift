import Foundation

/// `device set-hub`: whether a device is a hub (see ``DeviceInfo/hub``).
public struct SetHubRequest: APIRequest, Codable, Equatable {
    public static let allowedKeys: Set<String> = ["hub"]
    public var hub: Bool
    public init(hub: Bool) { self.hub = hub }
}

/// An application property of a message, in the order the device sent it (names may repeat).
public struct MessageProperty: Codable, Sendable, Hashable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// How a payload travels in JSON: `utf8` text as is, anything else as `base64`.
public enum PayloadEncoding: String, Codable, Sendable {
    case utf8
    case base64

    /// Text for `bytes`: itself when it is UTF-8 without control characters other than tab and newlines,
    /// otherwise base64.
    public static func encode(_ bytes: [UInt8]) -> (payload: String, encoding: PayloadEncoding) {
        if let text = String(validating: bytes, as: UTF8.self),
            !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" || $0.value == 0x7F })
        {
            return (text, .utf8)
        }
        return (Data(bytes).base64EncodedString(), .base64)
    }

    /// The bytes `payload` stands for.
    ///
    /// - Throws: ``RampartError`` `invalidRequest` for base64 that does not decode.
    public func decode(_ payload: String) throws -> [UInt8] {
        switch self {
        case .utf8: return Array(payload.utf8)
        case .base64:
            guard let data = Data(base64Encoded: payload) else {
                throw RampartError.invalidRequest("payload is not valid base64.")
            }
            return Array(data)
        }
    }
}

// MARK: Telemetry

/// One device-to-cloud message a gateway in the hub role hands to the server.
public struct TelemetryUpload: Codable, Sendable, Equatable {
    /// Unique per message and gateway, so that a batch sent twice is stored once.
    public var key: String
    /// The device that sent it (for a message forwarded by a child gateway, its `$.cdid`).
    public var deviceId: String
    /// The downstream gateway that forwarded it on `deviceId`'s behalf, if any. The server believes the
    /// forwarded identity only if that gateway acts for the device (it is registered below it).
    public var forwardedBy: String?
    public var moduleId: String?
    /// When the first gateway accepted it.
    public var enqueuedAt: Date
    public var properties: [MessageProperty]
    /// IoT Hub system properties (`$.ct`, `$.ce`, `$.mid`, …) without the `$.`.
    public var systemProperties: [String: String]
    /// Base64.
    public var payload: String
    public init(
        key: String, deviceId: String, forwardedBy: String? = nil, moduleId: String?, enqueuedAt: Date,
        properties: [MessageProperty], systemProperties: [String: String], payload: String
    ) {
        self.key = key
        self.deviceId = deviceId
        self.forwardedBy = forwardedBy
        self.moduleId = moduleId
        self.enqueuedAt = enqueuedAt
        self.properties = properties
        self.systemProperties = systemProperties
        self.payload = payload
    }
}

/// `POST /v1/gateway/{tenant}/messages`: a batch of telemetry from a hub, in its queue order.
public struct TelemetryUploadRequest: APIRequest, Codable {
    public static let allowedKeys: Set<String> = ["messages"]
    public var messages: [TelemetryUpload]
    public init(messages: [TelemetryUpload]) { self.messages = messages }
}

/// What the server did with a batch. Refused messages would be refused again, so the hub drops and counts
/// them; everything else is stored (or was stored before).
public struct TelemetryUploadResult: Codable, Sendable, Equatable {
    public struct Refusal: Codable, Sendable, Equatable {
        /// The message's position in the batch.
        public var index: Int
        public var code: String
        public var message: String
        public init(index: Int, code: String, message: String) {
            self.index = index
            self.code = code
            self.message = message
        }
    }
    public var stored: Int
    public var duplicates: Int
    public var refused: [Refusal]
    public init(stored: Int, duplicates: Int, refused: [Refusal]) {
        self.stored = stored
        self.duplicates = duplicates
        self.refused = refused
    }
}

/// A stored device-to-cloud message (`device message list`).
public struct DeviceMessage: Codable, Sendable, Equatable {
    /// Increases by one per message of the device, in the order the hub received them.
    public var sequence: Int64
    public var deviceId: String
    public var moduleId: String?
    /// The gateway that handed it to the server.
    public var gatewayId: String
    public var enqueuedAt: Date
    public var receivedAt: Date
    public var properties: [MessageProperty]
    public var systemProperties: [String: String]
    public var payload: String
    public var payloadEncoding: PayloadEncoding
    public init(
        sequence: Int64, deviceId: String, moduleId: String?, gatewayId: String, enqueuedAt: Date, receivedAt: Date,
        properties: [MessageProperty], systemProperties: [String: String], payload: String, payloadEncoding: PayloadEncoding
    ) {
        self.sequence = sequence
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.gatewayId = gatewayId
        self.enqueuedAt = enqueuedAt
        self.receivedAt = receivedAt
        self.properties = properties
        self.systemProperties = systemProperties
        self.payload = payload
        self.payloadEncoding = payloadEncoding
    }
}

/// `GET /v1/tenants/{t}/devices/{d}/messages`: the next page, oldest first.
public struct DeviceMessageList: Codable, Sendable {
    public var messages: [DeviceMessage]
    /// Pass as `after` to read on from here.
    public var next: Int64
    public init(messages: [DeviceMessage], next: Int64) {
        self.messages = messages
        self.next = next
    }
}

// MARK: Cloud to device

/// `POST /v1/tenants/{t}/devices/{d}/cloud-messages`: `device message send`.
public struct CloudMessageRequest: APIRequest, Codable {
    public static let allowedKeys: Set<String> = ["payload", "payloadEncoding", "properties", "ttlSeconds"]
    /// The longest a message may wait for its device, in seconds (48 h, as IoT Hub).
    public static let maximumTimeToLive = 48 * 3600
    public var payload: String
    /// `utf8` (the default) or `base64`.
    public var payloadEncoding: PayloadEncoding?
    public var properties: [MessageProperty]?
    /// How long the message waits for the device: 1 s to 48 h, 1 h by default (as IoT Hub).
    public var ttlSeconds: Int?
    public init(payload: String, payloadEncoding: PayloadEncoding? = nil, properties: [MessageProperty]? = nil, ttlSeconds: Int? = nil) {
        self.payload = payload
        self.payloadEncoding = payloadEncoding
        self.properties = properties
        self.ttlSeconds = ttlSeconds
    }
}

/// A cloud-to-device message and how far it got.
public struct CloudMessage: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Waiting for the device to connect and acknowledge it.
        case pending
        /// The device acknowledged it (PUBACK).
        case delivered
        /// Its TTL passed before the device acknowledged it; it is not sent any more.
        case expired
    }
    public var id: String
    public var deviceId: String
    public var payload: String
    public var payloadEncoding: PayloadEncoding
    public var properties: [MessageProperty]
    public var createdAt: Date
    public var expiresAt: Date
    public var state: State
    public var deliveredAt: Date?
    /// The gateway that delivered it.
    public var deliveredBy: String?
    public init(
        id: String, deviceId: String, payload: String, payloadEncoding: PayloadEncoding, properties: [MessageProperty],
        createdAt: Date, expiresAt: Date, state: State, deliveredAt: Date?, deliveredBy: String?
    ) {
        self.id = id
        self.deviceId = deviceId
        self.payload = payload
        self.payloadEncoding = payloadEncoding
        self.properties = properties
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.state = state
        self.deliveredAt = deliveredAt
        self.deliveredBy = deliveredBy
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(deviceId, forKey: .deviceId)
        try c.encode(payload, forKey: .payload)
        try c.encode(payloadEncoding, forKey: .payloadEncoding)
        try c.encode(properties, forKey: .properties)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(expiresAt, forKey: .expiresAt)
        try c.encode(state, forKey: .state)
        try c.encode(deliveredAt, forKey: .deliveredAt)
        try c.encode(deliveredBy, forKey: .deliveredBy)
    }
}

/// Cloud-to-device messages: a device's history for its tenant, or what a gateway should deliver.
public struct CloudMessageList: Codable, Sendable {
    public var messages: [CloudMessage]
    /// The server's clock when it answered; a gateway asks for messages since shortly before it.
    public var serverTime: Date
    /// For a gateway: more messages may follow; pass this as `after` to read on. Absent on the last page.
    public var next: String?
    public init(messages: [CloudMessage], serverTime: Date, next: String? = nil) {
        self.messages = messages
        self.serverTime = serverTime
        self.next = next
    }
}
