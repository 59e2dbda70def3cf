import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartPKI
import RampartServer
import RampartStore
import ServiceLifecycle
import UnixSignals

/// `rampart server …`.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Initialise and run the security service.",
        subcommands: [Init.self, Run.self, CreateInvitation.self])

    /// Options shared by the server subcommands.
    struct Options: ParsableArguments {
        @Option(help: "The data directory.") var dataDir: String
        @Option(help: "A postgres:// URL to use instead of the embedded SQLite database.") var database: String?
        @Option(help: "A file holding the base64 master key (default: DATA_DIR/master.key or $RAMPART_MASTER_KEY).")
        var masterKeyFile: String?

        func configuration() throws -> ServerConfiguration {
            let directory = DataDirectory(path: dataDir)
            var configuration = ServerConfiguration()
            configuration.store =
                if let database { try StoreLocation(parsing: database) } else { .sqlite(path: directory.sqliteFile.path) }
            configuration.masterKey = try directory.masterKey(
                file: masterKeyFile, environment: ProcessInfo.processInfo.environment)
            return configuration
        }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a data directory: master key, development TLS certificate, database, and the first Administrator's invitation.")
        @OptionGroup var options: Options
        @Option(help: "Extra DNS names or IP addresses for the development TLS certificate.") var hostname: [String] = []
        @Option(help: "The first Administrator's email.") var adminEmail = "admin@rampart.local"

        func run() async throws {
            let directory = DataDirectory(path: options.dataDir)
            let environmentKey = ProcessInfo.processInfo.environment["RAMPART_MASTER_KEY"]
            let writeMasterKey = options.masterKeyFile == nil && (environmentKey ?? "").isEmpty
            let existed = FileManager.default.fileExists(atPath: directory.url.path)
            try directory.initialize(hostnames: hostname, writeMasterKey: writeMasterKey, now: Date())
            let invitation: InvitationToken
            var configuration: ServerConfiguration
            do {
                configuration = try options.configuration()
                configuration.tlsCertificatePEM = try String(contentsOf: directory.tlsCertificateFile, encoding: .utf8)
                invitation = try await ServerCommand.withStore(configuration) { runtime in
                    try await runtime.users.inviteServerAdministrator(email: adminEmail)
                }
            } catch {
                // Undo, so that init can simply be run again once the problem (say, the database) is fixed.
                directory.removeInitialization(removeDirectory: !existed, masterKey: writeMasterKey)
                throw error
            }
            print("Initialised \(directory.url.path) (\(configuration.store)).")
            print("Start the server:   rampart server run --data-dir \(options.dataDir)")
            print("Then register the first Administrator (\(adminEmail)) within 7 days; the invitation works once:")
            print("Invitation: \(invitation.text)")
            print("  rampart register-user --server https://127.0.0.1:8443 --invitation <invitation>")
        }
    }

    struct CreateInvitation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-invitation",
            abstract: "Create another server Administrator invitation, working on the data directory directly (recovery).")
        @OptionGroup var options: Options
        @Option(help: "The new Administrator's email.") var email: String

        func run() async throws {
            let directory = DataDirectory(path: options.dataDir)
            var configuration = try options.configuration()
            configuration.tlsCertificatePEM = (try? String(contentsOf: directory.tlsCertificateFile, encoding: .utf8)) ?? ""
            let invitation = try await ServerCommand.withStore(configuration) { runtime in
                try await runtime.users.inviteServerAdministrator(email: email)
            }
            print("Invitation: \(invitation.text)")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the security service until SIGTERM or Ctrl-C.")
        @OptionGroup var options: Options
        @Option(help: "ADDRESS:PORT to listen on.") var listen = "127.0.0.1:8443"
        @Option(help: "A PEM certificate chain for TLS (default: DATA_DIR/tls/server.pem).") var tlsCert: String?
        @Option(help: "The PEM key for --tls-cert (default: DATA_DIR/tls/server-key.pem).") var tlsKey: String?
        @Option(help: "Log format: json or text.") var logFormat: String = "json"
        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"
        @Option(help: "A trusted manufacturer root (PEM); repeatable. DATA_DIR/manufacturer-roots/*.pem are trusted too.")
        var manufacturerRoot: [String] = []

        func run() async throws {
            guard let format = StructuredLogHandler.Format(rawValue: logFormat),
                let level = Logger.Level(rawValue: logLevel)
            else {
                throw RampartError(.configurationInvalid, "Unknown --log-format or --log-level.")
            }
            LoggingSystem.bootstrap { StructuredLogHandler(label: $0, format: format, level: level) }
            let logger = Logger(label: "rampart.server")
            let directory = DataDirectory(path: options.dataDir)
            var configuration = try options.configuration()
            (configuration.host, configuration.port) = try ListenAddress.parse(listen)
            let certificatePath = tlsCert ?? directory.tlsCertificateFile.path
            let keyPath = tlsKey ?? directory.tlsKeyFile.path
            guard let certificate = try? String(contentsOfFile: certificatePath, encoding: .utf8),
                let key = try? String(contentsOfFile: keyPath, encoding: .utf8)
            else {
                throw RampartError(
                    .configurationInvalid,
                    "Cannot read the TLS certificate \(certificatePath) or key \(keyPath). Run 'rampart server init --data-dir \(options.dataDir)' or pass --tls-cert and --tls-key.")
            }
            configuration.tlsCertificatePEM = certificate
            configuration.tlsKeyPEM = key
            configuration.manufacturerRoots = try directory.manufacturerRoots(extra: manufacturerRoot)
            if configuration.manufacturerRoots.isEmpty {
                logger.warning("No manufacturer roots are configured: every attestation will be refused (endorsementUntrusted). Pass --manufacturer-root.")
            }
            let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
            let (host, store) = (configuration.host, configuration.store)
            try await runtime.withRunningServer(gracefulShutdownSignals: [.sigterm, .sigint]) { running in
                logger.notice(
                    "Rampart server listening", metadata: ["address": "https://\(host):\(running.port)", "store": "\(store)"])
                await running.waitUntilStopped()
            }
            logger.notice("Rampart server stopped")
        }
    }

    /// Runs `body` with the store running and migrated, then shuts it down.
    static func withStore<T: Sendable>(
        _ configuration: ServerConfiguration, _ body: @escaping @Sendable (ServerRuntime) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "rampart.server")
        logger.logLevel = .warning
        let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
        return try await runtime.store.withRunning { try await body(runtime) }
    }
}

/// Parses `--listen ADDRESS:PORT` (IPv6 in brackets).
enum ListenAddress {
    static func parse(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw RampartError(.configurationInvalid, "--listen must be ADDRESS:PORT, e.g. 127.0.0.1:8443 or [::1]:8443.")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}
