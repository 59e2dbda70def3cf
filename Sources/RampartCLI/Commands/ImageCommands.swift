import ArgumentParser
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RampartCore
import RampartImage

/// `rampart image-package …`: build signed image packages, offline.
struct ImagePackageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image-package", abstract: "Build signed image packages (apps and runtime) and package signing keys.",
        subcommands: [PackApplication.self, PackRuntime.self, NewSigningKey.self, Show.self])

    struct Signing: ParsableArguments {
        @Option(help: "The package signing key (P-256 private key, PEM).") var signingKey: String
        @Option(help: "The version, e.g. 1.2.0.") var version: String
        @Option(help: "Where to write the package.") var destination: String

        func key() throws -> P256.Signing.PrivateKey {
            guard let pem = try? String(contentsOfFile: signingKey, encoding: .utf8),
                let key = try? P256.Signing.PrivateKey(pemRepresentation: pem)
            else { throw RampartError.invalidRequest("\(signingKey) is not a P-256 private key in PEM. Make one with 'rampart image-package new-signing-key'.") }
            return key
        }

        func write(_ package: ImagePackage) throws {
            try SecureFile.write(Data(package.bytes), to: URL(fileURLWithPath: destination), mode: 0o644)
            let m = package.manifest
            print("Wrote \(destination): \(m.kind.rawValue) \(m.name) \(m.version), \(package.bytes.count) bytes, payload sha256 \(m.payloadSHA256), signed by \(package.keyID)")
        }
    }

    static func read(_ path: String, what: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RampartError.invalidRequest("Cannot read the \(what) \(path).") }
        return Array(data)
    }

    struct PackApplication: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pack a WebAssembly app with its app_manifest.json.")
        @Option(help: "The app_manifest.json.") var manifest: String
        @Option(help: "The app's WebAssembly module.") var executable: String
        @OptionGroup var signing: Signing

        func run() async throws {
            let app = try AppManifest(bytes: try ImagePackageCommand.read(manifest, what: "app manifest"))
            let payload = try ImagePackageCommand.read(executable, what: "executable")
            guard payload.starts(with: [0x00, 0x61, 0x73, 0x6d]) else {
                throw RampartError.invalidRequest("\(executable) is not a WebAssembly module (it lacks the \\0asm header).")
            }
            let manifest = ImageManifest(
                kind: .app, componentID: app.componentID, name: app.name, version: signing.version,
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(payload))), payloadLength: payload.count, appManifest: app)
            try signing.write(try ImagePackage.pack(manifest: manifest, payload: payload, signingKey: try signing.key()))
        }
    }

    struct PackRuntime: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pack system software: a rampart runtime binary.")
        @Option(help: "The runtime executable (default: this rampart binary).") var executable: String?
        @Flag(help: "A security-critical update: devices install it even outside their maintenance window.") var critical = false
        @OptionGroup var signing: Signing

        func run() async throws {
            let path = executable ?? CommandLine.executablePath
            let payload = try ImagePackageCommand.read(path, what: "runtime executable")
            let manifest = ImageManifest(
                kind: .runtime, componentID: ImageManifest.runtimeComponentID, name: "rampart", version: signing.version,
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(payload))), payloadLength: payload.count, critical: critical)
            try signing.write(try ImagePackage.pack(manifest: manifest, payload: payload, signingKey: try signing.key()))
        }
    }

    struct NewSigningKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-signing-key", abstract: "Make a package signing key; register its .pub.pem with 'tenant signing-key add'.")
        @Option(help: "Where to write the private key (PEM, mode 0600); the public key goes next to it as .pub.pem.") var out: String

        func run() async throws {
            let key = P256.Signing.PrivateKey()
            try SecureFile.write(key.pemRepresentation + "\n", to: URL(fileURLWithPath: out))
            try SecureFile.write(key.publicKey.pemRepresentation + "\n", to: URL(fileURLWithPath: out + ".pub.pem"), mode: 0o644)
            print("Wrote \(out) and \(out).pub.pem (key ID \(ImagePackage.keyID(of: key.publicKey)))")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a package's manifest and check its payload.")
        @Option(help: "The image package.") var imagePackage: String

        func run() async throws {
            let package = try ImagePackage(bytes: try ImagePackageCommand.read(imagePackage, what: "image package"))
            print(package.manifest.jsonText)
            print("signed by key \(package.keyID); payload matches its SHA-256")
        }
    }
}

extension CommandLine {
    /// The running executable's path.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}

/// `rampart image …`.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Upload and inspect images.", subcommands: [Add.self, List.self, Show.self])

    static func show(_ images: [ImageInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(value, as: format, headers: ["ID", "Kind", "Name", "Version", "Component", "Size"]) {
            images.map { [$0.id.description, $0.kind, $0.name, $0.version, $0.componentId, String($0.length)] }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload an image package; the server checks its signature and manifest.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The image package file.") var imagePackage: String

        func run() async throws {
            let bytes = try ImagePackageCommand.read(imagePackage, what: "image package")
            let onTerminal = isatty(STDERR_FILENO) == 1
            var progress: (@Sendable (Int, Int) -> Void)?
            if onTerminal { progress = { @Sendable sent, total in ProgressBar.draw(sent: sent, total: total) } }
            try await global.withClient { client, profile in
                let path = "/v1/tenants/\(try global.tenantID(profile))/images"
                let raw = try await client.send(
                    .POST, path, rawBody: bytes, contentType: "application/octet-stream", progress: progress)
                if onTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
                let image = try JSONCoding.decoder().decode(ImageInfo.self, from: Data(raw.body))
                try ImageCommand.show([image], image, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant's images.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(ImageList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/images")
                try ImageCommand.show(list.images, list, global.output)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The image ID.") var imageId: String

        func run() async throws {
            try await global.withClient { client, profile in
                let image = try await client.json(
                    ImageInfo.self, .GET,
                    "/v1/tenants/\(try global.tenantID(profile))/images/\(try RampartID(parsing: imageId, field: "--image-id"))")
                if global.output == .json { return try Printer.json(image) }
                try ImageCommand.show([image], image, global.output)
                print("Package SHA-256: \(image.sha256)\nPayload SHA-256: \(image.payloadSha256)\nSigned by: \(image.signingKeyId)")
            }
        }
    }
}

/// A one-line progress bar on standard error.
enum ProgressBar {
    static func draw(sent: Int, total: Int) {
        let width = 30
        let filled = total == 0 ? width : sent * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = total == 0 ? 100 : sent * 100 / total
        FileHandle.standardError.write(Data("\r[\(bar)] \(percent)% \(sent)/\(total) bytes".utf8))
    }
}

/// `rampart tenant signing-key …`.
struct SigningKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signing-key", abstract: "Register, list and revoke package signing keys.",
        subcommands: [Add.self, List.self, Revoke.self])

    static func show(_ keys: [SigningKeyInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(value, as: format, headers: ["Key ID", "Description", "Status"]) {
            keys.map { [$0.keyId, $0.description, $0.revokedAt.map { "revoked \(Timestamp.format($0))" } ?? "active"] }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a package signing key (Administrator).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The public key (PEM).") var publicKey: String
        @Option(help: "A description.") var description: String?

        func run() async throws {
            guard let pem = try? String(contentsOfFile: publicKey, encoding: .utf8) else {
                throw RampartError.invalidRequest("Cannot read \(publicKey).")
            }
            try await global.withClient { client, profile in
                let key = try await client.json(
                    SigningKeyInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/signing-keys",
                    body: SigningKeyRequest(publicKey: pem, description: description))
                try SigningKeyCommand.show([key], key, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List package signing keys.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(SigningKeyList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/signing-keys")
                try SigningKeyCommand.show(list.signingKeys, list, global.output)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a signing key: what it signed is withdrawn from every deployment and feed.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The key ID.") var keyId: String

        func run() async throws {
            try await global.withClient { client, profile in
                let key = try await client.json(
                    SigningKeyInfo.self, .POST,
                    "/v1/tenants/\(try global.tenantID(profile))/signing-keys/\(PathSegment.encode(keyId))/revoke")
                try SigningKeyCommand.show([key], key, global.output)
            }
        }
    }
}

/// `rampart device-group deployment …`.
struct DeploymentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployment", abstract: "Deploy images to a device group.", subcommands: [Create.self, List.self])

    static func show(_ deployments: [DeploymentInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(value, as: format, headers: ["ID", "Created", "By", "Images", "Current"]) {
            deployments.map {
                [$0.id.description, Timestamp.format($0.createdAt), $0.createdBy, $0.imageIds.map(\.description).joined(separator: " "), $0.current ? "*" : ""]
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deploy exactly these images to a device group.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device group ID.") var deviceGroup: String
        @Option(parsing: .upToNextOption, help: "Image IDs.") var images: [String]

        func run() async throws {
            let ids = try images.map { try RampartID(parsing: $0, field: "--images") }
            try await global.withClient { client, profile in
                let deployment = try await client.json(
                    DeploymentInfo.self, .POST,
                    "/v1/tenants/\(try global.tenantID(profile))/device-groups/\(try RampartID(parsing: deviceGroup, field: "--device-group"))/deployments",
                    body: DeploymentRequest(imageIds: ids))
                try DeploymentCommand.show([deployment], deployment, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a device group's deployments, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device group ID.") var deviceGroup: String

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(
                    DeploymentList.self, .GET,
                    "/v1/tenants/\(try global.tenantID(profile))/device-groups/\(try RampartID(parsing: deviceGroup, field: "--device-group"))/deployments")
                try DeploymentCommand.show(list.deployments, list, global.output)
            }
        }
    }
}

/// `rampart runtime-release …`.
struct RuntimeReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime-release", abstract: "Publish runtime images to the Retail or RetailEval feed.",
        subcommands: [Publish.self, List.self])

    static func show(_ releases: [RuntimeReleaseInfo], _ value: some Encodable, _ format: OutputFormat) throws {
        try Printer.output(value, as: format, headers: ["Feed", "Version", "Image", "Published"]) {
            releases.map { [$0.feed.rawValue, $0.version, $0.imageId.description, Timestamp.format($0.createdAt)] }
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish a runtime image to a feed (Administrator).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The runtime image ID.") var imageId: String
        @Option(help: "Retail or RetailEval.") var feed: String

        func run() async throws {
            guard let feed = OSFeed.allCases.first(where: { $0.rawValue.lowercased() == self.feed.lowercased() }) else {
                throw RampartError.invalidRequest("Unknown feed '\(self.feed)'. Use Retail or RetailEval.")
            }
            try await global.withClient { client, profile in
                let release = try await client.json(
                    RuntimeReleaseInfo.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/runtime-releases",
                    body: RuntimeReleaseRequest(imageId: try RampartID(parsing: imageId, field: "--image-id"), feed: feed))
                try RuntimeReleaseCommand.show([release], release, global.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runtime releases.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(RuntimeReleaseList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/runtime-releases")
                try RuntimeReleaseCommand.show(list.runtimeReleases, list, global.output)
            }
        }
    }
}
