import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartServer
import RampartStore
import ServiceLifecycle
import UnixSignals

/// `rampart demo`: the main job on the embedded default, end to end, in a temporary directory.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a server on embedded SQLite, register an Administrator, create a tenant, and keep running until Ctrl-C.")

    @Option(help: "ADDRESS:PORT for the demo server (default: a free loopback port).") var listen = "127.0.0.1:0"
    @Flag(help: "Stop after the setup instead of waiting for Ctrl-C (for scripts and tests).") var once = false

    func run() async throws {
        var logger = Logger(label: "rampart.demo")
        logger.logLevel = .warning
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-demo-\(RampartID())")
        let dataDirectory = DataDirectory(path: root.appendingPathComponent("data").path)
        let home = root.appendingPathComponent("home")
        defer { try? FileManager.default.removeItem(at: root) }

        print("Rampart demo: data in \(root.path) (removed on exit)")
        try dataDirectory.initialize(hostnames: [], writeMasterKey: true, now: Date())
        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = try ListenAddress.parse(listen)
        configuration.store = .sqlite(path: dataDirectory.sqliteFile.path)
        configuration.masterKey = try dataDirectory.masterKey(file: nil, environment: [:])
        configuration.tlsCertificatePEM = try String(contentsOf: dataDirectory.tlsCertificateFile, encoding: .utf8)
        configuration.tlsKeyPEM = try String(contentsOf: dataDirectory.tlsKeyFile, encoding: .utf8)

        let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(
            configuration: .init(
                services: try runtime.services(onServerRunning: { portContinuation.yield($0) }),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            let server = "https://127.0.0.1:\(port)"
            print("1. Security service running at \(server) (SQLite, WAL).")

            let invitation = try await runtime.users.inviteServerAdministrator(email: "admin@demo.rampart")
            let user = try await Registration.register(server: server, invitation: invitation.text, directory: home)
            print("2. Registered Administrator \(user.email): a P-256 key in \(home.path)/user-key.pem, no password.")

            let profile = try ClientProfile.load(from: home)
            let client = try APIClient(profile: profile)
            let tenant = try await client.json(
                TenantInfo.self, .POST, "/v1/tenants", body: TenantNameRequest(name: "Demo Fleet"))
            var selected = profile
            selected.tenant = tenant.id
            try selected.save()
            print("3. Created tenant '\(tenant.name)' (\(tenant.id)) with its certificate authority.")
            let cas = try await client.json(CACertificateList.self, .GET, "/v1/tenants/\(tenant.id)/ca-certificates")
            for ca in cas.certificates {
                print("   Tenant CA \(ca.status.rawValue): SHA-256 \(ca.thumbprint), valid until \(Timestamp.format(ca.notAfter))")
            }
            print(
                """

                Next, in another terminal, use the CLI as this Administrator:
                  export RAMPART_HOME=\(home.path)
                  swift run rampart tenant list
                  swift run rampart ca-certificate download --destination ca.pem && openssl x509 -in ca.pem -noout -text
                  swift run rampart role add --email alice@example.com --role Contributor
                  swift run rampart tenant audit list
                """)
            if once {
            print("Setup complete; stopping (--once).")
            await group.triggerGracefulShutdown()
            } else {
            print("\nPress Ctrl-C to stop the demo and remove its data.")
            }
            try await tasks.next()
            tasks.cancelAll()
        }
        print("Demo stopped; removed \(root.path).")
    }
}
