import ArgumentParser
import Foundation
import NIOHTTP1
import RampartCore
import RampartDevice
import RampartPKI

/// `rampart device enable-development` and `enable-cloud-test`: development mode on the server, and on the
/// device too when its state directory is at hand (Azure Sphere's attached device).
struct DeviceEnableDevelopmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable-development",
        abstract: "Put a device in development mode (Contributor or above): sideloading allowed, no cloud app updates.",
        discussion: """
            The server moves the device to its product's Development group (or --device-group-id, which must not \
            take cloud app updates) and signs an appDevelopment capability for it. The device receives the \
            capability with its next update check, or at once with --state-dir when its runtime runs here. \
            Attestation then accepts apps that no deployment lists from this device alone.
            """)
    @OptionGroup var options: DevelopmentModeChange

    func run() async throws { try await options.run("enable-development") }
}

struct DeviceEnableCloudTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable-cloud-test",
        abstract: "Take a device out of development mode (Contributor or above), back to cloud updates.",
        discussion: """
            The server moves the device to its product's Field Test group (or --device-group-id) and stops \
            accepting sideloaded apps from it. The device drops its capability and every sideloaded app with its \
            next update check, or at once with --state-dir when its runtime runs here.
            """)
    @OptionGroup var options: DevelopmentModeChange

    func run() async throws { try await options.run("enable-cloud-test") }
}

/// What `enable-development` and `enable-cloud-test` share: the server call, then the device's local API.
struct DevelopmentModeChange: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @Option(help: "The device ID.") var deviceId: String
    @Option(help: "The group to move it to; by default its product's Development (enable-development) or Field Test group.")
    var deviceGroupId: String?
    @Option(help: "The state directory of the device's runtime, when it runs here: the change reaches it at once.")
    var stateDir: String?

    func run(_ action: String) async throws {
        let group = try deviceGroupId.map { text -> RampartID in
            guard let id = RampartID(text) else { throw RampartError.invalidRequest("--device-group-id must be a device group ID (a UUID).") }
            return id
        }
        let id = try DeviceID.validated(deviceId)
        try await global.withClient { client, profile in
            let info = try await client.json(
                DevelopmentModeInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/devices/\(id)/\(action)",
                body: DevelopmentModeRequest(deviceGroupId: group))
            // The server's change is made: say so whatever happens on the device.
            if global.output == .json {
                try Printer.json(info)
            } else {
                print(
                    info.developmentMode
                        ? "Device \(info.deviceId) is in development mode, in group '\(info.deviceGroup.name)' of \(info.deviceGroup.productName)."
                        : "Device \(info.deviceId) is out of development mode, in group '\(info.deviceGroup.name)' of \(info.deviceGroup.productName).")
            }
            guard let stateDir else {
                if global.output != .json { print("The device follows with its next update check, within seconds while it is online.") }
                return
            }
            let state = DeviceState(directory: URL(fileURLWithPath: stateDir))
            do {
                if let capability = info.capability {
                    _ = try await LocalAPIClient.request(
                        DevelopmentStatus.self, "/development/capability", state: state, method: .PUT, body: Array(capability.utf8))
                    if global.output != .json { print("On the device: it holds the capability.") }
                } else {
                    let removed = try await LocalAPIClient.request(SideloadResult.self, "/development/capability", state: state, method: .DELETE)
                    if global.output != .json {
                        print("On the device: it left development mode and removed \(removed.componentIds.count) sideloaded app(s).")
                    }
                }
            } catch let error as RampartError {
                throw RampartError(
                    error.code,
                    "The server made the change, but the device at \(stateDir) did not take it: \(error.message) It follows with its next update check.",
                    status: error.status)
            }
        }
    }
}

/// `rampart device sideload …`: install and delete apps on a development device through its local API.
struct DeviceSideloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sideload", abstract: "Install or delete apps on a device in development mode (local API).",
        subcommands: [Deploy.self, Delete.self, Show.self])

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install an app image package on the device, replacing any version of the same component, and start it.")
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "The app image package (from 'rampart image-package pack-application').") var imagePackage: String

        func run() async throws {
            guard let bytes = FileManager.default.contents(atPath: imagePackage) else {
                throw RampartError(.invalidRequest, "Cannot read --image-package \(imagePackage).")
            }
            let result = try await LocalAPIClient.request(
                SideloadResult.self, "/sideload", state: DeviceState(directory: URL(fileURLWithPath: stateDir)), method: .POST,
                body: Array(bytes))
            print("Sideloaded \(result.componentIds.joined(separator: ", ")); the runtime starts it and attests again.")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an app from the device; every app when --component-id is omitted.")
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "The app's component ID.") var componentId: String?

        func run() async throws {
            var path = "/sideload"
            if let componentId {
                guard let id = RampartID(componentId) else {
                    throw RampartError(.invalidRequest, "--component-id must be the app's component ID (a UUID).")
                }
                path += "?componentId=\(id)"
            }
            let result = try await LocalAPIClient.request(
                SideloadResult.self, path, state: DeviceState(directory: URL(fileURLWithPath: stateDir)), method: .DELETE)
            print(result.componentIds.isEmpty ? "No apps were installed." : "Deleted \(result.componentIds.joined(separator: ", ")).")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show whether the device is in development mode.")
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "Output format: table or json.") var output: OutputFormat = .table

        func run() async throws {
            let status = try await LocalAPIClient.get(
                DevelopmentStatus.self, "/development", state: DeviceState(directory: URL(fileURLWithPath: stateDir)))
            try Printer.output(status, as: output, headers: ["Development mode", "Since", "Problem"]) {
                [[status.developmentMode ? "on" : "off", status.since.map(Timestamp.format) ?? "", status.problem ?? ""]]
            }
        }
    }
}
