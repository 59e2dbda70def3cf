import Foundation
import RampartCore
import RampartPKI
import RampartStore

/// Device-to-cloud telemetry that hubs hand over, and cloud-to-device messages held until a device
/// acknowledges them: the server's half of the hub role.
///
/// A gateway acts for a device when it is that device, when the device is registered below it
/// (`device set-parent`, at any depth), or when it is a hub (`device set-hub`), which acts for every device
/// of its tenant. Nothing else a gateway says about identity is believed.
public struct MessageService: Sendable {
    let context: DomainContext

    /// Most messages in one upload.
    public static let maximumBatch = 1000
    /// The largest telemetry payload (as the gateway's own limit).
    public static let maximumTelemetryBytes = 256 * 1024
    /// The largest cloud-to-device payload (IoT Hub's limit).
    public static let maximumCloudMessageBytes = 64 * 1024
    /// Messages that may wait for one device (IoT Hub's limit).
    public static let maximumPendingPerDevice = 50
    /// The longest a cloud-to-device message waits, and how long by default.
    public static let maximumTimeToLive = CloudMessageRequest.maximumTimeToLive
    public static let defaultTimeToLive = 3600
    /// The longest a reader may ask the server to wait for new messages.
    public static let maximumWait = 10
    /// How long a follower (`device message list --follow`) asks the server to wait.
    public static let followWait = 10

    public init(context: DomainContext) { self.context = context }

    // MARK: Telemetry from gateways

    /// Stores a hub's batch, in order, each message once however often the batch is sent.
    ///
    /// Messages that are malformed or for a device the gateway does not act for are refused one by one (the
    /// gateway counts and drops them); the rest of the batch is stored in the same transaction.
    public func upload(_ request: TelemetryUploadRequest, from gatewayID: String, tenant: RampartID) async throws
        -> TelemetryUploadResult
    {
        guard request.messages.count <= Self.maximumBatch else {
            throw RampartError.invalidRequest("A batch holds at most \(Self.maximumBatch) messages, not \(request.messages.count).")
        }
        let now = context.clock.now()
        return try await context.store.transaction { session in
            let gateway = try await Self.gateway(gatewayID, tenant: tenant, session: session)
            var authority = Authority(gateway: gateway, tenant: tenant)
            var forwarders: [String: Authority] = [:]
            var next: [String: Int64] = [:]
            var stored = 0
            var duplicates = 0
            var refused: [TelemetryUploadResult.Refusal] = []
            for (index, message) in request.messages.enumerated() {
                do {
                    let deviceID = try DeviceID.validated(message.deviceId)
                    let record = try Self.validated(message, deviceID: deviceID)
                    if let rawForwarder = message.forwardedBy, rawForwarder.lowercased() != deviceID {
                        // Forwarded: this gateway must act for the forwarder, and the forwarder for the device,
                        // so that no downstream gateway can speak for devices that are not below it.
                        let forwarderID = try DeviceID.validated(rawForwarder)
                        try await authority.check(forwarderID, session: session)
                        if forwarders[forwarderID] == nil {
                            forwarders[forwarderID] = Authority(
                                gateway: try await Self.gateway(forwarderID, tenant: tenant, session: session), tenant: tenant)
                        }
                        try await forwarders[forwarderID]!.check(deviceID, session: session)
                    } else {
                        try await authority.check(deviceID, session: session)
                    }
                    if try await session.deviceMessageExists(tenant: tenant, gatewayID: gateway.id, sourceKey: message.key) {
                        duplicates += 1
                        continue
                    }
                    let sequence: Int64
                    if let known = next[deviceID] {
                        sequence = known
                    } else {
                        sequence = try await session.lastDeviceMessageSequence(tenant: tenant, deviceID: deviceID) + 1
                    }
                    next[deviceID] = sequence + 1
                    try await session.insertDeviceMessage(
                        DeviceMessageRecord(
                            tenantID: tenant, deviceID: deviceID, sequence: sequence, moduleID: message.moduleId,
                            gatewayID: gateway.id, sourceKey: message.key, enqueuedAt: message.enqueuedAt, receivedAt: now,
                            properties: record.properties, systemProperties: record.systemProperties, payload: message.payload))
                    stored += 1
                } catch let error as RampartError where error.status < 500 {
                    refused.append(.init(index: index, code: error.code.rawValue, message: error.message))
                }
            }
            for (deviceID, following) in next {
                try await session.setLastDeviceMessageSequence(tenant: tenant, deviceID: deviceID, following - 1)
            }
            return TelemetryUploadResult(stored: stored, duplicates: duplicates, refused: refused)
        }
    }

    /// A device's stored messages after `after`, oldest first. With `wait`, an empty answer waits up to that
    /// many seconds for the first new message.
    public func list(
        deviceID rawID: String, after: Int64, limit: Int, wait: Int, tenant: RampartID, caller: UserRecord
    ) async throws -> DeviceMessageList {
        let deviceID = try DeviceID.validated(rawID)
        guard (1...1000).contains(limit) else { throw RampartError.invalidRequest("limit must be 1 to 1000.") }
        guard (0...Self.maximumWait).contains(wait) else { throw RampartError.invalidRequest("wait must be 0 to \(Self.maximumWait) seconds.") }
        guard after >= 0 else { throw RampartError.invalidRequest("after must not be negative.") }
        let deadline = ContinuousClock.now + .seconds(wait)
        var first = true
        while true {
            let checkAccess = first
            let records = try await context.store.read { session in
                if checkAccess {
                    _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
                    try await Self.requireDevice(deviceID, tenant: tenant, session: session)
                }
                return try await session.deviceMessages(tenant: tenant, deviceID: deviceID, after: after, limit: limit)
            }
            first = false
            if !records.isEmpty || ContinuousClock.now >= deadline {
                return DeviceMessageList(messages: try records.map(Self.message), next: records.last?.sequence ?? after)
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    // MARK: Cloud to device

    /// Queues a message for a device (Contributor or above); it waits until a gateway delivers it and the
    /// device acknowledges it, or until its TTL passes.
    ///
    /// - Throws: 409 `deviceQueueFull` when \(maximumPendingPerDevice) messages already wait for the device.
    public func send(_ request: CloudMessageRequest, deviceID rawID: String, tenant: RampartID, caller: UserRecord) async throws
        -> CloudMessage
    {
        let deviceID = try DeviceID.validated(rawID)
        let payload = try (request.payloadEncoding ?? .utf8).decode(request.payload)
        guard payload.count <= Self.maximumCloudMessageBytes else {
            throw RampartError.invalidRequest("The payload is \(payload.count) bytes; at most \(Self.maximumCloudMessageBytes) are sent to a device.")
        }
        let properties = request.properties ?? []
        try Self.validate(properties)
        let ttl = request.ttlSeconds ?? Self.defaultTimeToLive
        guard (1...Self.maximumTimeToLive).contains(ttl) else {
            throw RampartError.invalidRequest("ttlSeconds must be 1 to \(Self.maximumTimeToLive) (48 hours).")
        }
        let now = context.clock.now()
        let record = CloudMessageRecord(
            id: RampartID(), tenantID: tenant, deviceID: deviceID, properties: try Self.json(properties),
            payload: Data(payload).base64EncodedString(), createdAt: now, expiresAt: now + TimeInterval(ttl))
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "device.message.send", target: deviceID) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            try await Self.requireDevice(deviceID, tenant: tenant, session: session)
            let pending = try await session.pendingCloudMessageCount(tenant: tenant, deviceID: deviceID, at: now)
            guard pending < Self.maximumPendingPerDevice else {
                throw RampartError(
                    .deviceQueueFull,
                    "\(pending) messages already wait for device \(deviceID), the most there may be. Wait for it to connect, or for their TTL to pass.",
                    status: 409)
            }
            try await session.insertCloudMessage(record)
            return try Self.message(record, at: now)
        }
    }

    /// A device's cloud-to-device messages, newest `limit` of them, with their state.
    public func cloudMessages(deviceID rawID: String, limit: Int, tenant: RampartID, caller: UserRecord) async throws
        -> CloudMessageList
    {
        let deviceID = try DeviceID.validated(rawID)
        guard (1...1000).contains(limit) else { throw RampartError.invalidRequest("limit must be 1 to 1000.") }
        let now = context.clock.now()
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            try await Self.requireDevice(deviceID, tenant: tenant, session: session)
            let records = try await session.cloudMessages(tenant: tenant, deviceID: deviceID, limit: limit)
            return CloudMessageList(messages: try records.map { try Self.message($0, at: now) }, serverTime: now)
        }
    }

    /// One cloud-to-device message of the tenant.
    public func cloudMessage(_ rawID: String, deviceID rawDevice: String, tenant: RampartID, caller: UserRecord) async throws
        -> CloudMessage
    {
        let deviceID = try DeviceID.validated(rawDevice)
        guard let id = RampartID(rawID) else { throw RampartError.notFound("Message \(rawID.prefix(40))") }
        let now = context.clock.now()
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            guard let record = try await session.cloudMessage(id: id, tenant: tenant), record.deviceID == deviceID else {
                throw RampartError.notFound("Message \(id)")
            }
            return try Self.message(record, at: now)
        }
    }

    /// Most messages one answer to a gateway examines, and the payload bytes it carries at most.
    static let pendingPage = 100
    static let pendingPageBytes = 2 << 20

    /// What a gateway should deliver: the pending messages of one device (asked when it connects), or of
    /// every device the gateway acts for created at or after `since`. An answer holds at most a page; when
    /// more may follow, ``CloudMessageList/next`` is the cursor to pass as `after` for the rest. With `wait`,
    /// an empty answer waits up to that many seconds for a first message. With `forApps`, only messages
    /// addressed to an app (a `componentId` property) are returned: what a device runtime fetches for its
    /// apps, leaving the rest to the device's own connection.
    public func pending(
        for gatewayID: String, tenant: RampartID, deviceID rawDevice: String?, since: Date?, after cursor: String? = nil,
        wait: Int, forApps: Bool = false
    ) async throws -> CloudMessageList {
        let deviceID = try rawDevice.map(DeviceID.validated)
        guard (0...Self.maximumWait).contains(wait) else { throw RampartError.invalidRequest("wait must be 0 to \(Self.maximumWait) seconds.") }
        let position = try cursor.map(Self.parseCursor)
        guard deviceID != nil || since != nil || position != nil else { throw RampartError.invalidRequest("Give deviceId, since or after.") }
        let deadline = ContinuousClock.now + .seconds(wait)
        while true {
            let now = context.clock.now()
            let (records, next) = try await context.store.read { session in
                let gateway = try await Self.gateway(gatewayID, tenant: tenant, session: session)
                var authority = Authority(gateway: gateway, tenant: tenant)
                if let deviceID { try await authority.check(deviceID, session: session) }
                let examined = try await session.pendingCloudMessages(
                    tenant: tenant, deviceID: deviceID, since: since, after: position, at: now, limit: Self.pendingPage)
                var mine: [CloudMessageRecord] = []
                var bytes = 0
                var next: String?
                for record in examined {
                    if bytes + record.payload.utf8.count > Self.pendingPageBytes, !mine.isEmpty {
                        next = Self.cursor(after: mine[mine.count - 1])
                        break
                    }
                    if forApps, !Self.isAddressedToApp(record) { continue }
                    do {
                        try await authority.check(record.deviceID, session: session)
                        mine.append(record)
                        bytes += record.payload.utf8.count
                    } catch let error as RampartError where error.status < 500 {
                        continue  // another gateway's device
                    }
                }
                // A full page may have more behind it (examined, not only returned: a gateway that is not a
                // hub pages past other gateways' devices the same way).
                if next == nil, examined.count == Self.pendingPage, let last = examined.last { next = Self.cursor(after: last) }
                return (mine, next)
            }
            if !records.isEmpty || next != nil || ContinuousClock.now >= deadline {
                return CloudMessageList(messages: try records.map { try Self.message($0, at: now) }, serverTime: now, next: next)
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Whether a message names an app (a `componentId` property).
    static func isAddressedToApp(_ record: CloudMessageRecord) -> Bool {
        guard let properties = try? JSONCoding.decoder().decode([MessageProperty].self, from: Data(record.properties.utf8)) else {
            return false
        }
        return properties.contains { $0.name == "componentId" }
    }

    /// The opaque cursor after a message: its creation time in milliseconds and its ID.
    static func cursor(after record: CloudMessageRecord) -> String {
        "\(Int64((record.createdAt.timeIntervalSince1970 * 1000).rounded()))_\(record.id)"
    }

    static func parseCursor(_ text: String) throws -> (Date, RampartID) {
        let parts = text.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, let millis = Int64(parts[0]), let id = RampartID(String(parts[1])) else {
            throw RampartError.invalidRequest("'after' is not a cursor this server gave out.")
        }
        return (Date(timeIntervalSince1970: Double(millis) / 1000), id)
    }

    /// Records that the device acknowledged a message a gateway delivered. Repeating it changes nothing, and
    /// neither does an acknowledgement that comes after the message's TTL: it stays expired.
    public func delivered(_ rawID: String, by gatewayID: String, tenant: RampartID) async throws {
        guard let id = RampartID(rawID) else { throw RampartError.notFound("Message \(rawID.prefix(40))") }
        let now = context.clock.now()
        try await context.store.transaction { session in
            let gateway = try await Self.gateway(gatewayID, tenant: tenant, session: session)
            guard let record = try await session.cloudMessage(id: id, tenant: tenant) else {
                throw RampartError.notFound("Message \(id)")
            }
            var authority = Authority(gateway: gateway, tenant: tenant)
            try await authority.check(record.deviceID, session: session)
            guard record.deliveredAt != nil || record.expiresAt > now else { return }
            _ = try await session.markCloudMessageDelivered(id: id, tenant: tenant, by: gateway.id, at: now)
        }
    }

    /// Deletes telemetry and cloud-to-device messages older than `retention` (the maintenance job runs it
    /// hourly with ``ServerConfiguration/Limits/messageRetention``). Sequence numbers are never reused.
    public func purge(olderThan retention: TimeInterval) async throws {
        let cutoff = context.clock.now() - retention
        try await context.store.transaction { session in
            try await session.purgeDeviceMessages(before: cutoff)
            try await session.purgeCloudMessages(before: cutoff)
        }
    }

    // MARK: Rules

    /// Which devices a gateway acts for, remembered over one request.
    struct Authority {
        let gateway: DeviceRecord
        let tenant: RampartID
        private var known: [String: Bool] = [:]

        init(gateway: DeviceRecord, tenant: RampartID) {
            self.gateway = gateway
            self.tenant = tenant
        }

        /// - Throws: 400 `deviceNotClaimed`, or 403 `notChild` when the gateway does not act for the device.
        mutating func check(_ deviceID: String, session: StoreSession) async throws {
            if deviceID == gateway.id { return }
            if let allowed = known[deviceID] {
                if allowed { return }
                throw Self.notChild(deviceID, gateway: gateway.id)
            }
            guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError(.deviceNotClaimed, "Device \(deviceID) is not claimed by this tenant.", status: 400)
            }
            var allowed = gateway.hub
            var ancestor = device.parentID
            var depth = 0
            while !allowed, let current = ancestor, depth < 16 {
                if current == gateway.id { allowed = true; break }
                ancestor = try await session.device(id: current)?.parentID
                depth += 1
            }
            known[deviceID] = allowed
            if !allowed { throw Self.notChild(deviceID, gateway: gateway.id) }
        }

        static func notChild(_ deviceID: String, gateway: String) -> RampartError {
            RampartError(
                .notChild,
                "Gateway \(gateway) does not act for device \(deviceID): register it (rampart device set-parent --device-id \(deviceID) --parent-id \(gateway)) or make the gateway a hub (rampart device set-hub --device-id \(gateway)).",
                status: 403)
        }
    }

    static func gateway(_ id: String, tenant: RampartID, session: StoreSession) async throws -> DeviceRecord {
        guard let gateway = try await session.device(id: id), gateway.tenantID == tenant else {
            throw RampartError.forbidden("Device \(id) is not claimed by this tenant.")
        }
        return gateway
    }

    static func requireDevice(_ deviceID: String, tenant: RampartID, session: StoreSession) async throws {
        guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
            throw RampartError.notFound("Device \(deviceID)")
        }
    }

    /// Checks one uploaded message and returns its properties as stored.
    static func validated(_ message: TelemetryUpload, deviceID: String) throws -> (properties: String, systemProperties: String) {
        guard (1...200).contains(message.key.utf8.count) else { throw RampartError.invalidRequest("key must be 1 to 200 bytes.") }
        if let module = message.moduleId, !(1...128).contains(module.utf8.count) {
            throw RampartError.invalidRequest("moduleId must be 1 to 128 bytes.")
        }
        guard let payload = Data(base64Encoded: message.payload) else {
            throw RampartError.invalidRequest("payload is not valid base64.")
        }
        guard payload.count <= maximumTelemetryBytes else {
            throw RampartError.invalidRequest("The payload is \(payload.count) bytes; at most \(maximumTelemetryBytes) are stored.")
        }
        try validate(message.properties)
        guard message.systemProperties.count <= 32,
            message.systemProperties.allSatisfy({ (1...64).contains($0.key.utf8.count) && $0.value.utf8.count <= 1024 })
        else {
            throw RampartError.invalidRequest("systemProperties: at most 32, names 1 to 64 bytes, values at most 1024 bytes.")
        }
        return (try json(message.properties), try json(message.systemProperties))
    }

    /// Application properties: at most 64, names 1 to 128 bytes, values at most 1024, no control characters.
    static func validate(_ properties: [MessageProperty]) throws {
        guard properties.count <= 64 else { throw RampartError.invalidRequest("At most 64 properties, not \(properties.count).") }
        for property in properties {
            guard (1...128).contains(property.name.utf8.count), property.value.utf8.count <= 1024,
                !(property.name + property.value).unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw RampartError.invalidRequest(
                    "Property '\(property.name.prefix(40))': names are 1 to 128 bytes, values at most 1024, without control characters.")
            }
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONCoding.encoder().encode(value), as: UTF8.self)
    }

    static func message(_ record: DeviceMessageRecord) throws -> DeviceMessage {
        let decoder = JSONCoding.decoder()
        let (payload, encoding) = PayloadEncoding.encode(Array(Data(base64Encoded: record.payload) ?? Data()))
        return DeviceMessage(
            sequence: record.sequence, deviceId: record.deviceID, moduleId: record.moduleID, gatewayId: record.gatewayID,
            enqueuedAt: record.enqueuedAt, receivedAt: record.receivedAt,
            properties: try decoder.decode([MessageProperty].self, from: Data(record.properties.utf8)),
            systemProperties: try decoder.decode([String: String].self, from: Data(record.systemProperties.utf8)),
            payload: payload, payloadEncoding: encoding)
    }

    static func message(_ record: CloudMessageRecord, at now: Date) throws -> CloudMessage {
        let (payload, encoding) = PayloadEncoding.encode(Array(Data(base64Encoded: record.payload) ?? Data()))
        let state: CloudMessage.State = record.deliveredAt != nil ? .delivered : record.expiresAt <= now ? .expired : .pending
        return CloudMessage(
            id: record.id.description, deviceId: record.deviceID, payload: payload, payloadEncoding: encoding,
            properties: try JSONCoding.decoder().decode([MessageProperty].self, from: Data(record.properties.utf8)),
            createdAt: record.createdAt, expiresAt: record.expiresAt, state: state, deliveredAt: record.deliveredAt,
            deliveredBy: record.deliveredBy)
    }
}
