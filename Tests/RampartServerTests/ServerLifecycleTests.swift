import Foundation
import Hummingbird
import RampartCLI
import RampartCore
import RampartServer
import RampartTestKit
import ServiceLifecycle
import Testing

@Suite("Server process")
struct ServerLifecycleTests {
    @Test("/healthz and Prometheus /metrics with requests by route and status")
    func healthAndMetrics() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let health = try await admin.client.json(HealthStatus.self, .GET, "/healthz", authenticated: false)
            #expect(health.status == "ok")
            _ = try? await admin.client.send(.GET, "/v1/nothing", authenticated: false)
            let metrics = String(decoding: try await admin.client.send(.GET, "/metrics", authenticated: false).body, as: UTF8.self)
            #expect(metrics.contains("hb_requests"))
            #expect(metrics.contains("http_route=\"/healthz\""))
            #expect(metrics.contains("http_response_status_code=\"404\""))
            #expect(metrics.contains("http_server_request_duration"))
        }
    }

    @Test("every route is in docs/openapi.yaml and every spec path is routed; the served spec is the file")
    func openAPICoversRoutes() async throws {
        let specURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml")
        let spec = try String(contentsOf: specURL, encoding: .utf8)
        #expect(spec == ServerRuntime.openAPIDocument, "docs/openapi.yaml changed: run scripts/gen-openapi")
        let specRoutes = Set(OpenAPIPaths.operations(in: spec))
        try await TestServer.withServer { server in
            let routed = Set(server.runtime.routeTable().map { "\($0.method) \(OpenAPIPaths.normalize($0.path))" })
            #expect(routed.subtracting(specRoutes).isEmpty, "routes missing from the spec: \(routed.subtracting(specRoutes).sorted())")
            #expect(specRoutes.subtracting(routed).isEmpty, "spec paths not routed: \(specRoutes.subtracting(routed).sorted())")
            let admin = try await server.registerAdministrator()
            let served = try await admin.client.send(.GET, "/openapi.yaml", authenticated: false)
            #expect(String(decoding: served.body, as: UTF8.self) == spec)
            #expect(served.contentType == "application/yaml")
        }
    }

    @Test("graceful shutdown finishes a request that is in flight")
    func gracefulShutdown() async throws {
        let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        try await TestServer.withServer(extraRoutes: { router in
            router.get("/test/slow") { _, _ -> String in
                startedContinuation.yield()
                try await Task.sleep(for: .milliseconds(700))
                return "finished"
            }
        }) { server in
            let admin = try await server.registerAdministrator()
            async let response = admin.client.send(.GET, "/test/slow", authenticated: false)
            var iterator = started.makeAsyncIterator()
            await iterator.next()
            await server.group.triggerGracefulShutdown()
            let result = try await response
            #expect(result.status == 200)
            #expect(String(decoding: result.body, as: UTF8.self) == "finished")
        }
    }

    @Test("the rampart binary stops cleanly on SIGTERM")
    func sigterm() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rampart")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            Issue.record("\(binary.path) is missing: run swift build first")
            return
        }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = directory.file("data").path
        let initialise = Process()
        initialise.executableURL = binary
        initialise.arguments = ["server", "init", "--data-dir", data]
        initialise.standardOutput = FileHandle.nullDevice
        try initialise.run()
        initialise.waitUntilExit()
        #expect(initialise.terminationStatus == 0)

        let server = Process()
        server.executableURL = binary
        server.arguments = ["server", "run", "--data-dir", data, "--listen", "127.0.0.1:0", "--log-format", "text"]
        let logFile = directory.file("server.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        server.standardError = try FileHandle(forWritingTo: logFile)
        try server.run()
        func output() -> String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
        // Wait until it logs that it listens (or give up after 20 s).
        let deadline = Date() + 20
        while Date() < deadline && !output().contains("listening") && server.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(output().contains("listening"), "\(output())")
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        let final = output()
        #expect(server.terminationReason == .exit && server.terminationStatus == 0, "\(final)")
        #expect(final.contains("stopped"), "\(final)")
    }

    @Test("server init refuses to overwrite an initialised data directory")
    func initTwice() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = DataDirectory(path: directory.file("data").path)
        try data.initialize(hostnames: ["rampart.example", "10.0.0.5"], writeMasterKey: true, now: Date())
        let key = try String(contentsOf: data.masterKeyFile, encoding: .utf8)
        #expect(throws: RampartError(.conflict, "")) { try data.initialize(hostnames: [], writeMasterKey: true, now: Date()) }
        #expect(try String(contentsOf: data.masterKeyFile, encoding: .utf8) == key)
        let mode = try FileManager.default.attributesOfItem(atPath: data.masterKeyFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("server init that cannot reach its database undoes itself, so it can be run again")
    func initRollsBack() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let data = directory.file("data").path
        let failed = await RampartCommand.main(arguments: [
            "server", "init", "--data-dir", data, "--database", "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
        ])
        #expect(failed == 1)
        #expect(!FileManager.default.fileExists(atPath: data))
        #expect(await RampartCommand.main(arguments: ["server", "init", "--data-dir", data]) == 0)
        #expect(await RampartCommand.main(arguments: ["server", "init", "--data-dir", data]) == 1)
    }

    @Test("CLI errors go to stderr as code: message with a non-zero exit")
    func cliErrors() async {
        #expect(await RampartCommand.main(arguments: ["role", "add", "--email", "a@b.c", "--role", "Owner"]) == 1)
        #expect(await RampartCommand.main(arguments: ["tenant", "nonsense"]) != 0)
    }
}

/// Reads `paths:` and their operations from the OpenAPI YAML without a YAML library: paths are the keys
/// indented by two spaces, operations the HTTP methods indented by four.
enum OpenAPIPaths {
    static func operations(in yaml: String) -> [String] {
        var inPaths = false
        var current: String?
        var result: [String] = []
        let methods: Set<String> = ["get", "post", "put", "patch", "delete", "head", "options"]
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") { inPaths = true; continue }
            if inPaths, let first = line.first, first != " ", first != "#" { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                current = String(line.dropFirst(2).dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path = current {
                let key = line.trimmingCharacters(in: .whitespaces).dropLast()
                if line.hasSuffix(":"), methods.contains(String(key)) {
                    result.append("\(key.uppercased()) \(normalize(path))")
                }
            }
        }
        return result
    }

    /// `{tenantId}` and `:tenantId` become `{}` so the two notations compare.
    static func normalize(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix(":") || part.hasPrefix("{") ? "{}" : String(part)
        }.joined(separator: "/")
    }
}
