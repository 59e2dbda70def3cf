import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartImage
import RampartSandbox

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
                print("Runtime RSS with 3 apps running for \(seconds) s (target ≤ 30 MB):")
                print("  the whole rampart process: \(running / 1024) KiB (\(String(format: "%.1f", Double(running) / 1_048_576)) MiB); before the apps started: \(before / 1024) KiB")
                print("  the apps' linear memory: \(memory / 1024) KiB in all; RSS added by starting them: \((running - before) / 1024) KiB")
                // Most of a Swift process's RSS is code pages of the binary and its libraries: clean, shared with
                // every other process mapping them, and dropped first under memory pressure.
                let file = BenchTLS.residentBytes(of: getpid(), field: "RssFile")
                let anonymous = BenchTLS.residentBytes(of: getpid(), field: "RssAnon")
                print("  of the process's RSS: \(anonymous / 1024) KiB anonymous (heap, stacks, the apps), \(file / 1024) KiB file-backed (code of the binary and libraries)")
                for runner in runners { runner.stop() }
            }

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
