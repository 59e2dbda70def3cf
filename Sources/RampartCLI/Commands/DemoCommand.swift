import ArgumentParser
import Foundation
import Logging
import Crypto
import RampartAttestation
import RampartCore
import RampartDevice
import RampartImage
import RampartPKI
import RampartServer
import X509
import RampartStore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `rampart demo`: the main job on the embedded default, end to end, in a temporary directory.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a security service on embedded SQLite with an Administrator, a tenant, three attested devices and a gateway in front of a hub, until Ctrl-C.")

    @Option(help: "ADDRESS:PORT for the demo server (default: a free loopback port).") var listen = "127.0.0.1:0"
    @Flag(help: "Stop after the setup instead of waiting for Ctrl-C (for scripts and tests).") var once = false

    func run() async throws {
        var logger = Logger(label: "rampart.demo")
        logger.logLevel = ProcessInfo.processInfo.environment["RAMPART_DEMO_LOG"] == "debug" ? .info : .warning
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
        // In-process device restarts make Hummingbird log the old local API's shutdown as errors; the devices'
        // state is shown through the service instead.
        var deviceLogger = logger
        if deviceLogger.logLevel > .info { deviceLogger.logLevel = .critical }
        let quietLogger = deviceLogger
        let serverCAPEM = try configuration.tlsTrustAnchorPEM
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
            // Demo devices run inside this process, so each measures a small stand-in runtime file; a real device
            // measures its own binary. The factory runtime is admitted by the tenant's manual allow list.
            let factoryRuntime = root.appendingPathComponent("demo-runtime-1.0.0")
            try Data("rampart demo runtime 1.0.0\n".utf8).write(to: factoryRuntime)
            let runtimeDigest = try Measurer.sha256(of: factoryRuntime)
            _ = try await client.json(
                ReferenceValue.self, .POST, "/v1/tenants/\(tenant.id)/reference-values",
                body: ReferenceValueRequest(sha256: runtimeDigest, version: RampartVersion.current, description: "demo factory runtime"))
            print("4. Manufactured and claimed 3 devices; accepted factory runtime \(RampartVersion.current) (sha256 \(runtimeDigest.prefix(16))…).")

            // Run the three device runtimes in-process, each with its own local API, attestation and update agents.
            let serverCA = root.appendingPathComponent("server-ca.pem")
            try serverCAPEM.write(to: serverCA, atomically: true, encoding: .utf8)
            try await withThrowingTaskGroup(of: Void.self) { deviceTasks in
                let stop = DemoDevices()
                for state in states {
                    deviceTasks.addTask {
                        try await stop.run(state: state, server: server, serverCA: serverCA.path, factoryRuntime: factoryRuntime, logger: quietLogger)
                    }
                }
                let list = try await Self.waitForAttestation(client: client, tenant: tenant.id, count: states.count)
                print("5. The devices attested and hold 24 h certificates:")
                Printer.table(["Device ID", "Result", "Certificate not after"], list.devices.map {
                    [$0.id, $0.lastAttestationResult ?? "", $0.certificateNotAfter.map(Timestamp.format) ?? ""]
                })
                try await Self.rollOut(client: client, tenant: tenant.id, devices: list.devices.map(\.id), root: root)
                try await Self.showApps(client: client, tenant: tenant.id, devices: list.devices.map(\.id))
                let telemetryApp = try DemoApps.load("telemetry").manifest.componentID
                let guide = """

                    Next, in another terminal, use the CLI as this Administrator:
                      export RAMPART_HOME=\(home.path)
                      swift run rampart device list
                      swift run rampart device message list --device-id \(list.devices[0].id) --follow
                      swift run rampart device message send --device-id \(list.devices[0].id) --payload hello --property componentId=\(telemetryApp) --wait 30
                      swift run rampart device show-status --state-dir \(states[0].directory.path)
                      swift run rampart device app show-status --state-dir \(states[0].directory.path)
                      swift run rampart device error list --device-id \(list.devices[list.devices.count - 1].id)
                      swift run rampart tenant download-error-report --destination errors.csv
                      openssl x509 -in \(states[0].certificateFile.path) -noout -subject -dates
                      swift run rampart doctor --device-id \(list.devices[0].id)
                      swift run rampart tenant audit list
                      swift run rampart device-group list
                      swift run rampart device show-deployment-status --device-id \(list.devices[0].id)
                      swift run rampart device image list-installed --state-dir \(states[0].directory.path)
                      swift run rampart tenant tuf show
                    """
                let gateways = DemoGateways(
                    client: client, tenant: tenant.id, server: server, serverCA: serverCA, root: root, manufacturer: manufacturer,
                    factoryRuntime: factoryRuntime, runtimes: stop, logger: quietLogger)
                try await gateways.run(devices: states, once: once, guide: guide) {
                    if once {
                        print("Setup complete; stopping (--once).")
                    } else {
                        await running.waitUntilStopped()
                    }
                }
                await stop.stopAll()
                try await deviceTasks.waitForAll()
            }
        }
        print("Demo stopped; removed \(root.path).")
    }

    /// Steps 6–8: a product, the devices in its Production group, then a signed app deployment and a runtime
    /// release, until every device runs both.
    static func rollOut(client: APIClient, tenant: RampartID, devices: [String], root: URL) async throws {
        let product = try await client.json(
            ProductInfo.self, .POST, "/v1/tenants/\(tenant)/products", body: ProductRequest(name: "Demo Board", description: "demo"))
        let groups = try await client.json(DeviceGroupList.self, .GET, "/v1/tenants/\(tenant)/device-groups?product=\(product.id)")
        let production = groups.deviceGroups.first { $0.name == "Production" }!
        for device in devices {
            _ = try await client.send(.PATCH, "/v1/tenants/\(tenant)/devices/\(device)", body: DeviceUpdateRequest(deviceGroupId: production.id))
        }
        print("6. Created product '\(product.name)' with its 5 default device groups; the devices joined 'Production'.")

        let signingKey = P256.Signing.PrivateKey()
        _ = try await client.send(
            .POST, "/v1/tenants/\(tenant)/signing-keys",
            body: SigningKeyRequest(publicKey: signingKey.publicKey.pemRepresentation, description: "demo signing key"))
        // The sample apps of apps/: telemetry for the whole fleet, and the crasher beside it on one device, in
        // the Field Test group.
        var apps: [ImagePackage] = []
        for name in ["telemetry", "crasher"] {
            let (wasm, manifest) = try DemoApps.load(name)
            apps.append(
                try ImagePackage.pack(
                    manifest: ImageManifest(
                        kind: .app, componentID: manifest.componentID, name: manifest.name, version: "1.0.0",
                        payloadSHA256: Hex.encode(SHA256.hash(data: Data(wasm))), payloadLength: wasm.count, appManifest: manifest),
                    payload: wasm, signingKey: signingKey))
        }
        let fieldTest = groups.deviceGroups.first { $0.name == "Field Test" }!
        if let last = devices.last {
            _ = try await client.send(.PATCH, "/v1/tenants/\(tenant)/devices/\(last)", body: DeviceUpdateRequest(deviceGroupId: fieldTest.id))
        }
        let runtimeBytes = Array("rampart demo runtime 1.1.0\n".utf8)
        let runtime = try ImagePackage.pack(
            manifest: ImageManifest(
                kind: .runtime, componentID: ImageManifest.runtimeComponentID, name: "rampart", version: "1.1.0",
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(runtimeBytes))), payloadLength: runtimeBytes.count),
            payload: runtimeBytes, signingKey: signingKey)
        var uploaded: [ImageInfo] = []
        for package in apps + [runtime] {
            let raw = try await client.send(.POST, "/v1/tenants/\(tenant)/images", rawBody: package.bytes, contentType: "application/octet-stream")
            uploaded.append(try JSONCoding.decoder().decode(ImageInfo.self, from: Data(raw.body)))
        }
        _ = try await client.send(
            .POST, "/v1/tenants/\(tenant)/device-groups/\(production.id)/deployments", body: DeploymentRequest(imageIds: [uploaded[0].id]))
        _ = try await client.send(
            .POST, "/v1/tenants/\(tenant)/device-groups/\(fieldTest.id)/deployments", body: DeploymentRequest(imageIds: [uploaded[0].id, uploaded[1].id]))
        _ = try await client.send(
            .POST, "/v1/tenants/\(tenant)/runtime-releases", body: RuntimeReleaseRequest(imageId: uploaded[2].id, feed: .retail))
        print("7. Signed and uploaded the sample apps 'telemetry' and 'crasher' 1.0.0 and runtime 1.1.0. Deployed telemetry to")
        print("   Production, telemetry and crasher to Field Test (the third device), and released the runtime to Retail.")
        print("   Every change re-signed the tenant's TUF metadata; devices verify it before installing anything.")
        for device in devices { _ = try await client.send(.POST, "/v1/tenants/\(tenant)/devices/\(device)/check-now") }

        let deadline = ContinuousClock.now + .seconds(90)
        while true {
            var statuses: [DeploymentStatus] = []
            for device in devices {
                statuses.append(try await client.json(DeploymentStatus.self, .GET, "/v1/tenants/\(tenant)/devices/\(device)/deployment-status"))
            }
            let list = try await client.json(DeviceList.self, .GET, "/v1/tenants/\(tenant)/devices")
            let done = statuses.allSatisfy { $0.upToDate && $0.report?.runtimeVersion == "1.1.0" && $0.report?.lastSwitch?.hasPrefix("confirmed") == true }
                && list.devices.allSatisfy { $0.lastAttestationResult == "success" && $0.softwareVersion != nil }
            if done {
                print("8. Rollout complete: every device runs runtime 1.1.0 (confirmed healthy after the A/B switch) and its group's apps,")
                print("   and re-attested with the new measurements:")
                Printer.table(["Device ID", "Runtime", "Apps", "Last switch"], statuses.map {
                    [$0.deviceId, $0.report?.runtimeVersion ?? "", $0.report?.installedApps.map { "\($0.name) \($0.version)" }.joined(separator: ", ") ?? "",
                     $0.report?.lastSwitch ?? ""]
                })
                return
            }
            if ContinuousClock.now > deadline {
                let summary = statuses.map {
                    "\($0.deviceId.prefix(8)): \($0.report?.result ?? "no report") runtime \($0.report?.runtimeVersion ?? "?") \($0.report?.lastSwitch ?? "no switch")"
                } + list.devices.map { "\($0.id.prefix(8)) attestation \($0.lastAttestationResult ?? "none")" }
                throw RampartError(.internalError, "The rollout did not complete within 90 s: \(summary.joined(separator: "; "))", status: 500)
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    /// Step 9: the apps run. Telemetry from the telemetry app reaches the server through each runtime's own
    /// authenticated connection, and the crasher's trap reaches the tenant's error report.
    static func showApps(client: APIClient, tenant: RampartID, devices: [String]) async throws {
        guard let crashing = devices.last else { return }
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let report = try await client.json(
                ErrorReport.self, .GET, "/v1/tenants/\(tenant)/error-report?format=json&deviceId=\(crashing)&eventClass=appTrap")
            var telemetry = 0
            for device in devices {
                let messages = try await client.json(DeviceMessageList.self, .GET, "/v1/tenants/\(tenant)/devices/\(device)/messages")
                if messages.messages.contains(where: { $0.properties.contains { $0.name == "componentId" } }) { telemetry += 1 }
            }
            if !report.events.isEmpty, telemetry == devices.count {
                print("9. The apps run in their WebAssembly compartments. Each device's telemetry app sent readings through its")
                print("   runtime's own connection (device certificate), stored on the server. The crasher trapped, and the runtime")
                print("   restarts it with backoff; the device uploaded the error, and the tenant's error report shows it:")
                Printer.table(["Device ID", "Event class", "Count", "Description"], report.events.map {
                    [String($0.deviceId.prefix(12)) + "…", $0.eventClass, String($0.eventCount), String($0.description.prefix(60))]
                })
                try await cloudMessageToApp(client: client, tenant: tenant, device: devices[0])
                return
            }
            if ContinuousClock.now > deadline {
                throw RampartError(
                    .internalError,
                    "Within 60 s, \(telemetry) of \(devices.count) devices sent app telemetry and the error report has \(report.events.count) crash rows.",
                    status: 500)
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// A cloud-to-device message addressed to the telemetry app (its `componentId`), which the device's runtime
    /// fetches with its certificate and hands to the app (`RAMPART_MESSAGE_CLOUD`): the server shows it
    /// delivered by the device itself.
    static func cloudMessageToApp(client: APIClient, tenant: RampartID, device: String) async throws {
        let (message, component) = try await sendToTelemetryApp(client: client, tenant: tenant, device: device, route: "through its runtime")
        print("   A cloud-to-device message addressed to the telemetry app (componentId \(component.prefix(8))…) reached it")
        print("   through device \(device.prefix(12))…'s runtime; the server shows it delivered by \(message.deliveredBy?.prefix(12) ?? "?")….")
    }

    /// Sends "report now" to the device's telemetry app and waits (at most 45 s) until the server shows it
    /// delivered. Returns the message and the app's component ID.
    /// - Parameter route: How it should get there, for the error when it does not.
    static func sendToTelemetryApp(
        client: APIClient, tenant: RampartID, device: String, route: String
    ) async throws -> (CloudMessage, component: String) {
        let component = try DemoApps.load("telemetry").manifest.componentID
        let base = "/v1/tenants/\(tenant)/devices/\(device)/cloud-messages"
        var message = try await client.json(
            CloudMessage.self, .POST, base,
            body: CloudMessageRequest(payload: "report now", properties: [MessageProperty(name: "componentId", value: component)]))
        let deadline = ContinuousClock.now + .seconds(45)
        while message.state != .delivered {
            guard ContinuousClock.now < deadline else {
                throw RampartError(
                    .internalError, "The telemetry app on \(device.prefix(12))… did not get its cloud message \(route) within 45 s.", status: 500)
            }
            try await Task.sleep(for: .milliseconds(300))
            message = try await client.json(CloudMessage.self, .GET, "\(base)/\(message.id)")
        }
        return (message, component)
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

/// The demo's in-process devices. A device that installed a runtime restarts in-process into its new slot,
/// the way `rampart device run` re-executes itself.
final class DemoDevices: Sendable {
    private let groups = Mutex<[String: (group: ServiceGroup, restart: @Sendable () async -> Void)]>([:])
    private let stopping = Mutex(false)

    func run(state: DeviceState, server: String, serverCA: String, factoryRuntime: URL, logger: Logger) async throws {
        while !stopping.withLock({ $0 }) {
            let slots = SlotStore(state: state)
            var executable = factoryRuntime
            if case .slot(_, let slotExecutable) = try slots.decideBoot() { executable = slotExecutable }
            let restart = Mutex(false)
            let box = GroupBox()
            let restartRuntime: @Sendable () async -> Void = {
                restart.withLock { $0 = true }
                await box.group?.triggerGracefulShutdown()
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: try DeviceRuntime.services(
                        state: state, server: server, serverCAFile: serverCA, logger: logger, executable: executable,
                        restart: restartRuntime),
                    logger: logger))
            box.group = group
            groups.withLock { $0[state.directory.path] = (group, restartRuntime) }
            if stopping.withLock({ $0 }) { return }
            try await group.run()
            groups.withLock { $0[state.directory.path] = nil }  // releases the state directory lock
            guard restart.withLock({ $0 }) else { return }
        }
    }

    /// Restarts every runtime, as `device run` re-executes itself; each reads its device.toml again.
    func restartAll() async {
        for runtime in groups.withLock({ Array($0.values) }) { await runtime.restart() }
    }

    func stopAll() async {
        stopping.withLock { $0 = true }
        for runtime in groups.withLock({ Array($0.values) }) { await runtime.group.triggerGracefulShutdown() }
    }
}

/// The sample apps the demo deploys: built by scripts/build-apps into .build/apps (built here when missing and
/// the demo runs from the repository, as `swift run rampart demo` does).
enum DemoApps {
    static func load(_ name: String) throws -> (wasm: [UInt8], manifest: AppManifest) {
        let folder = try directory().appendingPathComponent(name)
        let wasm = try Data(contentsOf: folder.appendingPathComponent("app.wasm"))
        let manifest = try AppManifest(bytes: try Data(contentsOf: folder.appendingPathComponent("app_manifest.json")))
        return (Array(wasm), manifest)
    }

    /// Where the built apps are: $RAMPART_APPS, or the `.build/apps` of the repository the demo runs in or its
    /// binary was built in; built there by scripts/build-apps when missing.
    static func directory() throws -> URL {
        if let given = ProcessInfo.processInfo.environment["RAMPART_APPS"] { return URL(fileURLWithPath: given) }
        // The working directory, then the folders above the binary (.build/debug/rampart, or .build/<triple>/debug).
        var roots = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            folder = folder.deletingLastPathComponent()
            roots.append(folder)
        }
        for root in roots {
            let built = root.appendingPathComponent(".build/apps")
            if FileManager.default.fileExists(atPath: built.appendingPathComponent("telemetry/app.wasm").path) { return built }
        }
        for root in roots {
            let script = root.appendingPathComponent("scripts/build-apps")
            guard FileManager.default.isExecutableFile(atPath: script.path) else { continue }
            let built = root.appendingPathComponent(".build/apps")
            let build = Process()
            build.executableURL = script
            build.arguments = [built.path]
            build.standardOutput = FileHandle.nullDevice
            try build.run()
            build.waitUntilExit()
            guard build.terminationStatus == 0 else {
                throw RampartError(.configurationInvalid, "\(script.path) failed (exit \(build.terminationStatus)); run it to see why.")
            }
            return built
        }
        throw RampartError(
            .configurationInvalid,
            "The demo needs the sample apps: run it from the repository (swift run rampart demo), or run scripts/build-apps and set RAMPART_APPS to its output.")
    }
}
