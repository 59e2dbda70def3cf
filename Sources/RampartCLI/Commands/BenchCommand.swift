import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOSSL
import RampartAttestation
import RampartCore
import RampartDevice
import RampartPKI
import RampartServer
import RampartStore
import X509

/// `rampart bench …`: load measurements, each printed next to its reference from the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks, reported side by side with a reference measured in the same run.",
        subcommands: [Attest.self, Poll.self, DataUsage.self, MQTT.self, MQTTConnections.self, Apps.self])

    struct Attest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End-to-end attestations per second: challenge, evidence, appraisal, certificate, durable record.")

        @Option(help: "A running server (default: start one in-process on SQLite in a temporary directory).")
        var server: String?
        @Option(help: "With --server: a manufacturer CA directory that server trusts.") var manufacturerCa: String?
        @Option(help: "With --server: a PEM CA for the server's TLS certificate.") var serverCa: String?
        @Option(help: "With --server on this machine: its process ID, to report the server's own CPU per attestation.")
        var serverPid: Int32?
        @Option(help: "How many devices to manufacture and claim.") var devices = 500
        @Option(help: "How many attestations run at once.") var concurrency = 32
        @Option(help: "How many times each device attests.") var rounds = 2
        @Option(help: "Seconds for the openssl speed reference (0 skips it).") var opensslSeconds = 3

        func run() async throws {
            guard devices > 0, concurrency > 0, rounds > 0, devices * rounds <= 1_000_000 else {
                throw RampartError.invalidRequest("--devices, --concurrency and --rounds must be positive, at most 1,000,000 attestations.")
            }
            var logger = Logger(label: "rampart.bench")
            logger.logLevel = .error
            if let server {
                guard let manufacturerCa else {
                    throw RampartError.invalidRequest("--server needs --manufacturer-ca: a manufacturer CA that server trusts.")
                }
                let manufacturer = try ManufacturerCA.load(from: URL(fileURLWithPath: manufacturerCa))
                let profile = try ClientProfile.load()
                guard let tenant = profile.tenant else {
                    throw RampartError.invalidRequest("Select a tenant first: rampart tenant select --tenant ID.")
                }
                let ca = try serverCa.map { try String(contentsOfFile: $0, encoding: .utf8) }
                try await measure(server: server, serverCA: ca, manufacturer: manufacturer,
                                  client: try APIClient(profile: profile, server: server), tenant: tenant)
            } else {
                try await BenchCommand.withInProcessServer(logger: logger) { server, serverCA, manufacturer, client, tenant, _ in
                    try await measure(server: server, serverCA: serverCA, manufacturer: manufacturer, client: client, tenant: tenant)
                }
            }
        }

        func measure(server: String, serverCA: String?, manufacturer: ManufacturerCA, client: APIClient, tenant: RampartID)
            async throws
        {
            print("Manufacturing and claiming \(devices) devices…")
            let runtimeDigest = String(repeating: "be", count: 32)
            _ = try await client.json(
                ReferenceValue.self, .POST, "/v1/tenants/\(tenant)/reference-values",
                body: ReferenceValueRequest(sha256: runtimeDigest, version: "bench", description: "rampart bench attest"))
            var identities: [DeviceState.Identity] = []
            for _ in 0..<devices {
                let key = MemoryKeyStore()
                let identity = DeviceState.Identity(
                    keyStore: key, endorsement: [try manufacturer.endorse(key.publicKey, model: "bench-board")], model: "bench-board")
                _ = try await client.send(.POST, "/v1/tenants/\(tenant)/devices", body: DeviceClaimRequest(deviceId: identity.deviceID))
                identities.append(identity)
            }
            let measurements = [SoftwareMeasurement(component: "rampart-runtime", kind: .runtime, version: "bench", sha256: runtimeDigest)]
            let attestationClient = try AttestationClient(server: server, serverCAPEM: serverCA)
            let total = devices * rounds
            let workers = min(concurrency, total)
            print("Running \(total) attestations, \(workers) at a time, each on a fresh TLS connection…")
            let ownCPUBefore = ProcessCPU.seconds()
            let serverCPUBefore = serverPid.flatMap { ProcessCPU.seconds(pid: $0) }
            let started = ContinuousClock.now
            // Each worker is a stream of devices with its own HTTP client (and so its own TLS context, as a
            // device has); every attestation opens a connection and closes it at the end.
            let outcomes = try await withThrowingTaskGroup(of: [(Duration, Bool)].self) { group in
                for worker in 0..<workers {
                    group.addTask { [identities] in
                        var client = attestationClient
                        client.httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
                        var results: [(Duration, Bool)] = []
                        for index in stride(from: worker, to: total, by: workers) {
                            let identity = identities[index % identities.count]
                            let begin = ContinuousClock.now
                            var ok = true
                            do {
                                _ = try await client.attest(identity: identity, measurements: measurements, debugStatus: 3)
                            } catch {
                                ok = false
                                FileHandle.standardError.write(Data("attestation failed: \(error)\n".utf8))
                            }
                            results.append((ContinuousClock.now - begin, ok))
                        }
                        try? await client.httpClient.shutdown()
                        return results
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let wall = ContinuousClock.now - started
            let ownCPU = ProcessCPU.seconds().map { $0 - (ownCPUBefore ?? 0) }
            let serverCPU = serverPid.flatMap { ProcessCPU.seconds(pid: $0) }.map { $0 - (serverCPUBefore ?? 0) }
            let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
            let latencies = outcomes.map { Double($0.0.components.seconds) * 1000 + Double($0.0.components.attoseconds) / 1e15 }.sorted()
            let failures = outcomes.filter { !$0.1 }.count
            func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            let rate = Double(total - failures) / seconds

            var lines = [
                "| measurement | result |",
                "|---|---|",
                "| attestations | \(total) (\(failures) failed), \(devices) devices, concurrency \(workers) |",
                "| Rampart attestations/s | \(String(format: "%.0f", rate)) |",
                "| latency p50 / p99 | \(String(format: "%.1f", percentile(0.5))) ms / \(String(format: "%.1f", percentile(0.99))) ms |",
            ]
            // CPU time, user and system: what an attestation costs, apart from how the two cores are shared.
            func milliseconds(_ cpu: Double) -> String { String(format: "%.2f ms", cpu * 1000 / Double(max(1, total - failures))) }
            if let serverCPU, let ownCPU, let serverPid {
                lines.append("| server CPU per attestation (process \(serverPid)) | \(milliseconds(serverCPU)) |")
                lines.append("| server attestations per CPU-second | \(String(format: "%.0f", Double(total - failures) / max(serverCPU, 0.001))) |")
                lines.append("| load generator CPU per attestation (devices' side) | \(milliseconds(ownCPU)) |")
            } else if let ownCPU {
                lines.append("| CPU per attestation, \(self.server == nil ? "server and devices' side together" : "devices' side") | \(milliseconds(ownCPU)) |")
            }
            if opensslSeconds > 0, let speed = OpenSSLSpeed.ecdsaP256(seconds: opensslSeconds) {
                lines.append("| openssl speed ecdsap256 (1 core), sign/s | \(String(format: "%.0f", speed.sign)) |")
                lines.append("| openssl speed ecdsap256 (1 core), verify/s | \(String(format: "%.0f", speed.verify)) |")
            }
            print(lines.joined(separator: "\n"))
            if failures > 0 {
                throw RampartError(.internalError, "\(failures) of \(total) attestations failed.", status: 500)
            }
        }
    }
}

extension BenchCommand {
    /// Starts a server on SQLite in a temporary directory that trusts a fresh manufacturer CA.
    static func withInProcessServer(
        logger: Logger,
        _ body: @Sendable (String, String, ManufacturerCA, APIClient, RampartID, DataDirectory) async throws -> Void
    ) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-\(RampartID().description.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = DataDirectory(path: root.appendingPathComponent("data").path)
        try data.initialize(hostnames: [], writeMasterKey: true, now: Date())
        let manufacturer = try ManufacturerCA.create(in: root.appendingPathComponent("manufacturer"), name: "Bench")
        var configuration = try data.serverConfiguration()
        configuration.port = 0
        configuration.manufacturerRoots = [try manufacturer.certificate.pemString]
        let serverCA = try configuration.tlsTrustAnchorPEM
        let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
        try await runtime.withRunningServer { running in
            let url = "https://127.0.0.1:\(running.port)"
            let invitation = try await runtime.users.inviteServerAdministrator(email: "bench@rampart.local")
            let home = root.appendingPathComponent("home")
            _ = try await Registration.register(server: url, invitation: invitation.text, directory: home)
            let client = try APIClient(profile: try ClientProfile.load(from: home))
            let tenant = try await client.json(TenantInfo.self, .POST, "/v1/tenants", body: TenantNameRequest(name: "Bench"))
            print("In-process server at \(url) on SQLite (\(data.sqliteFile.path)).")
            try await body(url, serverCA, manufacturer, client, tenant.id, data)
        }
    }
}

/// Reference tools (openssl, nginx) run from the benchmarks.
enum ReferenceTool {
    /// A process for `arguments` with every signal unblocked: this process's threads keep signals blocked and
    /// a child inherits the mask, which breaks tools that rely on signals (openssl speed's SIGALRM, nginx's
    /// master/worker signals). perl unblocks them and execs the tool.
    static func process(_ arguments: [String]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["perl", "-MPOSIX", "-e", "sigprocmask(SIG_SETMASK, POSIX::SigSet->new); exec @ARGV or die"] + arguments
        return process
    }
}

/// `openssl speed` as the crypto reference for a benchmark.
enum OpenSSLSpeed {
    /// ECDSA P-256 signs and verifies per second on one core, or `nil` if openssl is missing.
    static func ecdsaP256(seconds: Int) -> (sign: Double, verify: Double)? {
        // openssl speed times itself with SIGALRM.
        let process = ReferenceTool.process(["openssl", "speed", "-seconds", "\(seconds)", "ecdsap256"])
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  13000.0"
        guard let line = output.split(separator: "\n").last(where: { $0.contains("nistp256") }) else { return nil }
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        guard numbers.count >= 2 else { return nil }
        return (numbers[numbers.count - 2], numbers[numbers.count - 1])
    }
}

/// CPU time (user and system) a process has used, from the kernel's accounting.
enum ProcessCPU {
    /// This process's.
    static func seconds() -> Double? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return nil }
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Another process's on this machine, from /proc/PID/stat (`nil` where there is none).
    static func seconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)": state is field 3, utime field 14, stime field 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
