import ArgumentParser
import Crypto
import Foundation
import Logging
import RampartCore
import RampartDevice
import RampartPKI
import RampartImage
import RampartSandbox

extension BenchCommand.Apps {
    /// The device runtime as it runs on a device: `rampart device run` in a process of its own, with the three
    /// apps installed in its state directory, its local API, agents and egress, and a service that does not
    /// answer (127.0.0.1:9), so that attestation backs off while the apps run. Its RSS, split by mapping.
    static func measureRuntime(apps: [(name: String, app: (wasm: [UInt8], manifest: AppManifest))], seconds: Int) async throws {
        // Short: the local API's socket path must fit in sockaddr_un.
        let directory = URL(fileURLWithPath: "/tmp/rampart-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let manufacturer = try ManufacturerCA.create(in: directory.appendingPathComponent("mfr"), name: "Bench")
        let state = DeviceState(directory: directory.appendingPathComponent("dev"))
        _ = try DeviceState.manufacture(at: state.directory, manufacturer: manufacturer, model: "bench")
        let key = P256.Signing.PrivateKey()
        for (name, app) in apps {
            let manifest = ImageManifest(
                kind: .app, componentID: app.manifest.componentID, name: name, version: "1.0.0",
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(app.wasm))), payloadLength: app.wasm.count, appManifest: app.manifest)
            try AppStore(state: state).install(try ImagePackage.pack(manifest: manifest, payload: app.wasm, signingKey: key), imageID: nil)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["device", "run", "--state-dir", state.directory.path, "--server", "https://127.0.0.1:9"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        // The runtime is up when its local API answers with the three apps running.
        var running = 0
        let deadline = Date() + 30
        while running < apps.count, Date() < deadline, process.isRunning {
            try await Task.sleep(for: .milliseconds(200))
            running = (try? await LocalAPIClient.get(AppStatusList.self, "/apps", state: state))?.apps.filter { $0.state == .running }.count ?? 0
        }
        guard running == apps.count else {
            throw RampartError(.internalError, "The device runtime did not start the three apps (\(running) running).", status: 500)
        }
        try await Task.sleep(for: .seconds(seconds))
        let pid = process.processIdentifier
        let total = BenchTLS.residentBytes(of: pid)
        print("\nThe device runtime ('rampart device run', its own process) with the 3 apps running for \(seconds) s:")
        print("  RSS \(total / 1024) KiB (\(String(format: "%.1f", Double(total) / 1_048_576)) MiB): "
            + "\(BenchTLS.residentBytes(of: pid, field: "RssAnon") / 1024) KiB anonymous, \(BenchTLS.residentBytes(of: pid, field: "RssFile") / 1024) KiB file-backed")
        let largest = Self.residentByMapping(of: pid).prefix(6).map { "\($0.name) \($0.kibibytes) KiB" }
        print("  largest: " + largest.joined(separator: ", "))
    }

    /// Resident KiB per mapped file (or `[anonymous]`), largest first.
    static func residentByMapping(of pid: Int32) -> [(name: String, kibibytes: Int)] {
        // Read to the end: a /proc file has no size, and a sized read stops early.
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps"), let data = try? handle.readToEnd() else { return [] }
        try? handle.close()
        let smaps = String(decoding: data, as: UTF8.self)
        var sizes: [String: Int] = [:]
        var current = "[anonymous]"
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                current = fields.count > 5 ? String(fields[5].split(separator: "/").last ?? fields[5]) : "[anonymous]"
            } else if fields.first == "Rss:", fields.count > 1 {
                sizes[current, default: 0] += Int(fields[1]) ?? 0
            }
        }
        return sizes.map { ($0.key, $0.value) }.sorted { $0.kibibytes > $1.kibibytes }
    }
}

extension BenchCommand {
    /// `rampart bench apps`: app cold start and the runtime's memory with three apps running.
    struct Apps: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "App cold start (bytes to the end of app_start) and runtime RSS with three sample apps running.",
            discussion: "Build the sample apps first: scripts/build-apps (writes .build/apps).")

        @Option(help: "The directory scripts/build-apps wrote.") var apps = ".build/apps"
        @Option(help: "Cold starts to time per app.") var starts = 50
        @Option(help: "Seconds the three apps run before RSS is read.") var seconds = 3

        func run() async throws {
            guard (1...10_000).contains(starts), (1...600).contains(seconds) else {
                throw RampartError.invalidRequest("--starts must be 1…10000 and --seconds 1…600.")
            }
            func load(_ name: String) throws -> (wasm: [UInt8], manifest: AppManifest) {
                let folder = URL(fileURLWithPath: apps).appendingPathComponent(name)
                guard let wasm = try? Data(contentsOf: folder.appendingPathComponent("app.wasm")),
                    let manifest = try? Data(contentsOf: folder.appendingPathComponent("app_manifest.json"))
                else {
                    throw RampartError(.configurationInvalid, "No sample app \(name) in \(apps). Run scripts/build-apps first.")
                }
                return (Array(wasm), try AppManifest(bytes: manifest))
            }
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-apps-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: scratch) }
            var logger = Logger(label: "rampart.bench.apps")
            logger.logLevel = .critical
            let environment = AppEnvironment(
                board: VirtualPeripheralBoard(), messages: AppMessageBus(), storageDirectory: scratch, logger: logger)

            // Three long-running apps: blink, telemetry and a second blink under its own component ID.
            let blink = try load("blink")
            let telemetry = try load("telemetry")
            var second = blink.manifest
            second.componentID = UUID().uuidString.lowercased()
            let runners = [
                AppRunner(wasm: blink.wasm, manifest: blink.manifest, environment: environment),
                AppRunner(wasm: telemetry.wasm, manifest: telemetry.manifest, environment: environment),
                AppRunner(wasm: blink.wasm, manifest: second, environment: environment),
            ]
            let before = BenchTLS.residentBytes(of: getpid())
            await withTaskGroup(of: Void.self) { group in
                for runner in runners { group.addTask { _ = await runner.run() } }
                try? await Task.sleep(for: .seconds(seconds))
                let running = BenchTLS.residentBytes(of: getpid())
                let memory = runners.map(\.usage.memoryBytes).reduce(0, +)
                print("The sandbox alone (this process) with 3 apps running for \(seconds) s (target ≤ 30 MB):")
                print("  the whole rampart process: \(running / 1024) KiB (\(String(format: "%.1f", Double(running) / 1_048_576)) MiB); before the apps started: \(before / 1024) KiB")
                print("  the apps' linear memory: \(memory / 1024) KiB in all; RSS added by starting them: \((running - before) / 1024) KiB")
                // Most of a Swift process's RSS is code pages of the binary and its libraries: clean, shared with
                // every other process mapping them, and dropped first under memory pressure.
                let file = BenchTLS.residentBytes(of: getpid(), field: "RssFile")
                let anonymous = BenchTLS.residentBytes(of: getpid(), field: "RssAnon")
                print("  of the process's RSS: \(anonymous / 1024) KiB anonymous (heap, stacks, the apps), \(file / 1024) KiB file-backed (code of the binary and libraries)")
                for runner in runners { runner.stop() }
            }

            try await Self.measureRuntime(apps: [("blink", blink), ("telemetry", telemetry), ("blink-2", (blink.wasm, second))], seconds: seconds)

            print("\nApp cold start, \(starts) starts each (target ≤ 50 ms):")
            print("  app         module    median     p99       max")
            // httpclient is left out: its app_start waits on the network, which is not what cold start measures.
            for name in ["blink", "telemetry", "crasher"] {
                let app = try load(name)
                var times: [Double] = []
                for _ in 0..<starts {
                    let runner = AppRunner(wasm: app.wasm, manifest: app.manifest, environment: environment)
                    times.append(Double(try runner.measureColdStart().nanoseconds) / 1e6)
                }
                times.sort()
                let p99 = times[min(times.count - 1, Int(Double(times.count) * 0.99))]
                print("  " + name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: " %6d B  %7.2f ms %7.2f ms %7.2f ms", app.wasm.count, times[times.count / 2], p99, times.last ?? 0))
            }
        }
    }
}
