import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RampartMQTT
import ServiceLifecycle

/// The MQTT-over-TLS listener (8883), a `Service`: accepts connections until graceful shutdown.
public struct MQTTListener: Service {
    private let host: String
    private let port: Int
    private let tls: GatewayTLS
    private let broker: Broker
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onBound: @Sendable (Int) -> Void

    /// Creates the listener; `onBound` is told the port (useful with port 0).
    public init(
        host: String, port: Int, tls: GatewayTLS, broker: Broker, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.broker = broker
        self.group = group
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let tls = tls
        let broker = broker
        let logger = logger
        let maximumPacketSize = broker.configuration.withLockedValue { $0.maximumMessageBytes } + 64 * 1024
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(NIOSSLServerHandler(context: tls.context))
                    try operations.addHandler(ByteToMessageHandler(MQTTDecoder(version: nil, maximumPacketSize: maximumPacketSize)))
                    try operations.addHandler(
                        MQTTServerConnection(broker: broker, logger: logger, peerCommonName: GatewayTLS.clientCommonName))
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        logger.info("MQTT listener ready", metadata: ["address": "\(host):\(bound)"])
        onBound(bound)
        // Close on graceful shutdown, and also when the group is cancelled because another service
        // failed (say the metrics port was taken): otherwise the process would never stop.
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
            } onGracefulShutdown: {
                channel.close(promise: nil)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
        broker.disconnectAll()
    }
}
