import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import RampartAttestation
import RampartCore
import RampartDevice
import RampartPKI
import RampartSandbox
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `rampart manufacture …`: what a factory does.
struct ManufactureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manufacture", abstract: "Create a manufacturer CA and manufacture devices with endorsed identities.",
        subcommands: [CA.self, Device.self])

    struct CA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ca", abstract: "Manage the manufacturer CA.", subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a manufacturer CA in a directory.")
            @Option(help: "The directory to create it in.") var out: String
            @Option(help: "The manufacturer's name.") var name = "Rampart Devices"

            func run() async throws {
                let ca = try ManufacturerCA.create(in: URL(fileURLWithPath: out), name: name)
                print("Manufacturer CA created: \(out)/\(ManufacturerCA.certificateFile) (SHA-256 \(try ca.certificate.sha256Thumbprint)).")
                print("Keep \(out)/\(ManufacturerCA.keyFile) offline. Give the server the root:")
                print("  rampart server run --data-dir D --manufacturer-root \(out)/\(ManufacturerCA.certificateFile)")
            }
        }
    }

    struct Device: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "device", abstract: "Manufacture a device: a new identity key and its endorsement.")
        @Option(help: "The manufacturer CA directory.") var manufacturerCa: String
        @Option(help: "The device state directory to create.") var out: String
        @Option(help: "The hardware model.") var model = "rampart-generic"

        func run() async throws {
            let ca = try ManufacturerCA.load(from: URL(fileURLWithPath: manufacturerCa))
            let id = try DeviceState.manufacture(at: URL(fileURLWithPath: out), manufacturer: ca, model: model)
            print(id)
        }
    }
}

/// `rampart device …`.
struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Claim and inspect devices; run the device runtime.",
        subcommands: [
                Claim.self, List.self, Show.self, DeviceUpdateCommand.self, DeviceDeploymentStatusCommand.self, Run.self,
                ShowStatus.self, ShowMeasurements.self, DeviceImageCommand.self, SetParent.self,
                SetHub.self, DeviceMessageCommand.self, DeviceAppCommand.self, DeviceErrorCommand.self, DeviceNetworkCommand.self,
                DeviceEnableDevelopmentCommand.self, DeviceEnableCloudTestCommand.self, DeviceSideloadCommand.self,
            ])

    struct Claim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Claim a device for the selected tenant (Contributor or above). It need not have been seen.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The 64-character device ID.") var deviceId: String

        func run() async throws {
            try await global.withClient { client, profile in
                let device = try await client.json(
                    DeviceInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/devices",
                    body: DeviceClaimRequest(deviceId: deviceId))
                try DeviceCommand.show([device], global.output, single: true)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant's devices.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(DeviceList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/devices")
                if global.output == .json { return try Printer.json(list) }
                try DeviceCommand.show(list.devices, global.output, single: false)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one device.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String

        func run() async throws {
            try await global.withClient { client, profile in
                let device = try await client.json(
                    DeviceInfo.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/devices/\(try DeviceID.validated(deviceId))")
                try DeviceCommand.show([device], global.output, single: true)
                if global.output == .table, !device.linkRows.isEmpty {
                    print("")
                    Printer.table(["Field", "Value"], device.linkRows)
                }
            }
        }
    }

    struct SetParent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-parent",
            abstract: "Register the gateway a device connects through (Contributor or above), or clear it with --clear.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The child device ID.") var deviceId: String
        @Option(help: "The gateway's device ID.") var parentId: String?
        @Flag(help: "Remove the device's parent.") var clear = false

        func validate() throws {
            guard (parentId == nil) == clear else { throw ValidationError("Give either --parent-id or --clear.") }
        }

        func run() async throws {
            try await global.withClient { client, profile in
                let device = try await client.json(
                    DeviceInfo.self, .PUT,
                    "/v1/tenants/\(try global.tenantID(profile))/devices/\(try DeviceID.validated(deviceId))/parent",
                    body: SetParentRequest(parentId: try parentId.map(DeviceID.validated)))
                try DeviceCommand.show([device], global.output, single: true)
            }
        }
    }

    struct SetHub: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-hub",
            abstract: "Make a gateway device the tenant's hub (Administrator), or an ordinary device again with --clear.",
            discussion: """
                A hub stores telemetry on the server and delivers cloud-to-device messages for every device of \
                the tenant. Other gateways do so only for the children registered below them (set-parent).
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The gateway's device ID.") var deviceId: String
        @Flag(help: "Make it an ordinary device again.") var clear = false

        func run() async throws {
            try await global.withClient { client, profile in
                let device = try await client.json(
                    DeviceInfo.self, .PUT,
                    "/v1/tenants/\(try global.tenantID(profile))/devices/\(try DeviceID.validated(deviceId))/hub",
                    body: SetHubRequest(hub: !clear))
                try DeviceCommand.show([device], global.output, single: true)
            }
        }
    }

    static func show(_ devices: [DeviceInfo], _ format: OutputFormat, single: Bool) throws {
        if single, format == .json, let device = devices.first { return try Printer.json(device) }
        Printer.table(["Device ID", "Last attestation", "Result", "Certificate not after", "Hardware model", "Parent", "Mode"], devices.map {
            [$0.id, $0.lastAttestationAt.map(Timestamp.format) ?? "never", $0.lastAttestationResult ?? "",
             $0.certificateNotAfter.map(Timestamp.format) ?? "", $0.hardwareModel ?? "", $0.hub ? "hub" : $0.parentId.map { String($0.prefix(12)) + "…" } ?? "",
             Self.mode($0)]
        })
    }

    /// Development mode as the server has it, and whether the device has caught up.
    static func mode(_ device: DeviceInfo) -> String {
        switch (device.developmentSince != nil, device.deviceDevelopmentMode) {
        case (true, false?): "development (device not yet)"
        case (true, _): "development"
        case (false, true?): "development ending (device not yet)"
        case (false, _): ""
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the device runtime: measured boot, daily attestation, the local API. Stops on SIGTERM or Ctrl-C.")
        @Option(help: "The device state directory (from 'rampart manufacture device').") var stateDir: String
        @Option(help: "The security service URL, e.g. https://127.0.0.1:8443.") var server: String
        @Option(help: "A PEM CA that signs the server's TLS certificate (kept in the state directory).") var serverCa: String?
        @Option(help: "Log format: json or text.") var logFormat: String = "text"
        @Option(help: "How long each push long-poll waits, in seconds (0 turns push off; each empty poll costs ~330 bytes).")
        var pushWaitSeconds = UpdateAgent.defaultPushWaitSeconds

        func run() async throws {
            guard let format = StructuredLogHandler.Format(rawValue: logFormat) else {
                throw RampartError(.configurationInvalid, "--log-format must be json or text.")
            }
            LoggingSystem.bootstrap { StructuredLogHandler(label: $0, format: format, level: .info) }
            let state = DeviceState(directory: URL(fileURLWithPath: stateDir))
            let logger = Logger(label: "rampart.device")
            // The supervisor step of A/B updates: run the active slot's runtime, or roll back a switch that
            // never confirmed its health.
            try Supervisor.bootActiveSlot(state: state, logger: logger)
            let restartRequested = Mutex(false)
            let box = GroupBox()
            let services = try DeviceRuntime.services(
                state: state, server: server, serverCAFile: serverCa, logger: logger,
                pushWaitSeconds: pushWaitSeconds,
                restart: {
                    restartRequested.withLock { $0 = true }
                    await box.group?.triggerGracefulShutdown()
                })
            let group = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            box.group = group
            try await group.run()
            if restartRequested.withLock({ $0 }) {
                logger.info("Restarting into the active slot")
                try Supervisor.restart(state: state)
            }
        }
    }

    struct ShowStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show-status", abstract: "Ask a running device runtime, through its local API, how it is doing.")
        @OptionGroup var local: LocalRuntimeOptions

        func run() async throws {
            let (state, output) = (local.state, local.output)
            let status = try await LocalAPIClient.status(state: state)
            try Printer.output(status, as: output, headers: ["Field", "Value"]) {
                [
                    ["Device ID", status.deviceId],
                    ["Tenant", status.tenantId?.description ?? "(not attested yet)"],
                    ["Certificate not after", status.certificateNotAfter.map(Timestamp.format) ?? "(none)"],
                    ["Certificate valid", status.certificateValid ? "yes" : "no"],
                    ["Last attestation", status.lastAttestationAt.map(Timestamp.format) ?? "(never)"],
                    ["Last result", status.lastAttestationResult ?? ""],
                    ["Reason", status.lastAttestationMessage ?? ""],
                    ["Next attestation", status.nextAttestationAt.map(Timestamp.format) ?? ""],
                ]
            }
        }
    }

    struct ShowMeasurements: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show-measurements",
            abstract: "Print what this runtime measures, e.g. the runtime digest to accept with 'tenant runtime-allow add'.")
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "Output format: table or json.") var output: OutputFormat = .table

        func run() async throws {
            let measurements = try Measurer.measure(state: DeviceState(directory: URL(fileURLWithPath: stateDir)))
            try Printer.output(measurements, as: output, headers: ["Component", "Kind", "Version", "SHA-256"]) {
                measurements.map { [$0.component, $0.kind.rawValue, $0.version, $0.sha256] }
            }
        }
    }
}

/// Assembles the device runtime's services, shared by `device run` and `demo`.
package enum DeviceRuntime {
    package static func services(
        state: DeviceState, server: String, serverCAFile: String?, logger: Logger,
        schedule: DeviceAgent.Schedule = DeviceAgent.Schedule(), executable: URL = Measurer.runningExecutable,
        pushWaitSeconds: Int = UpdateAgent.defaultPushWaitSeconds, appLimits: AppLimits = AppLimits(),
        restart: @escaping @Sendable () async -> Void = {}
    ) throws -> [any Service] {
        let identity = try state.identity()
        // Before anything touches the directory (the local API replaces its socket).
        let lock = try StateDirectoryLock(state: state)
        if let serverCAFile {
            guard let pem = try? String(contentsOfFile: serverCAFile, encoding: .utf8) else {
                throw RampartError(.configurationInvalid, "Cannot read --server-ca \(serverCAFile).")
            }
            try SecureFile.write(pem, to: state.serverCAFile, mode: 0o644)
        }
        let serverCA = try? String(contentsOf: state.serverCAFile, encoding: .utf8)
        let configuration = try DeviceConfiguration.load(state: state)
        // Servicing leaves only through the egress: managed interfaces, counted against the data budget.
        let meter = ServicingDataMeter(state: state)
        if let problem = meter.loadProblem { logger.warning("Servicing data count reset", metadata: ["problem": "\(problem)"]) }
        let egress = try ServiceEgress(server: server, policy: configuration.network, meter: meter, logger: logger)
        var client = try AttestationClient(server: server, serverCAPEM: serverCA)
        client.egress = egress
        let status = DeviceStatusBoard(state: state, deviceID: identity.deviceID)
        let attestNow = Doorbell()
        let errors = ErrorEventQueue(state: state)
        if let problem = errors.loadProblem { logger.warning("Error event queue reset", metadata: ["problem": "\(problem)"]) }
        var reporter = ErrorEventUploader(
            state: state, server: server, serverCAPEM: serverCA, queue: errors, status: status, logger: logger, eventQueued: Doorbell())
        reporter.egress = egress
        // Apps' telemetry and cloud messages: through the gateway device.toml names, or to the service over HTTPS.
        let telemetryQueued = Doorbell()
        if let caFile = configuration.gateway?.caFile { _ = try GatewayConnection.readCA(caFile) }  // fail at start, not at each attempt
        let gateway = configuration.gateway.map {
            GatewayConnection(settings: $0, state: state, status: status, linkUp: telemetryQueued, logger: logger)
        }
        let telemetry = AppTelemetrySender(
            state: state, server: server, serverCAPEM: serverCA, status: status, gateway: gateway, queued: telemetryQueued, logger: logger)
        let deferral = UpdateDeferral()
        let checkNow = Doorbell()
        let link = LinkBoard(
            policy: configuration.network, routerControl: configuration.routerControl, linkImproved: checkNow, state: state)
        // The device's own peripherals when device.toml maps them; the virtual board otherwise.
        let board: any PeripheralBoard = configuration.peripherals.map { LinuxPeripheralBoard(configuration: $0) } ?? VirtualPeripheralBoard()
        let apps = AppSupervisor(
            state: state, limits: appLimits, board: board, errors: errors, errorQueued: reporter.eventQueued, telemetry: telemetry,
            deferral: deferral, restart: restart, link: link, deviceTLS: AppTLSIdentity.lending(state: state, status: status),
            logger: logger)
        gateway?.deliverCloudMessages(to: apps)
        var updates = UpdateAgent(
            state: state, server: server, serverCAPEM: serverCA, status: status, logger: logger, attestNow: attestNow,
            checkNow: checkNow, restart: restart)
        updates.pushWaitSeconds = pushWaitSeconds
        updates.appsInstalled = apps.appsChanged
        updates.errors = errors
        updates.deferral = deferral
        updates.updatePending = { seconds in await apps.notifyUpdatePending(inSeconds: seconds) }
        updates.egress = egress
        updates.link = link
        var agent = DeviceAgent(
            state: state, client: client, schedule: schedule, status: status, logger: logger, executable: executable,
            directoryLock: lock, attestNow: attestNow)
        agent.errors = errors
        // The egress first: a ServiceGroup stops services in reverse order, so it closes after its users.
        var services: [any Service] = [egress]
        if let source = configuration.routerControl {
            services.append(RouterChannel(source: source, board: link, logger: logger))
        }
        return services + [
            try LocalAPI.application(
                state: state, status: status, logger: logger, checkNow: updates.checkNow, apps: apps, network: (link, egress),
                attestNow: attestNow),
            agent,
            updates,
            apps,
            // Before the sender: a ServiceGroup stops services in reverse order, so the sender stops first.
            gateway.map { $0 as any Service } ?? CloudMessageReceiver(state: state, server: server, serverCAPEM: serverCA, status: status, apps: apps, logger: logger),
            telemetry,
            reporter,
            HealthWatchdog(slots: SlotStore(state: state), executable: executable, logger: logger, restart: restart),
        ]
    }
}

/// Reads the local API over its Unix socket.
package enum LocalAPIClient {
    package static func status(state: DeviceState) async throws -> DeviceStatus {
        try await get(DeviceStatus.self, "/status", state: state)
    }

    package static func get<T: Decodable>(_ type: T.Type, _ path: String, state: DeviceState) async throws -> T {
        try await request(type, path, state: state, method: .GET)
    }

    package static func post<T: Decodable>(_ type: T.Type, _ path: String, state: DeviceState) async throws -> T {
        try await request(type, path, state: state, method: .POST)
    }

    /// Sends `method` with `body` (bytes as they are) and decodes the answer.
    package static func request<T: Decodable>(
        _ type: T.Type, _ path: String, state: DeviceState, method: HTTPMethod, body requestBody: [UInt8]? = nil
    ) async throws -> T {
        let socket = state.socketFile.path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        var request = HTTPClientRequest(url: "http+unix://\(socket)\(path)")
        request.method = method
        if let requestBody { request.body = .bytes(ByteBuffer(bytes: requestBody)) }
        let body: ByteBuffer
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(requestBody == nil ? 10 : 60))
            body = try await response.body.collect(upTo: 1 << 20)
            if response.status.code >= 400, let error = try? JSONCoding.decoder().decode(APIErrorBody.self, from: Data(buffer: body)) {
                throw RampartError(RampartError.Code(rawValue: error.code), error.message, status: Int(response.status.code))
            }
            if response.status.code >= 400 {
                throw RampartError(
                    response.status.code == 413 ? .bodyTooLarge : .invalidRequest,
                    "The device runtime refused \(path): \(response.status.code) \(response.status.reasonPhrase).",
                    status: Int(response.status.code))
            }
        } catch let error as RampartError {
            throw error
        } catch {
            throw RampartError(
                .serverUnreachable,
                "No device runtime answers on \(state.socketFile.path). Is 'rampart device run --state-dir \(state.directory.path)' running?",
                status: 503)
        }
        do {
            return try JSONCoding.decoder().decode(T.self, from: Data(buffer: body))
        } catch {
            throw RampartError(.internalError, "The device runtime answered \(path) with something unexpected: \(error)", status: 502)
        }
    }
}

/// `rampart doctor`.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Explain in plain words why a device cannot get a certificate, and what to do.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The device ID.") var deviceId: String

    func run() async throws {
        try await global.withClient { client, profile in
            let diagnosis = try await client.json(
                DeviceDiagnosis.self, .GET,
                "/v1/tenants/\(try global.tenantID(profile))/devices/\(try DeviceID.validated(deviceId))/diagnosis")
            if global.output == .json { return try Printer.json(diagnosis) }
            print(diagnosis.healthy ? "Device \(diagnosis.deviceId) can get a certificate." : "Device \(diagnosis.deviceId) cannot get a certificate:")
            for finding in diagnosis.findings {
                print("\n- [\(finding.code)] \(finding.explanation)\n  What to do: \(finding.remedy)")
            }
        }
    }
}

/// `rampart tenant runtime-allow …`.
struct RuntimeAllowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime-allow", abstract: "Manage the runtime digests this tenant accepts at attestation.",
        subcommands: [Add.self, List.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept a runtime digest and version.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The SHA-256 (see 'rampart device show-measurements').") var digest: String
        @Option(help: "The runtime version it belongs to.") var version: String
        @Option(help: "A note.") var description: String?

        func run() async throws {
            try await global.withClient { client, profile in
                let value = try await client.json(
                    ReferenceValue.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/reference-values",
                    body: ReferenceValueRequest(sha256: digest, version: version, description: description))
                try Printer.output(value, as: global.output, headers: ["SHA-256", "Version", "Status"]) {
                    [[value.sha256, value.version, value.status]]
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accepted and revoked runtime digests.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(
                    ReferenceValueList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/reference-values")
                try Printer.output(list, as: global.output, headers: ["SHA-256", "Version", "Status", "Description"]) {
                    list.referenceValues.map { [$0.sha256, $0.version, $0.status, $0.description] }
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a runtime digest: devices still running it are refused with measurementRevoked.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The SHA-256 to revoke.") var digest: String

        func run() async throws {
            try await global.withClient { client, profile in
                _ = try await client.send(.DELETE, "/v1/tenants/\(try global.tenantID(profile))/reference-values/\(digest.lowercased())")
                print("Revoked \(digest).")
            }
        }
    }
}
