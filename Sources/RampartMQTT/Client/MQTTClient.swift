import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// An error of the MQTT client: a stable code, the server's reason code when it gave one, and a message.
public struct MQTTClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// The server answered CONNECT with a failure.
        public static let connectionRefused = Code(rawValue: "connectionRefused")
        /// The connection closed (or could not be made) before the operation finished.
        public static let connectionClosed = Code(rawValue: "connectionClosed")
        /// The server refused a publish or subscription.
        public static let refused = Code(rawValue: "refused")
        /// No answer in time.
        public static let timeout = Code(rawValue: "timeout")
    }

    /// The code.
    public var code: Code
    /// The server's reason code, when it sent one.
    public var reasonCode: MQTTReasonCode?
    /// What happened.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, reasonCode: MQTTReasonCode? = nil, _ message: String) {
        self.code = code
        self.reasonCode = reasonCode
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

/// An async MQTT 3.1.1 / 5 client over TCP or TLS, used by the upstream bridge, the device runtime's link to
/// its gateway and the benchmark.
///
/// Publishes are pipelined: each returns a future that completes on PUBACK (QoS 1) or once written
/// (QoS 0), so many can be in flight at once. Incoming PUBLISHes arrive on ``messages``; QoS 1 ones
/// are acknowledged on arrival, or by the caller (``acknowledge(_:)``) when the configuration says so.
public final class MQTTClient: Sendable {
    /// Connection settings.
    public struct Configuration: Sendable {
        /// The broker's host.
        public var host: String
        /// The broker's port.
        public var port: Int
        /// TLS settings; `nil` for plain TCP.
        public var tls: TLSConfiguration?
        /// The name to check the server certificate against (defaults to `host`).
        public var serverHostname: String?
        /// The client ID.
        public var clientID: String
        /// 3.1.1 or 5.
        public var protocolVersion: MQTTProtocolVersion = .v311
        /// Seconds between PINGREQs when idle; 0 turns keep-alive off.
        public var keepAliveSeconds: UInt16 = 60
        /// Start a new session (3.1.1 clean session).
        public var cleanStart = true
        /// MQTT 5 session expiry, seconds.
        public var sessionExpirySeconds: UInt32?
        /// The user name (IoT Hub: `{host}/{deviceId}/?api-version=…`).
        public var username: String?
        /// How long to wait for CONNACK.
        public var connectTimeout: TimeAmount = .seconds(15)
        /// The largest packet accepted from the server.
        public var maximumPacketSize = 1 << 20
        /// The message the server publishes if the connection ends without DISCONNECT.
        public var will: MQTTWill?
        /// Whether incoming QoS 1 messages are acknowledged as they arrive (the default), or only when the
        /// caller passes them to ``MQTTClient/acknowledge(_:)``, once it has dealt with them.
        public var acknowledgesOnArrival = true

        /// Creates settings.
        public init(host: String, port: Int, tls: TLSConfiguration? = nil, clientID: String) {
            self.host = host
            self.port = port
            self.tls = tls
            self.clientID = clientID
        }
    }

    private let channel: any Channel
    private let handler: NIOLoopBound<MQTTClientHandler>
    /// Messages the server sent, in order.
    public let messages: AsyncStream<MQTTPublish>
    /// The CONNACK the server sent.
    public let connAck: MQTTConnAck

    private init(channel: any Channel, handler: NIOLoopBound<MQTTClientHandler>, messages: AsyncStream<MQTTPublish>, connAck: MQTTConnAck) {
        self.channel = channel
        self.handler = handler
        self.messages = messages
        self.connAck = connAck
    }

    /// Connects, sends CONNECT and waits for a successful CONNACK.
    ///
    /// - Throws: ``MQTTClientError`` `connectionRefused` with the server's reason, `connectionClosed` when
    ///   the connection or TLS handshake fails, `timeout` when no CONNACK arrives; `CancellationError` when the
    ///   task is cancelled while it waits for CONNACK.
    public static func connect(
        _ configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MQTTClient {
        let (messages, continuation) = AsyncStream.makeStream(of: MQTTPublish.self)
        let sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            do { sslContext = try NIOSSLContext(configuration: tls) } catch {
                throw MQTTClientError(.connectionClosed, "Cannot set up TLS: \(error).")
            }
        } else {
            sslContext = nil
        }
        let connected = group.next().makePromise(of: MQTTConnAck.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let operations = channel.pipeline.syncOperations
                        if let sslContext {
                            let name = configuration.serverHostname ?? configuration.host
                            let isIP = (try? SocketAddress(ipAddress: name, port: 0)) != nil
                            try operations.addHandler(
                                try NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : name))
                        }
                        try operations.addHandler(ByteToMessageHandler(
                            MQTTDecoder(version: configuration.protocolVersion, maximumPacketSize: configuration.maximumPacketSize)))
                        try operations.addHandler(MessageToByteHandler(MQTTEncoder(version: configuration.protocolVersion)))
                        try operations.addHandler(
                            MQTTClientHandler(configuration: configuration, connected: connected, messages: continuation))
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            continuation.finish()
            connected.fail(error)
            throw MQTTClientError(.connectionClosed, "Cannot connect to \(configuration.host):\(configuration.port): \(error).")
        }
        let timeout = channel.eventLoop.scheduleTask(in: configuration.connectTimeout) {
            connected.fail(MQTTClientError(.timeout, "No CONNACK within \(configuration.connectTimeout)."))
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        let connAck: MQTTConnAck
        do {
            // A cancelled task gives up at once rather than at the timeout.
            connAck = try await withTaskCancellationHandler {
                try await connected.futureResult.get()
            } onCancel: {
                connected.fail(CancellationError())
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: MQTTClientHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return MQTTClient(channel: channel, handler: handler, messages: messages, connAck: connAck)
    }

    /// Sends a PUBLISH; the future completes on PUBACK for QoS 1, or once written for QoS 0.
    ///
    /// Calls made one after another are sent in that order. The future fails with ``MQTTClientError``
    /// `refused` on a negative PUBACK, `connectionClosed` if the connection ends first.
    public func publish(_ publish: MQTTPublish) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let handler = handler
        channel.eventLoop.execute { handler.value.publish(publish, promise: promise) }
        return promise.futureResult
    }

    /// Acknowledges an incoming QoS 1 message (PUBACK), for a client made with
    /// ``Configuration/acknowledgesOnArrival`` off. Does nothing for other messages or a closed connection.
    public func acknowledge(_ publish: MQTTPublish) {
        guard publish.qos == .atLeastOnce, let packetID = publish.packetID else { return }
        let handler = handler
        channel.eventLoop.execute { handler.value.acknowledge(packetID) }
    }

    /// Subscribes and returns the granted reason codes.
    ///
    /// - Throws: ``MQTTClientError`` `connectionClosed` if the connection ends first; `CancellationError` when
    ///   the task is cancelled first.
    public func subscribe(_ subscriptions: [MQTTSubscription]) async throws -> [MQTTReasonCode] {
        let promise = channel.eventLoop.makePromise(of: [MQTTReasonCode].self)
        let handler = handler
        channel.eventLoop.execute { handler.value.subscribe(subscriptions, promise: promise) }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }

    /// Sends DISCONNECT and closes.
    public func disconnect() async {
        let handler = handler
        try? await channel.eventLoop.submit { handler.value.disconnect() }.get()
        try? await channel.closeFuture.get()
    }

    /// Closes the connection without DISCONNECT, as a lost link would (the server then sends the will).
    public func close() {
        channel.close(promise: nil)
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// Completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Why the server closed the connection, when it said (MQTT 5 DISCONNECT).
    public var disconnectReason: EventLoopFuture<MQTTDisconnect?> {
        let handler = handler
        return channel.closeFuture.map { handler.value.serverDisconnect }
    }
}

/// The client's channel handler: CONNECT/CONNACK, packet identifiers, acknowledgements and keep-alive.
final class MQTTClientHandler: ChannelDuplexHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundIn = Never
    typealias OutboundOut = MQTTPacket

    private let configuration: MQTTClient.Configuration
    private let connected: EventLoopPromise<MQTTConnAck>
    private let messages: AsyncStream<MQTTPublish>.Continuation
    private var context: ChannelHandlerContext?
    private var isConnected = false
    private var nextPacketID: UInt16 = 0
    private var pendingPublishes: [UInt16: EventLoopPromise<Void>] = [:]
    private var pendingSubscribes: [UInt16: EventLoopPromise<[MQTTReasonCode]>] = [:]
    private var pingTask: RepeatedTask?
    private var awaitingPong = false
    private(set) var serverDisconnect: MQTTDisconnect?

    init(configuration: MQTTClient.Configuration, connected: EventLoopPromise<MQTTConnAck>, messages: AsyncStream<MQTTPublish>.Continuation) {
        self.configuration = configuration
        self.connected = connected
        self.messages = messages
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { sendConnect(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendConnect(context: context)
        context.fireChannelActive()
    }

    private var connectSent = false

    private func sendConnect(context: ChannelHandlerContext) {
        guard !connectSent else { return }
        connectSent = true
        var properties = MQTTProperties()
        if configuration.protocolVersion == .v5 {
            properties.sessionExpiryInterval = configuration.sessionExpirySeconds
            properties.maximumPacketSize = UInt32(configuration.maximumPacketSize)
        }
        let connect = MQTTConnect(
            protocolVersion: configuration.protocolVersion, clientID: configuration.clientID,
            cleanStart: configuration.cleanStart, keepAliveSeconds: configuration.keepAliveSeconds,
            username: configuration.username, password: nil, will: configuration.will, properties: properties)
        context.writeAndFlush(wrapOutboundOut(.connect(connect)), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        pingTask?.cancel()
        let reason = serverDisconnect.map { " (\($0.reasonCode)\($0.properties.reasonString.map { ": \($0)" } ?? ""))" } ?? ""
        let error = MQTTClientError(.connectionClosed, reasonCode: serverDisconnect?.reasonCode, "The connection closed\(reason).")
        connected.fail(error)
        for promise in pendingPublishes.values { promise.fail(error) }
        for promise in pendingSubscribes.values { promise.fail(error) }
        pendingPublishes.removeAll()
        pendingSubscribes.removeAll()
        messages.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A packet this client could not encode fails only its own publish (through the write promise).
        if error is MQTTProtocolError, isConnected { return }
        connected.fail(MQTTClientError(.connectionClosed, "\(error)"))
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .connack(let ack):
            guard !isConnected else { return context.close(promise: nil) }
            if ack.reasonCode.isFailure {
                let why = ack.properties.reasonString.map { ": \($0)" } ?? ""
                connected.fail(MQTTClientError(.connectionRefused, reasonCode: ack.reasonCode, "The server refused the connection (\(ack.reasonCode))\(why)."))
                context.close(promise: nil)
                return
            }
            isConnected = true
            startKeepAlive(context: context)
            connected.succeed(ack)
        case .puback(let ack):
            guard let promise = pendingPublishes.removeValue(forKey: ack.packetID) else { return }
            if ack.reasonCode.isFailure {
                let why = ack.properties.reasonString.map { ": \($0)" } ?? ""
                promise.fail(MQTTClientError(.refused, reasonCode: ack.reasonCode, "The server refused the message (\(ack.reasonCode))\(why)."))
            } else {
                promise.succeed()
            }
        case .suback(let ack):
            pendingSubscribes.removeValue(forKey: ack.packetID)?.succeed(ack.reasonCodes)
        case .unsuback:
            break
        case .publish(let publish):
            messages.yield(publish)
            if publish.qos == .atLeastOnce, let packetID = publish.packetID, configuration.acknowledgesOnArrival {
                context.writeAndFlush(wrapOutboundOut(.puback(MQTTAck(packetID: packetID, reasonCode: .success, properties: .init()))), promise: nil)
            } else if publish.qos == .exactlyOnce, let packetID = publish.packetID {
                context.writeAndFlush(wrapOutboundOut(.pubrec(MQTTAck(packetID: packetID, reasonCode: .success, properties: .init()))), promise: nil)
            }
        case .pubrec(let ack):
            // QoS 2, step two: release; the promise completes on PUBCOMP.
            guard pendingPublishes[ack.packetID] != nil else { return }
            if ack.reasonCode.isFailure {
                pendingPublishes.removeValue(forKey: ack.packetID)?.fail(
                    MQTTClientError(.refused, reasonCode: ack.reasonCode, "The server refused the message (\(ack.reasonCode))."))
                return
            }
            context.writeAndFlush(wrapOutboundOut(.pubrel(MQTTAck(packetID: ack.packetID, reasonCode: .success, properties: .init()))), promise: nil)
        case .pubcomp(let ack):
            pendingPublishes.removeValue(forKey: ack.packetID)?.succeed()
        case .pubrel(let ack):
            context.writeAndFlush(wrapOutboundOut(.pubcomp(MQTTAck(packetID: ack.packetID, reasonCode: .success, properties: .init()))), promise: nil)
        case .pingresp:
            awaitingPong = false
        case .disconnect(let disconnect):
            serverDisconnect = disconnect
            context.close(promise: nil)
        default:
            context.close(promise: nil)
        }
    }

    private func startKeepAlive(context: ChannelHandlerContext) {
        guard configuration.keepAliveSeconds > 0 else { return }
        let interval = TimeAmount.seconds(Int64(configuration.keepAliveSeconds))
        pingTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            guard let self, let context = self.context else { return }
            if self.awaitingPong {
                // No PINGRESP within a whole keep-alive period: the link is dead.
                context.close(promise: nil)
                return
            }
            self.awaitingPong = true
            context.writeAndFlush(self.wrapOutboundOut(.pingreq), promise: nil)
        }
    }

    private func allocatePacketID() -> UInt16 {
        repeat {
            nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        } while pendingPublishes[nextPacketID] != nil || pendingSubscribes[nextPacketID] != nil
        return nextPacketID
    }

    func publish(_ publish: MQTTPublish, promise: EventLoopPromise<Void>) {
        guard let context, isConnected, context.channel.isActive else {
            return promise.fail(MQTTClientError(.connectionClosed, "The connection is closed."))
        }
        var outgoing = publish
        switch publish.qos {
        case .atMostOnce:
            outgoing.packetID = nil
            context.writeAndFlush(wrapOutboundOut(.publish(outgoing)), promise: promise)
        case .atLeastOnce, .exactlyOnce:
            let id = allocatePacketID()
            outgoing.packetID = id
            pendingPublishes[id] = promise
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { [weak self] error in
                guard let self, error is MQTTProtocolError else { return }
                self.pendingPublishes.removeValue(forKey: id)?.fail(error)
            }
            context.writeAndFlush(wrapOutboundOut(.publish(outgoing)), promise: written)
        }
    }

    func acknowledge(_ packetID: UInt16) {
        guard let context, isConnected, context.channel.isActive else { return }
        context.writeAndFlush(wrapOutboundOut(.puback(MQTTAck(packetID: packetID, reasonCode: .success, properties: .init()))), promise: nil)
    }

    func subscribe(_ subscriptions: [MQTTSubscription], promise: EventLoopPromise<[MQTTReasonCode]>) {
        guard let context, isConnected else {
            return promise.fail(MQTTClientError(.connectionClosed, "The connection is closed."))
        }
        let id = allocatePacketID()
        pendingSubscribes[id] = promise
        context.writeAndFlush(wrapOutboundOut(.subscribe(MQTTSubscribe(packetID: id, subscriptions: subscriptions, properties: .init()))), promise: nil)
    }

    func disconnect() {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(.disconnect(MQTTDisconnect(reasonCode: .normalDisconnection, properties: .init()))))
            .whenComplete { _ in context.close(promise: nil) }
    }
}
