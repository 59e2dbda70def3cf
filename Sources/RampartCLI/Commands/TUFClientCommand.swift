import ArgumentParser
import Foundation
import RampartCore
import RampartTUF

/// `rampart tuf-client`: the device's TUF client as a standalone command, with the interface independent
/// TUF conformance suites drive (DESIGN §4). Exits 0 on success and 1 on any failure.
struct TUFClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tuf-client",
        abstract: "Run the TUF client workflow: init, refresh or download.",
        discussion: """
            rampart tuf-client --metadata-dir D init ROOT
            rampart tuf-client --metadata-url U --metadata-dir D refresh
            rampart tuf-client --metadata-url U --metadata-dir D --target-name P --target-base-url B --target-dir T download
            """)

    @Option(help: "Directory of trusted metadata.") var metadataDir: String
    @Option(help: "Base URL of the repository's metadata.") var metadataUrl: String?
    @Option(help: "Target path to download (repeatable).") var targetName: [String] = []
    @Option(help: "Base URL of the repository's targets.") var targetBaseUrl: String?
    @Option(help: "Directory for downloaded targets.") var targetDir: String?
    @Argument(help: "init, refresh or download, then for init the trusted root file.") var arguments: [String]

    func run() async throws {
        let metadataDirectory = URL(fileURLWithPath: metadataDir)
        switch arguments.first {
        case "init":
            guard arguments.count == 2 else { throw RampartError.invalidRequest("init takes exactly one root file.") }
            let root: Data
            do { root = try Data(contentsOf: URL(fileURLWithPath: arguments[1])) } catch {
                throw RampartError(.trustedMetadataMissing, "Cannot read the trusted root \(arguments[1]).")
            }
            try TUFUpdater.initialize(metadataDirectory: metadataDirectory, trustedRoot: root)
        case "refresh":
            guard arguments.count == 1 else { throw RampartError.invalidRequest("refresh takes no arguments.") }
            var updater = try makeUpdater(metadataDirectory)
            try await updater.refresh()
        case "download":
            guard arguments.count == 1, !targetName.isEmpty, let targetBaseUrl, let targetDir else {
                throw RampartError.invalidRequest("download needs --target-name, --target-base-url and --target-dir.")
            }
            var updater = try makeUpdater(metadataDirectory)
            try await updater.refresh()
            for name in targetName {
                guard let target = try await updater.targetInfo(for: name) else {
                    throw RampartError(.targetNotFound, "No trusted targets metadata lists \(name).")
                }
                _ = try await updater.download(target, baseURL: targetBaseUrl, into: URL(fileURLWithPath: targetDir))
            }
        default:
            throw RampartError.invalidRequest("Say init, refresh or download.")
        }
    }

    private func makeUpdater(_ directory: URL) throws -> TUFUpdater {
        guard let metadataUrl else { throw RampartError.invalidRequest("This needs --metadata-url.") }
        return TUFUpdater(metadataDirectory: directory, metadataBaseURL: metadataUrl, fetcher: HTTPFetcher())
    }
}
