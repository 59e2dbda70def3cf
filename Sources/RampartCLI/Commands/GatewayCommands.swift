import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartGateway
import ServiceLifecycle
import UnixSignals

/// `rampart gateway …`: the transparent MQTT gateway, or the hub when it has no upstream.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the MQTT gateway (IoT Hub device dialect over mutual TLS) or hub.",
        subcommands: [Init.self, Run.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the gateway CA, a server certificate for --hostname, and a commented gateway.toml.")
        @Option(help: "The directory to write into (must not hold these files yet).") var out: String
        @Option(help: "The host name or IP address devices connect to.") var hostname: String

        func run() async throws {
            let result = try GatewaySetup.initialize(directory: out, hostname: hostname)
            print("Gateway CA (install on devices): \(result.caCertificate)")
            print("Configuration: \(result.configuration)")
            print("Next: put the tenant CAs in \(out)/trust-bundle.pem (rampart ca-certificate bundle --destination FILE), then")
            print("  rampart gateway run --config \(result.configuration)")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the gateway until SIGTERM or Ctrl-C.")
        @Option(help: "The gateway.toml to run with.") var config: String
        @Option(help: "ADDRESS:PORT to listen on (overrides [listener]).") var listen: String?
        @Option(help: "A PEM bundle of tenant CAs (overrides [trust] bundle).") var trustBundle: String?
        @Option(help: "Log format: json or text.") var logFormat: String = "json"
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"

        func run() async throws {
            guard let format = StructuredLogHandler.Format(rawValue: logFormat), let level = Logger.Level(rawValue: logLevel) else {
                throw RampartError(.configurationInvalid, "Unknown --log-format or --log-level.")
            }
            LoggingSystem.bootstrap { StructuredLogHandler(label: $0, format: format, level: level) }
            let logger = Logger(label: "rampart.gateway")
            var configuration = try GatewayConfiguration.load(file: config)
            if let listen { (configuration.listener.host, configuration.listener.port) = try ListenAddress.parse(listen) }
            if let trustBundle { configuration.trust.bundle = URL(fileURLWithPath: trustBundle).standardizedFileURL.path }
            let gateway = try Gateway(configuration: configuration, logger: logger)
            let host = configuration.listener.host
            let role = configuration.hubRole ? "hub" : "gateway to \(configuration.upstream?.url ?? "")"
            let services = try gateway.services(listenerBound: { port in
                logger.notice("Rampart gateway listening", metadata: ["address": "mqtts://\(host):\(port)", "role": "\(role)"])
            })
            let group = ServiceGroup(
                configuration: .init(
                    services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            logger.notice("Rampart gateway stopped")
        }
    }
}
