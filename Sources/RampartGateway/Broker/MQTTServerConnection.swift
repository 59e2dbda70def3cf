import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import RampartCore
import RampartMQTT

/// One client connection: the MQTT session state machine on the connection's event loop.
///
/// The TLS layer below has already checked the certificate chain against the tenant CAs; this handler
/// checks that the certificate's CN equals the client ID, that the device is admitted, and that every
/// topic is the client's own.
final class MQTTServerConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundOut = ByteBuffer

    /// The limits the broker announces in CONNACK (MQTT 5) and enforces.
    static let receiveMaximum: UInt16 = 1024
    static let connectTimeout: TimeAmount = .seconds(10)

    private enum Phase { case awaitingConnect, connected, closing }

    private let broker: Broker
    private let peerCommonName: @Sendable (ChannelHandlerContext) -> String?
    private var logger: Logger
    private var context: ChannelHandlerContext?
    private var phase = Phase.awaitingConnect
    private var version = MQTTProtocolVersion.v311
    private var identity: ClientIdentity?
    private var will: MQTTWill?
    private var subscriptions: [String: MQTTQoS] = [:]
    private var sessionExpiry: TimeInterval?
    private var connectTimer: Scheduled<Void>?
    private var attached = false

    // Inbound QoS 1: PUBACKs leave in the order the PUBLISHes came (MQTT 4.6).
    private var pendingAcks: [(packetID: UInt16, reason: MQTTReasonCode?)] = []
    private var pendingAckHead = 0

    // Outbound QoS 1.
    private var nextPacketID: UInt16 = 1
    private var sendWindow = 256
    private var inFlight: [UInt16: (publish: MQTTPublish, completion: EventLoopPromise<Void>?)] = [:]
    /// Messages waiting for room in the send window, in order.
    private var waiting: [(publish: MQTTPublish, completion: EventLoopPromise<Void>?)] = []
    /// Messages that match no subscription yet (a device that has not subscribed to devicebound yet).
    private var unsubscribed: [(publish: MQTTPublish, completion: EventLoopPromise<Void>?)] = []
    static let maximumSubscriptions = 64

    init(broker: Broker, logger: Logger, peerCommonName: @escaping @Sendable (ChannelHandlerContext) -> String?) {
        self.broker = broker
        self.logger = logger
        self.peerCommonName = peerCommonName
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        connectTimer = context.eventLoop.scheduleTask(in: Self.connectTimeout) { [weak self] in
            guard let self, self.phase == .awaitingConnect else { return }
            self.logger.info("No CONNECT within the timeout; closing")
            self.close()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The context holds this handler: dropping it here breaks the cycle, so closed connections are freed.
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectTimer?.cancel()
        // A client that said DISCONNECT (without "with will") has no will left.
        finish(publishWill: true)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            logger.info("Keep-alive expired; closing", metadata: ["client": "\(identity?.clientID ?? "?")"])
            disconnect(.keepAliveTimeout, reason: "No packet within one and a half keep-alive periods.")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? MQTTProtocolError else {
            logger.debug("Connection error", metadata: ["error": "\(error)"])
            close()
            return
        }
        logger.info("Refused a packet", metadata: ["error": "\(error)", "client": "\(identity?.clientID ?? "?")"])
        switch phase {
        case .awaitingConnect:
            broker.metrics.connectionsRefused.increment()
            if error.reasonCode == .unsupportedProtocolVersion {
                // MQTT 3.1.1 §3.2.2.3: return code 1 in a 3.1.1 CONNACK, which earlier versions also read.
                write(.connack(MQTTConnAck(sessionPresent: false, reasonCode: .unsupportedProtocolVersion, properties: .init())), version: .v311)
                flushAndClose()
            } else if error.connectProtocolVersion == .v5 {
                // MQTT 5 §4.13.1: a CONNACK with the reason before closing.
                var properties = MQTTProperties()
                properties.reasonString = error.message
                write(.connack(MQTTConnAck(sessionPresent: false, reasonCode: error.reasonCode, properties: properties)), version: .v5)
                flushAndClose()
            } else {
                close()
            }
        case .connected:
            disconnect(error.reasonCode, reason: error.message)
        case .closing:
            break
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = unwrapInboundIn(data)
        switch phase {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else { return close() }
            handleConnect(connect)
        case .connected:
            handle(packet)
        case .closing:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    // MARK: - CONNECT

    private func handleConnect(_ connect: MQTTConnect) {
        connectTimer?.cancel()
        version = connect.protocolVersion
        guard let context else { return }
        guard let identity = ClientIdentity(clientID: connect.clientID) else {
            return refuse(.clientIdentifierNotValid, "The client ID must be the device ID (the certificate's CN), or {deviceId}/{moduleId}.")
        }
        guard let commonName = peerCommonName(context), commonName == identity.deviceID else {
            return refuse(.clientIdentifierNotValid, "The client ID \(identity.deviceID) is not the certificate's CN.")
        }
        if identity.moduleID != nil, !broker.isModuleHost(identity.deviceID) {
            return refuse(.clientIdentifierNotValid, "Module identities ({device}/{module}) belong to the gateway's own device only.")
        }
        guard broker.admits(identity.deviceID) else {
            return refuse(.notAuthorized, "This device is not a registered child of this gateway.")
        }
        if let will = connect.will {
            guard will.qos != .exactlyOnce || version == .v311 else {
                return refuse(.qosNotSupported, "QoS 2 is not supported; use QoS 0 or 1 for the will message.")
            }
            guard case .telemetry = IoTHubTopic.parsePublish(will.topic, identity: identity) else {
                return refuse(.notAuthorized, "A will message must go to the device's own telemetry topic.")
            }
            var accepted = will
            if accepted.qos == .exactlyOnce { accepted.qos = .atLeastOnce }
            self.will = accepted
        }
        self.identity = identity
        logger[metadataKey: "client"] = "\(identity.clientID)"
        let persistent: Bool
        switch version {
        case .v311:
            persistent = !connect.cleanStart
            sessionExpiry = persistent ? TimeInterval(UInt32.max) : 0
        case .v5:
            let expiry = connect.properties.sessionExpiryInterval ?? 0
            persistent = expiry > 0
            sessionExpiry = TimeInterval(expiry)
            if let receiveMaximum = connect.properties.receiveMaximum { sendWindow = Int(receiveMaximum) }
        }
        sendWindow = min(sendWindow, broker.configuration.withLockedValue { $0.maximumInFlight })

        if connect.keepAliveSeconds > 0 {
            let timeout = TimeAmount.milliseconds(Int64(connect.keepAliveSeconds) * 1500)
            try? context.pipeline.syncOperations.addHandler(
                IdleStateHandler(readTimeout: timeout), position: .before(self))
        }
        let reference = Broker.ConnectionReference(
            id: ObjectIdentifier(self), eventLoop: context.eventLoop, handler: NIOLoopBound(self, eventLoop: context.eventLoop))
        let session = broker.attach(identity, connection: reference, cleanStart: connect.cleanStart, persistent: persistent)
        attached = true
        phase = .connected
        subscriptions = session.subscriptions

        var properties = MQTTProperties()
        if version == .v5 {
            properties.maximumQoS = 1
            properties.receiveMaximum = Self.receiveMaximum
            properties.topicAliasMaximum = 0
            properties.sharedSubscriptionAvailable = 0
            properties.subscriptionIdentifierAvailable = 0
            properties.wildcardSubscriptionAvailable = 1
            properties.maximumPacketSize = UInt32(broker.configuration.withLockedValue { $0.maximumMessageBytes } + 64 * 1024)
        }
        write(.connack(MQTTConnAck(sessionPresent: session.sessionPresent, reasonCode: .success, properties: properties)))
        context.flush()
        logger.info("Client connected", metadata: ["protocol": "\(version)", "sessionPresent": "\(session.sessionPresent)"])
        for publish in session.held { send(publish, completion: nil) }
    }

    private func refuse(_ reason: MQTTReasonCode, _ message: String) {
        broker.metrics.connectionsRefused.increment()
        logger.notice("Refused a CONNECT", metadata: ["reason": "\(reason)", "why": "\(message)"])
        var properties = MQTTProperties()
        if version == .v5 { properties.reasonString = message }
        // 3.1.1 has six return codes; the codec maps MQTT 5 reasons onto them.
        let code = version == .v5 || reason.v311ConnectReturnCode != nil ? reason : .notAuthorized
        write(.connack(MQTTConnAck(sessionPresent: false, reasonCode: code, properties: properties)))
        flushAndClose()
    }

    // MARK: - Packets after CONNECT

    private func handle(_ packet: MQTTPacket) {
        switch packet {
        case .publish(let publish): handlePublish(publish)
        case .puback(let ack): handlePubAck(ack)
        case .subscribe(let subscribe): handleSubscribe(subscribe)
        case .unsubscribe(let unsubscribe): handleUnsubscribe(unsubscribe)
        case .pingreq: write(.pingresp)
        case .disconnect(let packet):
            if packet.reasonCode != .disconnectWithWillMessage { will = nil }
            if version == .v5, let expiry = packet.properties.sessionExpiryInterval {
                if sessionExpiry == 0, expiry > 0 {
                    // MQTT 5 §3.14.2.2.2: a session that ended at disconnect cannot be revived here.
                    return disconnect(.protocolError, reason: "Session expiry cannot be set at DISCONNECT when it was 0.")
                }
                sessionExpiry = TimeInterval(expiry)
            }
            phase = .closing
            close()
        case .connect:
            disconnect(.protocolError, reason: "A second CONNECT on one connection.")
        case .pubrec, .pubrel, .pubcomp:
            disconnect(.qosNotSupported, reason: "QoS 2 is not supported.")
        case .auth:
            disconnect(.badAuthenticationMethod, reason: "Enhanced authentication is not supported; the certificate is the identity.")
        case .connack, .suback, .unsuback, .pingresp:
            disconnect(.protocolError, reason: "A client may not send that packet.")
        }
    }

    private func handlePublish(_ publish: MQTTPublish) {
        guard let identity else { return }
        if publish.qos == .exactlyOnce {
            broker.metrics.dropped("qos2").increment()
            return disconnect(.qosNotSupported, reason: "QoS 2 is not supported (as in IoT Hub); publish with QoS 0 or 1.")
        }
        if publish.properties.topicAlias != nil {
            return disconnect(.topicAliasInvalid, reason: "Topic aliases are not supported (Topic Alias Maximum is 0).")
        }
        if publish.qos == .atLeastOnce, pendingAcks.count - pendingAckHead >= Int(Self.receiveMaximum), version == .v5 {
            return disconnect(.receiveMaximumExceeded, reason: "More than \(Self.receiveMaximum) unacknowledged QoS 1 messages.")
        }
        let maximum = broker.configuration.withLockedValue { $0.maximumMessageBytes }
        if publish.payload.readableBytes > maximum {
            broker.metrics.dropped("tooLarge").increment()
            // 0x95 is not a PUBACK reason: the connection ends (MQTT 5 §3.4.2.1).
            return disconnect(.packetTooLarge, reason: "Messages are limited to \(maximum) bytes.")
        }
        guard let meaning = IoTHubTopic.parsePublish(publish.topic, identity: identity) else {
            broker.metrics.dropped("notAuthorized").increment()
            return answer(publish, .notAuthorized, fatal: "A client may publish only to its own devices/\(identity.deviceID)/ topics and $iothub requests.")
        }
        switch meaning {
        case .telemetry(let bag):
            let message = makeMessage(publish, bag: bag, identity: identity)
            // Forwarded messages carry their properties in a topic, which MQTT bounds at 64 KiB.
            guard bag.count <= 64, PropertyBag.encodedCount(message.propertyBag) <= 16 * 1024 else {
                broker.metrics.dropped("malformed").increment()
                return answer(publish, .topicNameInvalid, fatal: "A property bag may hold 64 properties and 16 KiB.")
            }
            accept(message, publish: publish)
        case .twinGet(let requestID):
            answer(publish, .success, fatal: nil)
            respond(topic: "$iothub/twin/res/200/?$rid=\(PropertyBag.percentEncode(requestID))", body: broker.twinDocument(for: identity))
        case .twinPatchReported(let requestID):
            answer(publish, .success, fatal: nil)
            let rid = PropertyBag.percentEncode(requestID)
            if let version = broker.patchReported(for: identity, body: Array(publish.payload.readableBytesView)) {
                respond(topic: "$iothub/twin/res/204/?$rid=\(rid)&$version=\(version)", body: [])
            } else {
                respond(topic: "$iothub/twin/res/400/?$rid=\(rid)", body: Array(#"{"message":"The patch must be a JSON object."}"#.utf8))
            }
        case .methodResponse(let status, let requestID):
            answer(publish, .success, fatal: nil)
            logger.info("Direct method answered", metadata: ["status": "\(status)", "rid": "\(requestID)"])
        }
    }

    /// Turns a telemetry PUBLISH into the message routes see: `$.`-properties become system properties.
    private func makeMessage(_ publish: MQTTPublish, bag: [(String, String)], identity: ClientIdentity) -> GatewayMessage {
        var system: [String: String] = [:]
        var application: [GatewayMessage.Property] = []
        var outputName = "default"
        for (name, value) in bag {
            guard name.hasPrefix("$.") else {
                application.append(.init(name: name, value: value))
                continue
            }
            switch name.dropFirst(2) {
            case "ct": system["contentType"] = value
            case "ce": system["contentEncoding"] = value
            case "mid": system["messageId"] = value
            case "cid": system["correlationId"] = value
            case "uid": system["userId"] = value
            case "to": system["to"] = value
            case "exp": system["absoluteExpiryTime"] = value
            case "ctime": system["iothub-creation-time-utc"] = value
            case "on": outputName = value
            case "cdid", "cmid":
                // A downstream gateway forwarding its children's messages names the original device. Only
                // configured forwarders may; routes always see the authenticated sender as connectionDeviceId.
                if value != identity.deviceID, broker.acceptsOrigin(from: identity.deviceID) {
                    system[String(name.dropFirst(2))] = value
                }
            default: break  // Unknown system properties are not the device's to set.
            }
        }
        if version == .v5 {
            if let contentType = publish.properties.contentType { system["contentType"] = contentType }
            for property in publish.properties.userProperties {
                application.append(.init(name: property.name, value: property.value))
            }
        }
        if publish.retain { application.append(.init(name: "mqtt-retain", value: "true")) }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let source = identity.moduleID == nil ? "/messages/" : "/messages/modules/\(identity.moduleID!)/outputs/\(outputName)"
        return GatewayMessage(
            deviceID: identity.deviceID, moduleID: identity.moduleID, sourcePath: source, systemProperties: system,
            applicationProperties: application, payload: Array(publish.payload.readableBytesView),
            enqueuedAtMilliseconds: now)
    }

    private func accept(_ message: GatewayMessage, publish: MQTTPublish) {
        guard let context else { return }
        let (stored, routed) = broker.accept(message, on: context.eventLoop)
        guard publish.qos == .atLeastOnce, let packetID = publish.packetID else { return }
        let index = pendingAcksOffset + pendingAcks.count
        pendingAcks.append((packetID, nil))
        let unrouted = !routed
        stored.hop(to: context.eventLoop).whenComplete { [weak self] result in
            guard let self else { return }
            let slot = index - self.pendingAcksOffset
            guard slot >= 0, slot < self.pendingAcks.count else { return }
            switch result {
            case .success:
                self.pendingAcks[slot].reason = unrouted && self.version == .v5 ? .noMatchingSubscribers : .success
            case .failure(let error):
                let full = (error as? RampartError)?.code == .storeFull
                self.pendingAcks[slot].reason = full ? .quotaExceeded : .unspecifiedError
                self.logger.warning("A message was refused", metadata: ["error": "\(error)"])
            }
            self.flushAcks()
        }
    }

    /// Set while a flush waits at the end of the event loop's queue.
    private var flushScheduled = false

    /// Flushes once the event loop has run what is queued now, so that everything written meanwhile
    /// (a batch of PUBACKs, a batch of deliveries) goes out in one write instead of one each.
    private func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        let connection = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            connection.value.flushScheduled = false
            connection.value.context?.flush()
        }
    }

    /// How many acknowledgements were removed from the front of `pendingAcks` (so indexes stay valid).
    private var pendingAcksOffset = 0

    private func flushAcks() {
        guard let context else { return }
        var wrote = false
        while pendingAckHead < pendingAcks.count, let reason = pendingAcks[pendingAckHead].reason {
            let packetID = pendingAcks[pendingAckHead].packetID
            pendingAckHead += 1
            if reason.isFailure, version == .v311 {
                // MQTT 3.1.1 has no negative PUBACK: closing leaves the message unacknowledged, so the
                // client sends it again later instead of believing it delivered.
                return disconnect(.unspecifiedError, reason: "The message could not be stored.")
            }
            write(.puback(MQTTAck(packetID: packetID, reasonCode: reason, properties: .init())))
            wrote = true
        }
        if pendingAckHead > 256, pendingAckHead * 2 >= pendingAcks.count {
            pendingAcks.removeFirst(pendingAckHead)
            pendingAcksOffset += pendingAckHead
            pendingAckHead = 0
        }
        if wrote { scheduleFlush() }
    }

    /// Answers a PUBLISH that is not stored: PUBACK for QoS 1, or a DISCONNECT when the failure is fatal
    /// for QoS 0 or a 3.1.1 client (which has no way to hear a refusal).
    private func answer(_ publish: MQTTPublish, _ reason: MQTTReasonCode, fatal: String?) {
        if reason.isFailure, let fatal, publish.qos == .atMostOnce || version == .v311 {
            return disconnect(reason, reason: fatal)
        }
        guard publish.qos == .atLeastOnce, let packetID = publish.packetID else { return }
        pendingAcks.append((packetID, reason))
        flushAcks()
    }

    private func respond(topic: String, body: [UInt8]) {
        guard subscriptions.keys.contains(where: { MQTTTopic.matches(filter: $0, topic: topic) }) else { return }
        write(.publish(MQTTPublish(topic: topic, payload: ByteBuffer(bytes: body), qos: .atMostOnce, retain: false, dup: false, packetID: nil, properties: .init())))
    }

    private func handleSubscribe(_ subscribe: MQTTSubscribe) {
        guard let identity else { return }
        var codes: [MQTTReasonCode] = []
        for subscription in subscribe.subscriptions {
            let filter = subscription.topicFilter
            guard IoTHubTopic.maySubscribe(filter, identity: identity) else {
                logger.notice("Refused a subscription", metadata: ["filter": "\(filter)"])
                codes.append(version == .v5 ? .notAuthorized : .unspecifiedError)
                continue
            }
            guard subscriptions[filter] != nil || subscriptions.count < Self.maximumSubscriptions else {
                codes.append(version == .v5 ? .quotaExceeded : .unspecifiedError)
                continue
            }
            let granted = min(subscription.qos, .atLeastOnce)
            subscriptions[filter] = granted
            codes.append(MQTTReasonCode(rawValue: granted.rawValue))
        }
        broker.setSubscriptions(subscriptions, for: identity)
        write(.suback(MQTTSubAck(packetID: subscribe.packetID, reasonCodes: codes, properties: .init())))
        // Messages held until a matching subscription existed can go now.
        let held = unsubscribed
        unsubscribed.removeAll()
        for entry in held { send(entry.publish, completion: entry.completion) }
    }

    private func handleUnsubscribe(_ unsubscribe: MQTTUnsubscribe) {
        var codes: [MQTTReasonCode] = []
        for filter in unsubscribe.topicFilters {
            codes.append(subscriptions.removeValue(forKey: filter) == nil ? .noSubscriptionExisted : .success)
        }
        if let identity { broker.setSubscriptions(subscriptions, for: identity) }
        write(.unsuback(MQTTUnsubAck(packetID: unsubscribe.packetID, reasonCodes: version == .v5 ? codes : [], properties: .init())))
    }

    // MARK: - Outbound

    /// Sends a message to this client: QoS 1 when its subscription allows, within the send window.
    /// Messages that match no subscription wait until one does.
    func send(_ publish: MQTTPublish, completion: EventLoopPromise<Void>?) {
        guard phase == .connected, let context, context.channel.isActive else {
            completion?.fail(RampartError.notFound("The client"))
            return
        }
        guard let granted = subscriptions.first(where: { MQTTTopic.matches(filter: $0.key, topic: publish.topic) })?.value else {
            unsubscribed.append((publish, completion))
            return
        }
        var outgoing = publish
        outgoing.qos = min(publish.qos, granted)
        if outgoing.qos == .atMostOnce {
            outgoing.packetID = nil
            write(.publish(outgoing))
            scheduleFlush()
            completion?.succeed()
            return
        }
        // Behind messages already waiting for the window, so that order holds.
        guard inFlight.count < sendWindow, waiting.isEmpty || fromWaiting else {
            waiting.append((publish, completion))
            return
        }
        outgoing.packetID = allocatePacketID()
        guard write(.publish(outgoing)) else {
            completion?.fail(RampartError(.invalidRequest, "The message cannot be encoded for this client."))
            return
        }
        inFlight[outgoing.packetID!] = (outgoing, completion)
        scheduleFlush()
    }

    /// Set while ``send`` is called for the head of `waiting`.
    private var fromWaiting = false

    private func allocatePacketID() -> UInt16 {
        repeat {
            nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        } while inFlight[nextPacketID] != nil
        return nextPacketID
    }

    private func handlePubAck(_ ack: MQTTAck) {
        guard let entry = inFlight.removeValue(forKey: ack.packetID) else {
            // MQTT 5 allows ignoring an unknown PUBACK; nothing was waiting for it.
            return
        }
        if ack.reasonCode.isFailure {
            entry.completion?.fail(RampartError(.invalidRequest, "The client refused the message: \(ack.reasonCode)."))
        } else {
            entry.completion?.succeed()
        }
        while inFlight.count < sendWindow, !waiting.isEmpty {
            let next = waiting.removeFirst()
            fromWaiting = true
            send(next.publish, completion: next.completion)
            fromWaiting = false
        }
    }

    /// Called when the gateway shuts down.
    func shutDown() {
        disconnect(.serverShuttingDown, reason: "The gateway is shutting down.")
    }

    /// Called when another connection with the same client ID arrives.
    func takenOver() {
        logger.info("Session taken over by a new connection")
        disconnect(.sessionTakenOver, reason: "Another connection with the same client ID took over.")
    }

    // MARK: - Closing

    private func finish(publishWill: Bool) {
        guard let identity else { return }
        if publishWill, let will, let context {
            let publish = MQTTPublish(topic: will.topic, payload: ByteBuffer(bytes: will.payload), qos: will.qos, retain: will.retain, dup: false, packetID: nil, properties: will.properties)
            if case .telemetry(let bag) = IoTHubTopic.parsePublish(will.topic, identity: identity) {
                _ = broker.accept(makeMessage(publish, bag: bag, identity: identity), on: context.eventLoop).stored
            }
            self.will = nil
        }
        // Cloud-to-device messages not yet acknowledged stay with the session; routed deliveries fail so
        // their queue sends them again.
        var unsent: [MQTTPublish] = []
        phase = .closing
        for entry in inFlight.values.sorted(by: { $0.publish.packetID ?? 0 < $1.publish.packetID ?? 0 }) + waiting + unsubscribed {
            if let completion = entry.completion {
                completion.fail(RampartError.notFound("The client"))
            } else {
                var publish = entry.publish
                publish.packetID = nil
                publish.dup = false
                unsent.append(publish)
            }
        }
        inFlight.removeAll()
        waiting.removeAll()
        unsubscribed.removeAll()
        if attached {
            attached = false
            broker.detach(identity, connection: ObjectIdentifier(self), sessionExpiry: sessionExpiry, unsent: unsent)
        }
    }

    private func disconnect(_ reason: MQTTReasonCode, reason message: String) {
        guard phase != .closing else { return }
        if version == .v5, phase == .connected {
            var properties = MQTTProperties()
            properties.reasonString = message
            write(.disconnect(MQTTDisconnect(reasonCode: reason, properties: properties)))
        }
        phase = .closing
        flushAndClose()
    }

    @discardableResult
    private func write(_ packet: MQTTPacket, version explicit: MQTTProtocolVersion? = nil) -> Bool {
        guard let context else { return false }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do {
            try MQTTCodec.encode(packet, version: explicit ?? version, into: &buffer)
        } catch {
            logger.error("Cannot encode a packet", metadata: ["error": "\(error)"])
            return false
        }
        context.write(wrapOutboundOut(buffer), promise: nil)
        return true
    }

    private func flushAndClose() {
        guard let context else { return }
        phase = .closing
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func close() {
        context?.close(promise: nil)
    }
}
