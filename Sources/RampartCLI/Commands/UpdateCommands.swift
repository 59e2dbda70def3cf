import ArgumentParser
import Crypto
import Foundation
import RampartCore
import RampartDevice
import RampartTUF

/// `rampart product …`.
struct ProductCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "product", abstract: "Manage products; each new product gets the five default device groups.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self])

    static func show(_ products: [ProductInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(value, as: format, headers: ["ID", "Name", "Description"]) {
            products.map { [$0.id.description, $0.name, $0.description] }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a product and its default device groups.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The product name: letters, digits, spaces, '-' and '_', up to 50.") var name: String
        @Option(help: "A description.") var description: String?

        func run() async throws {
            try await global.withClient { client, profile in
                let product = try await client.json(
                    ProductInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/products",
                    body: ProductRequest(name: name, description: description))
                try ProductCommand.show([product], product, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant's products.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(ProductList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/products")
                try ProductCommand.show(list.products, list, global.output)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a product.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The product ID or name.") var product: String

        func run() async throws {
            try await global.withClient { client, profile in
                let info = try await client.json(
                    ProductInfo.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/products/\(PathSegment.encode(product))")
                try ProductCommand.show([info], info, global.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a product or change its description.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The product ID or name.") var product: String
        @Option(help: "The new name.") var newName: String?
        @Option(help: "The new description.") var newDescription: String?

        func run() async throws {
            try await global.withClient { client, profile in
                let info = try await client.json(
                    ProductInfo.self, .PATCH,
                    "/v1/tenants/\(try global.tenantID(profile))/products/\(PathSegment.encode(product))",
                    body: ProductRequest(name: newName, description: newDescription))
                try ProductCommand.show([info], info, global.output)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a product and its device groups (none may hold devices).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The product ID or name.") var product: String

        func run() async throws {
            try await global.withClient { client, profile in
                _ = try await client.send(
                    .DELETE, "/v1/tenants/\(try global.tenantID(profile))/products/\(PathSegment.encode(product))")
                print("Deleted product \(product).")
            }
        }
    }
}

/// `rampart device-group …`.
struct DeviceGroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device-group",
        abstract: "Manage device groups: update policy, OS feed, maintenance window and data budget.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self, DeploymentCommand.self])

    static func show(_ groups: [DeviceGroupInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(
            value, as: format,
            headers: ["ID", "Product", "Name", "Update policy", "OS feed", "Window", "Data budget", "Devices"]
        ) {
            groups.map {
                [
                    $0.id.description, $0.productName, $0.name, $0.updatePolicy.rawValue, $0.osFeed.rawValue,
                    $0.maintenanceWindow ?? "any time", $0.dataBudgetMB.map { "\($0) MB/month" } ?? "none",
                    String($0.deviceCount),
                ]
            }
        }
    }

    struct Settings: ParsableArguments {
        @Option(help: "UpdateAll, No3rdPartyAppUpdates or NoUpdates.") var updatePolicy: String?
        @Option(help: "Retail or RetailEval.") var osFeed: String?
        @Option(help: "When updates may install, e.g. '02:00-04:00 UTC'; '' for any time.") var maintenanceWindow: String?
        @Option(
            name: .customLong("data-budget-mb"),
            help: "Monthly servicing data budget per device in MB (10^6 bytes), up to 1000000; 0 for none.")
        var dataBudgetMB: Int?

        func policy() throws -> UpdatePolicy? {
            try updatePolicy.map { text in
                guard let policy = UpdatePolicy.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
                    throw RampartError.invalidRequest("Unknown update policy '\(text)'. Use UpdateAll, No3rdPartyAppUpdates or NoUpdates.")
                }
                return policy
            }
        }

        func feed() throws -> OSFeed? {
            try osFeed.map { text in
                guard let feed = OSFeed.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
                    throw RampartError.invalidRequest("Unknown OS feed '\(text)'. Use Retail or RetailEval.")
                }
                return feed
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a device group in a product.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The product ID or name.") var product: String
        @Option(help: "The group name.") var name: String
        @Option(help: "A description.") var description: String?
        @OptionGroup var settings: Settings

        func run() async throws {
            try await global.withClient { client, profile in
                let group = try await client.json(
                    DeviceGroupInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/device-groups",
                    body: DeviceGroupRequest(
                        product: product, name: name, description: description, updatePolicy: try settings.policy(),
                        osFeed: try settings.feed(), maintenanceWindow: settings.maintenanceWindow,
                        dataBudgetMB: settings.dataBudgetMB))
                try DeviceGroupCommand.show([group], group, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List device groups, optionally of one product.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this product (ID or name).") var product: String?

        func run() async throws {
            try await global.withClient { client, profile in
                var path = "/v1/tenants/\(try global.tenantID(profile))/device-groups"
                if let product { path += "?product=\(PathSegment.encode(product))" }
                let list = try await client.json(DeviceGroupList.self, .GET, path)
                try DeviceGroupCommand.show(list.deviceGroups, list, global.output)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a device group.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device group ID.") var deviceGroup: String

        func run() async throws {
            try await global.withClient { client, profile in
                let group = try await client.json(
                    DeviceGroupInfo.self, .GET,
                    "/v1/tenants/\(try global.tenantID(profile))/device-groups/\(try RampartID(parsing: deviceGroup, field: "--device-group"))")
                try DeviceGroupCommand.show([group], group, global.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a device group's name, policy, feed, window or data budget.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device group ID.") var deviceGroup: String
        @Option(help: "The new name.") var newName: String?
        @Option(help: "The new description.") var newDescription: String?
        @OptionGroup var settings: Settings

        func run() async throws {
            try await global.withClient { client, profile in
                let group = try await client.json(
                    DeviceGroupInfo.self, .PATCH,
                    "/v1/tenants/\(try global.tenantID(profile))/device-groups/\(try RampartID(parsing: deviceGroup, field: "--device-group"))",
                    body: DeviceGroupRequest(
                        name: newName, description: newDescription, updatePolicy: try settings.policy(),
                        osFeed: try settings.feed(), maintenanceWindow: settings.maintenanceWindow,
                        dataBudgetMB: settings.dataBudgetMB))
                try DeviceGroupCommand.show([group], group, global.output)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a device group (it must hold no devices).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device group ID.") var deviceGroup: String

        func run() async throws {
            try await global.withClient { client, profile in
                _ = try await client.send(
                    .DELETE,
                    "/v1/tenants/\(try global.tenantID(profile))/device-groups/\(try RampartID(parsing: deviceGroup, field: "--device-group"))")
                print("Deleted device group \(deviceGroup).")
            }
        }
    }
}

/// `rampart device update`: move a device to a device group.
struct DeviceUpdateCommand: AsyncParsableCommand {
    // The group move is the default subcommand, so `device update --device-id … --device-group …` works as in
    // azsphere, and `device update check-now --device-id …` has its options to itself.
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Move a device to a device group; 'update check-now' makes it look for updates now.",
        subcommands: [Move.self, CheckNow.self], defaultSubcommand: Move.self)

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "move", abstract: "Move a device to a device group.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String
        @Option(help: "The device group ID.") var deviceGroup: String

        func run() async throws {
            try await global.withClient { client, profile in
                let group = try await client.json(
                    DeviceGroupInfo.self, .PATCH, "/v1/tenants/\(try global.tenantID(profile))/devices/\(PathSegment.encode(deviceId))",
                    body: DeviceUpdateRequest(deviceGroupId: try RampartID(parsing: deviceGroup, field: "--device-group")))
                if global.output == .json { return try Printer.json(group) }
                print("Device \(deviceId) is now in \(group.productName) / \(group.name).")
            }
        }
    }

    struct CheckNow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-now", abstract: "Make a running device check for updates within seconds (push).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String

        func run() async throws {
            try await global.withClient { client, profile in
                _ = try await client.send(.POST, "/v1/tenants/\(try global.tenantID(profile))/devices/\(PathSegment.encode(deviceId))/check-now")
                print("Device \(deviceId) will check for updates within seconds, if it is online.")
            }
        }
    }
}

/// `rampart tenant tuf …`: the tenant's TUF repository.
struct TenantTUFCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tuf", abstract: "Inspect the tenant's TUF repository and move its root keys into offline custody.",
        subcommands: [Show.self, DownloadRoot.self, RootRotate.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show root custody and every role's version and expiry.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let info = try await client.json(TUFRepositoryInfo.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/tuf")
                if global.output == .json { return try Printer.json(info) }
                print("Root version \(info.rootVersion), threshold \(info.rootThreshold) of \(info.rootKeyIDs.count) key(s), "
                    + (info.rootKeysHeldByServer ? "held by the server (run 'tenant tuf root-rotate' for offline custody)" : "in offline custody"))
                Printer.table(["Role", "Version", "Expires"], info.roles.map { [$0.role, String($0.version), Timestamp.format($0.expiresAt)] })
            }
        }
    }

    struct DownloadRoot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download the current root metadata (a client's trust anchor).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Where to write root.json.") var destination: String

        func run() async throws {
            try await global.withClient { client, profile in
                let raw = try await client.send(.GET, "/v1/tenants/\(try global.tenantID(profile))/tuf/root")
                try Download.write(raw.body, to: destination)
            }
        }
    }

    struct RootRotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "root-rotate",
            abstract: "Make new root keys, write them for offline custody, and publish the next root signed by them.",
            discussion: """
                The new private keys are written to --keys-out (mode 0600) and never sent to the server. The next root \
                is signed here by the new keys (and by --signing-key files when the current root keys are already \
                offline); the server adds the signature of a root key it still holds, checks the result exactly as \
                devices will, and then forgets its own root key.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "How many of the new root keys must sign a future root.") var threshold: Int = 1
        @Option(help: "How many new root keys to make.") var keyCount: Int?
        @Option(help: "Directory for the new root private keys (PEM).") var keysOut: String
        @Option(help: "A current root private key in offline custody (PEM); repeat for a threshold.") var signingKey: [String] = []
        @Option(help: "Days until the new root expires.") var expiresInDays: Int = 365

        func run() async throws {
            let count = keyCount ?? max(threshold, 1)
            guard threshold >= 1, count >= threshold, count <= 16 else {
                throw RampartError.invalidRequest("Give 1 ≤ --threshold ≤ --key-count ≤ 16.")
            }
            guard (1...3650).contains(expiresInDays) else { throw RampartError.invalidRequest("--expires-in-days must be 1…3650.") }
            let oldSigners = try signingKey.map { path -> any TUFSigner in
                guard let pem = try? String(contentsOfFile: path, encoding: .utf8),
                    let key = try? P256.Signing.PrivateKey(pemRepresentation: pem)
                else { throw RampartError.invalidRequest("\(path) is not a P-256 private key in PEM.") }
                return P256TUFSigner(key)
            }
            try await global.withClient { client, profile in
                let tenant = try global.tenantID(profile)
                let raw = try await client.send(.GET, "/v1/tenants/\(tenant)/tuf/root")
                let current = try RootMetadata(try SignedMetadata(bytes: raw.body).signed)
                let newSigners = (0..<count).map { _ in P256TUFSigner() }
                var next = current
                next.common = CommonFields(
                    version: current.common.version + 1, expires: Date().addingTimeInterval(Double(expiresInDays) * 86_400))
                for keyID in current.roles[.root]!.keyIDs { next.keys.removeValue(forKey: keyID) }
                for signer in newSigners { next.keys[signer.keyID] = signer.key }
                next.roles[.root] = RoleKeys(keyIDs: newSigners.map(\.keyID), threshold: threshold)
                // Write the keys before anything is published, so custody never depends on a later step.
                let directory = URL(fileURLWithPath: keysOut)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                for signer in newSigners {
                    try SecureFile.write(signer.privateKey.pemRepresentation + "\n", to: directory.appendingPathComponent("root-\(signer.keyID.prefix(16)).pem"))
                }
                let signed = try SignedMetadata(signing: next.signed, with: newSigners + oldSigners)
                let info = try await client.json(
                    TUFRepositoryInfo.self, .POST, "/v1/tenants/\(tenant)/tuf/root",
                    body: TUFRootRotationRequest(root: String(decoding: signed.fileBytes, as: UTF8.self)))
                if global.output == .json { return try Printer.json(info) }
                print("Root version \(info.rootVersion) is published: threshold \(info.rootThreshold) of \(info.rootKeyIDs.count).")
                print("The root private keys are in \(directory.path). Keep them offline; the server no longer holds a root key.")
            }
        }
    }
}

/// Percent-encoding for one URL path segment.
enum PathSegment {
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}

/// `rampart device show-deployment-status`: what a device runs against what its group should run.
struct DeviceDeploymentStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show-deployment-status", abstract: "Show what a device reported installing against its group's deployment.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The device ID.") var deviceId: String

    func run() async throws {
        try await global.withClient { client, profile in
            let status = try await client.json(
                DeploymentStatus.self, .GET,
                "/v1/tenants/\(try global.tenantID(profile))/devices/\(PathSegment.encode(deviceId))/deployment-status")
            if global.output == .json { return try Printer.json(status) }
            print("Device \(status.deviceId), group \(status.deviceGroupId?.description ?? "(none)")")
            print("Deployment: \(status.targetImageIds.isEmpty ? "(nothing deployed)" : status.targetImageIds.map(\.description).joined(separator: " "))")
            if let report = status.report {
                print("Last update check: \(Timestamp.format(report.at)) \(report.result)\(report.message.map { " — \($0)" } ?? "")")
                print("Runtime: \(report.runtimeVersion)\(report.lastSwitch.map { " (last switch: \($0))" } ?? "")")
                Printer.table(["Component", "Name", "Version", "Image"], report.installedApps.map { [$0.componentId, $0.name, $0.version, $0.imageId ?? ""] })
            } else {
                print("The device has not reported yet.")
            }
            print(status.upToDate ? "Up to date." : "Not up to date yet.")
        }
    }
}

/// `rampart device image list-installed --state-dir D`: what a running device has installed (local API).
struct DeviceImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Images installed on a device.", subcommands: [ListInstalled.self])

    struct ListInstalled: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list-installed", abstract: "List the runtime and apps a running device has installed (local API).")
        @Option(help: "The device state directory.") var stateDir: String
        @Option(help: "Output format: table or json.") var output: OutputFormat = .table

        func run() async throws {
            let images = try await LocalAPIClient.get(InstalledImages.self, "/images", state: DeviceState(directory: URL(fileURLWithPath: stateDir)))
            if output == .json { return try Printer.json(images) }
            print("Runtime \(images.runtimeVersion) (slot \(images.activeSlot))")
            Printer.table(["Component", "Name", "Version", "Image"], images.apps.map { [$0.componentId, $0.name, $0.version, $0.imageId ?? ""] })
        }
    }
}
