import ArgumentParser
import Foundation
import RampartCore
import RampartDevice

/// `rampart device app …`: the apps of a running device runtime, through its local API.
struct DeviceAppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app", abstract: "Start, stop and inspect the apps of a running device runtime (local API).",
        subcommands: [ShowStatus.self, ShowQuota.self, Start.self, Stop.self])

    struct Target: ParsableArguments {
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "The app's component ID; all apps when omitted (show-status and show-quota).") var componentId: String?
        @Option(help: "Output format: table or json.") var output: OutputFormat = .table

        var state: DeviceState { DeviceState(directory: URL(fileURLWithPath: stateDir)) }

        func requiredComponent() throws -> String {
            guard let componentId, let id = RampartID(componentId) else {
                throw RampartError(.invalidRequest, "--component-id must be the app's component ID (a UUID).")
            }
            return id.description
        }

        /// Starts or stops the app, then prints its status.
        func act(_ action: String) async throws {
            let status = try await LocalAPIClient.post(AppStatus.self, "/apps/\(try requiredComponent())/\(action)", state: state)
            try DeviceAppCommand.printStatus([status], output)
        }

        func apps() async throws -> [AppStatus] {
            if componentId != nil {
                return [try await LocalAPIClient.get(AppStatus.self, "/apps/\(try requiredComponent())", state: state)]
            }
            return try await LocalAPIClient.get(AppStatusList.self, "/apps", state: state).apps
        }
    }

    static func printStatus(_ apps: [AppStatus], _ format: OutputFormat) throws {
        try Printer.output(apps, as: format, headers: ["Component ID", "Name", "Version", "State", "Restarts", "Last fault"]) {
            apps.map {
                [$0.componentId, $0.name, $0.version,
                 $0.state.rawValue + ($0.nextStartAt.map { " (restart \(Timestamp.format($0)))" } ?? ""), String($0.restarts),
                 ($0.lastFaultClass.map { "\($0.rawValue): " } ?? "") + ($0.lastFault ?? "")]
            }
        }
    }

    struct ShowStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show-status", abstract: "Show whether apps run, and how they last failed.")
        @OptionGroup var target: Target
        func run() async throws { try DeviceAppCommand.printStatus(try await target.apps(), target.output) }
    }

    struct ShowQuota: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show-quota", abstract: "Show apps' memory, storage, fuel and CPU time against their limits.")
        @OptionGroup var target: Target
        func run() async throws {
            let apps = try await target.apps()
            try Printer.output(apps, as: target.output, headers: ["Component ID", "Name", "Memory (KiB)", "Storage (KiB)", "Fuel spent", "CPU (ms)", "Held back (ms)"]) {
                apps.map {
                    [$0.componentId, $0.name, "\($0.memoryBytes / 1024) of \($0.memoryLimitBytes / 1024)",
                     "\($0.storageBytes / 1024) of \($0.storageLimitBytes / 1024)", String($0.fuelSpent),
                     $0.cpuMilliseconds.map(String.init) ?? "-", $0.throttledMilliseconds.map(String.init) ?? "-"]
                }
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start an app now, forgetting any restart backoff.")
        @OptionGroup var target: Target
        func run() async throws { try await target.act("start") }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop an app; it stays stopped until started or updated.")
        @OptionGroup var target: Target
        func run() async throws { try await target.act("stop") }
    }
}
