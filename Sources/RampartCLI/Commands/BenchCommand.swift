import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
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
        @Option(help: "The nginx binary for the transport reference (an empty value skips it).") var nginx = "/usr/sbin/nginx"

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
            // Every attestation opens a connection and closes it at the end.
            let run = try await ExchangeRun.run(total: total, workers: workers, failing: "attestation") { [identities] http, index in
                var client = attestationClient
                client.httpClient = http
                _ = try await client.attest(identity: identities[index % identities.count], measurements: measurements, debugStatus: 3)
            }
            let ownCPU = ProcessCPU.seconds().map { $0 - (ownCPUBefore ?? 0) }
            let serverCPU = serverPid.flatMap { ProcessCPU.seconds(pid: $0) }.map { $0 - (serverCPUBefore ?? 0) }
            let failures = run.failures

            var lines = [
                "| measurement | result |",
                "|---|---|",
                "| attestations | \(total) (\(failures) failed), \(devices) devices, concurrency \(workers) |",
                "| Rampart attestations/s | \(String(format: "%.0f", run.rate)) |",
                "| latency p50 / p99 | \(String(format: "%.1f", run.percentile(0.5))) ms / \(String(format: "%.1f", run.percentile(0.99))) ms |",
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
            let reference = "| transport alone: nginx answering the same two requests, same bodies and answers, a fresh TLS connection each | "
            if !nginx.isEmpty, !FileManager.default.isExecutableFile(atPath: nginx) {
                lines.append(reference + "not measured: no nginx at \(nginx) (apt-get install nginx-light, or pass --nginx PATH) |")
            } else if !nginx.isEmpty {
                print("Measuring the transport alone: the same \(total) exchanges against nginx…")
                // The measurement above stands whatever happens to its reference.
                let transport: TransportReference.Result
                do {
                    transport = try await TransportReference.measure(
                        nginx: nginx, server: server, serverCA: serverCA, identity: identities[0], measurements: measurements,
                        total: total, workers: workers)
                } catch {
                    print(lines.joined(separator: "\n"))
                    throw error
                }
                let connections = Double(max(1, total - transport.run.failures))
                let perConnection = transport.clientCPU.map { $0 / connections }
                lines += [
                    reference
                        + "\(String(format: "%.0f", transport.run.rate))/s (\(transport.run.failures) failed), "
                        + "p50 \(String(format: "%.1f", transport.run.percentile(0.5))) ms, p99 \(String(format: "%.1f", transport.run.percentile(0.99))) ms |",
                    "| load generator CPU per connection, transport alone | "
                        + (perConnection.map {
                            String(format: "%.2f ms: two cores ÷ this = %.0f/s, the most any server could reach here with these devices' side", $0 * 1000, 2 / $0)
                        } ?? "—") + " |",
                    "| nginx CPU per connection | "
                        + (transport.nginxCPU.map { String(format: "%.2f ms", $0 * 1000 / connections) } ?? "—") + " |",
                ]
            }
            if opensslSeconds > 0, let speed = OpenSSLSpeed.measure(seconds: opensslSeconds) {
                lines += [
                    "| openssl speed ecdsap256 (1 core), sign/s | \(String(format: "%.0f", speed.sign)) |",
                    "| openssl speed ecdsap256 (1 core), verify/s | \(String(format: "%.0f", speed.verify)) |",
                ]
                if let x25519 = speed.x25519 {
                    // Server: the handshake's and the certificate's signatures, the evidence's verification, X25519
                    // key generation and agreement. Device: the evidence's signature, the server certificate's and
                    // handshake's verifications, the same X25519 pair. ML-KEM, hashing and key generation left out.
                    let arithmetic = 3 / speed.sign + 3 / speed.verify + 4 / x25519
                    lines += [
                        "| openssl speed ecdhx25519 (1 core), operations/s | \(String(format: "%.0f", x25519)) |",
                        "| that arithmetic per attestation, both sides (3 signatures, 3 verifications, 4 X25519) | "
                            + String(format: "%.2f ms: two cores ÷ this = %.0f/s with nothing else done |", arithmetic * 1000, 2 / arithmetic),
                    ]
                }
            }
            print(lines.joined(separator: "\n"))
            if failures > 0 {
                throw RampartError(.internalError, "\(failures) of \(total) attestations failed.", status: 500)
            }
        }
    }
}

/// `total` exchanges run by `workers` concurrent workers, each a stream of exchanges with its own HTTP client
/// (and so its own TLS context, as a device has), and how long they took.
struct ExchangeRun {
    /// Wall-clock seconds for all of them.
    var seconds: Double
    /// Exchanges that threw.
    var failures: Int
    /// Every exchange's latency in milliseconds, failed ones included, sorted.
    var latencies: [Double]

    /// Successful exchanges per second.
    var rate: Double { Double(latencies.count - failures) / seconds }

    /// The latency at `p` (0…1) in milliseconds.
    func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }

    /// Runs `exchange(client, index)` for indexes 0..<total, `workers` at a time; a failure is counted and told
    /// on standard error as "`failing` failed: …".
    static func run(
        total: Int, workers: Int, failing: String, _ exchange: @escaping @Sendable (HTTPClient, Int) async throws -> Void
    ) async throws -> ExchangeRun {
        func milliseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        }
        let started = ContinuousClock.now
        let outcomes = try await withThrowingTaskGroup(of: [(Double, Bool)].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    let client = HTTPClient(eventLoopGroupProvider: .singleton)
                    var results: [(Double, Bool)] = []
                    for index in stride(from: worker, to: total, by: workers) {
                        let begin = ContinuousClock.now
                        var ok = true
                        do {
                            try await exchange(client, index)
                        } catch {
                            ok = false
                            FileHandle.standardError.write(Data("\(failing) failed: \(error)\n".utf8))
                        }
                        results.append((milliseconds(ContinuousClock.now - begin), ok))
                    }
                    try? await client.shutdown()
                    return results
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return ExchangeRun(
            seconds: milliseconds(ContinuousClock.now - started) / 1000, failures: outcomes.filter { !$0.1 }.count,
            latencies: outcomes.map(\.0).sorted())
    }
}

/// The attestation's transport alone, as the ceiling a server could reach on this machine: nginx answers the
/// challenge and evidence requests with a real exchange's answers, and the load generator runs the same
/// connection pattern (a fresh TLS connection per attestation, the second request closing it) without the
/// devices' signatures.
enum TransportReference {
    struct Result {
        /// The exchanges against nginx.
        var run: ExchangeRun
        /// This process's CPU seconds over the run.
        var clientCPU: Double?
        /// nginx's CPU seconds over the run.
        var nginxCPU: Double?
    }

    static func measure(
        nginx: String, server: String, serverCA: String?, identity: DeviceState.Identity, measurements: [SoftwareMeasurement],
        total: Int, workers: Int
    ) async throws -> Result {
        // One real exchange with the server gives the bodies and answers nginx repeats.
        let serverTLS = try DeviceTLS.configuration(serverCAPEM: serverCA)
        let sampler = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = sampler.shutdown() }
        let challengeBody = ByteBuffer(data: try JSONCoding.encoder().encode(AttestationChallengeRequest(deviceId: identity.deviceID)))
        let challengeAnswer = try await post(sampler, server + "/v1/attestation/challenge", tls: serverTLS, body: challengeBody, close: false)
        let challenge = try JSONCoding.decoder().decode(AttestationChallenge.self, from: Data(buffer: challengeAnswer))
        let claims = EvidenceClaims(
            nonce: challenge.nonce, deviceID: identity.deviceID, issuedAt: Date(), hardwareModel: identity.model,
            softwareName: "rampart", softwareVersion: RampartVersion.current, debugStatus: 3, measurements: measurements,
            freshKey: P256.Signing.PrivateKey().publicKey)
        let evidence = try EvidenceToken.sign(claims, identity: identity.keyStore, endorsement: identity.endorsement)
        let evidenceBody = ByteBuffer(data: try JSONCoding.encoder().encode(AttestationRequest(evidence: evidence)))
        let resultAnswer = try await post(sampler, server + "/v1/attestation", tls: serverTLS, body: evidenceBody, close: true)

        // nginx with a TLS identity of the server's shape: a P-256 certificate from a CA the devices pin.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-nginx-\(RampartID().description.prefix(8))")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("answers"), withIntermediateDirectories: true)
        // Kept when something fails, for its error.log.
        var succeeded = false
        defer { if succeeded { try? FileManager.default.removeItem(at: directory) } }
        let identityTLS = try CertificateIssuer.makeDevelopmentServerIdentity(
            hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], now: Date(), validity: 86_400)
        let certificateFile = directory.appendingPathComponent("server.pem")
        let keyFile = directory.appendingPathComponent("server-key.pem")
        try identityTLS.server.pemString.write(to: certificateFile, atomically: true, encoding: .utf8)
        try identityTLS.key.pemRepresentation.write(to: keyFile, atomically: true, encoding: .utf8)
        try Data(buffer: challengeAnswer).write(to: directory.appendingPathComponent("answers/challenge.json"))
        try Data(buffer: resultAnswer).write(to: directory.appendingPathComponent("answers/result.json"))
        // nginx serves files to GET only; a 405 answered through error_page becomes a GET of the file, with 200.
        let reference = try await NginxReference.start(
            binary: nginx, directory: directory, certificateFile: certificateFile.path, keyFile: keyFile.path,
            site: """
                root \(directory.path);
                    location = /v1/attestation/challenge { error_page 405 =200 /answers/challenge.json; return 405; }
                    location = /v1/attestation { error_page 405 =200 /answers/result.json; return 405; }
                    location /answers/ { internal; default_type application/json; }
                """)
        defer { reference.stop() }
        let base = "https://127.0.0.1:\(reference.port)"
        let tls = try DeviceTLS.configuration(serverCAPEM: try identityTLS.ca.pemString)
        for (path, body, answer) in [("/v1/attestation/challenge", challengeBody, challengeAnswer), ("/v1/attestation", evidenceBody, resultAnswer)] {
            guard try await post(sampler, base + path, tls: tls, body: body, close: true) == answer else {
                throw RampartError(.internalError, "nginx did not repeat the answer to \(path); see \(directory.path)/error.log.", status: 500)
            }
        }

        let clientBefore = ProcessCPU.seconds()
        let nginxBefore = reference.cpuSeconds()
        let run = try await ExchangeRun.run(total: total, workers: workers, failing: "transport reference") { http, _ in
            _ = try await post(http, base + "/v1/attestation/challenge", tls: tls, body: challengeBody, close: false)
            _ = try await post(http, base + "/v1/attestation", tls: tls, body: evidenceBody, close: true)
        }
        let clientCPU = ProcessCPU.seconds().map { $0 - (clientBefore ?? 0) }
        let nginxCPU = reference.cpuSeconds().flatMap { after in nginxBefore.map { after - $0 } }
        succeeded = true
        return Result(run: run, clientCPU: clientCPU, nginxCPU: nginxCPU)
    }

    /// One POST of JSON; the answer's body if it is 200.
    static func post(_ client: HTTPClient, _ url: String, tls: TLSConfiguration, body: ByteBuffer, close: Bool) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.tlsConfiguration = tls
        request.headers.add(name: "Content-Type", value: "application/json")
        if close { request.headers.add(name: "Connection", value: "close") }
        request.body = .bytes(body)
        let response = try await client.execute(request, timeout: .seconds(30))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw RampartError(.serverUnreachable, "\(url) answered HTTP \(response.status.code): \(String(buffer: answer))", status: 502)
        }
        return answer
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

/// nginx as a benchmark's reference server: TLS on a free loopback port, one worker per core.
struct NginxReference {
    /// The port it listens on, at 127.0.0.1.
    let port: Int
    private let process: Process

    /// Starts nginx from `binary`, keeping its files in `directory`, with `site` (nginx directives) inside its TLS
    /// server block, and waits until it accepts connections.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` if nginx is missing, `internalError` if it does not start.
    static func start(binary: String, directory: URL, certificateFile: String, keyFile: String, site: String) async throws
        -> NginxReference
    {
        try requireBinary(binary)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try await BenchCommand.freePort()
        let conf = """
            worker_processes auto;
            user root;
            daemon off;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                keepalive_requests 1000000;
                keepalive_timeout 120s;
                server {
                    listen 127.0.0.1:\(port) ssl;
                    ssl_certificate \(certificateFile);
                    ssl_certificate_key \(keyFile);
                    \(site)
                }
            }
            """
        let file = directory.appendingPathComponent("nginx.conf")
        try conf.write(to: file, atomically: true, encoding: .utf8)
        let process = ReferenceTool.process([binary, "-p", directory.path, "-c", file.path])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reference = NginxReference(port: port, process: process)
        do {
            for _ in 0..<100 {
                if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                    try? await channel.close()
                    return reference
                }
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        } catch {
            reference.stop()
            throw error
        }
        reference.stop()
        throw RampartError(.internalError, "nginx did not start; see \(directory.path)/error.log.", status: 500)
    }

    /// Checks that `binary` is there before a benchmark that needs it starts its work.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` if it is not.
    static func requireBinary(_ binary: String) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw RampartError(.configurationInvalid, "nginx is needed as the reference: apt-get install nginx-light (or pass --nginx PATH).")
        }
    }

    /// The CPU time nginx has used so far: its master and its workers (the master's children).
    func cpuSeconds() -> Double? {
        let pid = process.processIdentifier
        guard let children = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return nil }
        let pids = [pid] + children.split(separator: " ").compactMap { Int32($0) }
        let times = pids.compactMap { ProcessCPU.seconds(pid: $0) }
        return times.count == pids.count ? times.reduce(0, +) : nil
    }

    /// Stops nginx and waits for it.
    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// `openssl speed` as the crypto reference for a benchmark.
enum OpenSSLSpeed {
    /// ECDSA P-256 signs and verifies, and X25519 key agreements (`nil` where this openssl lacks them), per
    /// second on one core; `nil` if openssl is missing.
    static func measure(seconds: Int) -> (sign: Double, verify: Double, x25519: Double?)? {
        // openssl speed times itself with SIGALRM.
        let process = ReferenceTool.process(["openssl", "speed", "-seconds", "\(seconds)", "ecdsap256", "ecdhx25519"])
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  13000.0" and
        // "253 bits ecdh (X25519)   0.0000s  34000.0": the rates are the last numbers of their lines.
        func rates(_ marker: String) -> [Double] {
            output.split(separator: "\n").last { $0.contains(marker) }?.split(separator: " ").compactMap { Double($0) } ?? []
        }
        let ecdsa = rates("nistp256")
        guard ecdsa.count >= 2 else { return nil }
        return (ecdsa[ecdsa.count - 2], ecdsa[ecdsa.count - 1], rates("X25519").last)
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
