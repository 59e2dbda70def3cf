import ArgumentParser
import Foundation
import RampartCore
import RampartDevice
import RampartLink

/// `rampart device network …`: a running runtime's interfaces, link facts and servicing data (local API).
struct DeviceNetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Show a running device runtime's network interfaces and link (local API).",
        subcommands: [ListInterfaces.self, ShowStatus.self])

    struct ListInterfaces: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list-interfaces",
            abstract: "List the interfaces and which ones servicing (attestation, updates, error reports) may use.")
        @OptionGroup var local: LocalRuntimeOptions

        func run() async throws {
            let (state, output) = (local.state, local.output)
            let list = try await LocalAPIClient.get(NetworkInterfaceList.self, "/network/interfaces", state: state)
            try Printer.output(list, as: output, headers: ["Interface", "State", "Addresses", "Servicing"]) {
                list.interfaces.map {
                    [$0.name, ($0.up ? "up" : "down") + ($0.loopback ? ", loopback" : ""), $0.addresses.joined(separator: " "),
                     $0.service ? "managed (pinned)" : $0.managed ? "managed" : "not managed"]
                }
            }
        }
    }

    struct ShowStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show-status",
            abstract: "Show the router control channel, the link facts it reported, and this month's servicing data.")
        @OptionGroup var local: LocalRuntimeOptions

        func run() async throws {
            let (state, output) = (local.state, local.output)
            let status = try await LocalAPIClient.get(LinkBoard.Snapshot.self, "/network/status", state: state)
            try Printer.output(status, as: output, headers: ["Field", "Value"]) {
                let counters = status.counters
                return [
                    ["Router control channel", status.routerControl.map { "\($0) (\(status.connected ? "connected" : "not connected"))" } ?? "(none)"]
                ] + (status.facts?.rows ?? []) + [
                    ["Reports accepted", String(counters.accepted)],
                    ["Reports dropped", "unknown \(counters.unknown), malformed \(counters.malformed), oversized \(counters.oversized), rate-limited \(counters.rateLimited)"],
                    ["Disconnects", String(counters.disconnects) + (status.lastDisconnect.map { " (last: \($0))" } ?? "")],
                    ["Last rejected line", status.lastRejection ?? ""],
                    ["Downloads wait for", status.downloadsWaitFor ?? "(nothing)"],
                    ["Servicing data this month", status.dataUsage?.summary ?? ""],
                    ["Refused servicing paths", String(status.refusedServicingConnections) + (status.lastRefusal.map { " (last: \($0))" } ?? "")],
                ]
            }
        }
    }
}

/// The options of commands that ask a running runtime through its local API.
struct LocalRuntimeOptions: ParsableArguments {
    @Option(help: "The device state directory.") var stateDir: String
    @Option(help: "Output format: table or json.") var output: OutputFormat = .table

    var state: DeviceState { DeviceState(directory: URL(fileURLWithPath: stateDir)) }
}
