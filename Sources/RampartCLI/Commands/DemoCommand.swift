import ArgumentParser
import Foundation
import Logging
import RampartAttestation
import RampartCore
import RampartDevice
import RampartPKI
import RampartServer
import X509
import RampartStore
import ServiceLifecycle
import UnixSignals

/// `rampart demo`: the main job on the embedded default, end to end, in a temporary directory.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a security service on embedded SQLite with an Administrator, a tenant and three attested devices, until Ctrl-C.")

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
        let manufacturer = try ManufacturerCA.create(in: root.appendingPathComponent("manufacturer"), name: "Demo Devices")
        var configuration = try dataDirectory.serverConfiguration()
        (configuration.host, configuration.port) = try ListenAddress.parse(listen)
        configuration.manufacturerRoots = [try manufacturer.certificate.pemString]

        let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
        let (serverCAPEM, quietLogger) = (try configuration.tlsTrustAnchorPEM, logger)
        try await runtime.withRunningServer(gracefulShutdownSignals: [.sigterm, .sigint]) { running in
            let server = "https://127.0.0.1:\(running.port)"
            print("1. Security service running at \(server) (SQLite, WAL).")

            let invitation = try await runtime.users.inviteServerAdministrator(email: "admin@demo.rampart")
            let user = try await Registration.register(server: server, invitation: invitation.text, directory: home)
            print("2. Registered Administrator \(user.email): a P-256 key in \(home.path)/user-key.pem, no password.")

            var profile = try ClientProfile.load(from: home)
            let client = try APIClient(profile: profile)
            let tenant = try await client.json(
                TenantInfo.self, .POST, "/v1/tenants", body: TenantNameRequest(name: "Demo Fleet"))
            profile.tenant = tenant.id
            try profile.save()
            print("3. Created tenant '\(tenant.name)' (\(tenant.id)) with its certificate authority.")
            let cas = try await client.json(CACertificateList.self, .GET, "/v1/tenants/\(tenant.id)/ca-certificates")
            for ca in cas.certificates {
                print("   Tenant CA \(ca.status.rawValue): SHA-256 \(ca.thumbprint), valid until \(Timestamp.format(ca.notAfter))")
            }

            // Manufacture three devices, claim them, and accept the runtime they measure.
            var states: [DeviceState] = []
            for index in 1...3 {
                let state = DeviceState(directory: root.appendingPathComponent("device-\(index)"))
                let id = try DeviceState.manufacture(at: state.directory, manufacturer: manufacturer, model: "demo-board")
                _ = try await client.json(
                    DeviceInfo.self, .POST, "/v1/tenants/\(tenant.id)/devices", body: DeviceClaimRequest(deviceId: id))
                states.append(state)
            }
            let runtimeDigest = try Measurer.measure(state: states[0]).first { $0.kind == .runtime }!
            _ = try await client.json(
                ReferenceValue.self, .POST, "/v1/tenants/\(tenant.id)/reference-values",
                body: ReferenceValueRequest(sha256: runtimeDigest.sha256, version: runtimeDigest.version, description: "demo build"))
            print("4. Manufactured and claimed 3 devices; accepted runtime \(runtimeDigest.version) (sha256 \(runtimeDigest.sha256.prefix(16))…).")

            // Run the three device runtimes in-process, each with its own local API and attestation loop.
            let serverCA = root.appendingPathComponent("server-ca.pem")
            try serverCAPEM.write(to: serverCA, atomically: true, encoding: .utf8)
            let devices = ServiceGroup(
                configuration: .init(
                    services: try states.flatMap {
                        try DeviceRuntime.services(state: $0, server: server, serverCAFile: serverCA.path, logger: quietLogger)
                    },
                    logger: quietLogger))
            try await withThrowingTaskGroup(of: Void.self) { deviceTasks in
                deviceTasks.addTask { try await devices.run() }
                let list = try await Self.waitForAttestation(client: client, tenant: tenant.id, count: states.count)
                print("5. The devices attested and hold 24 h certificates:")
                Printer.table(["Device ID", "Result", "Certificate not after"], list.devices.map {
                    [$0.id, $0.lastAttestationResult ?? "", $0.certificateNotAfter.map(Timestamp.format) ?? ""]
                })
                print(
                    """

                    Next, in another terminal, use the CLI as this Administrator:
                      export RAMPART_HOME=\(home.path)
                      swift run rampart device list
                      swift run rampart device show-status --state-dir \(states[0].directory.path)
                      openssl x509 -in \(states[0].certificateFile.path) -noout -subject -dates
                      swift run rampart doctor --device-id \(list.devices[0].id)
                      swift run rampart tenant audit list
                    """)
                if once {
                    print("Setup complete; stopping (--once).")
                } else {
                    print("\nPress Ctrl-C to stop the demo and remove its data.")
                    await running.waitUntilStopped()
                }
                await devices.triggerGracefulShutdown()
                try await deviceTasks.waitForAll()
            }
        }
        print("Demo stopped; removed \(root.path).")
    }

    /// Polls the device list until `count` devices attested successfully (at most 60 s).
    static func waitForAttestation(client: APIClient, tenant: RampartID, count: Int) async throws -> DeviceList {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let list = try await client.json(DeviceList.self, .GET, "/v1/tenants/\(tenant)/devices")
            if list.devices.filter({ $0.lastAttestationResult == "success" }).count >= count { return list }
            if ContinuousClock.now > deadline {
                throw RampartError(
                    .internalError, "The demo devices did not attest within 60 s: \(list.devices.map { $0.lastAttestationResult ?? "none" })",
                    status: 500)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
