import ArgumentParser
import Foundation
import RampartCore

/// Options every client command takes (DESIGN §8).
struct GlobalOptions: ParsableArguments {
    @Option(help: "The server URL, e.g. https://127.0.0.1:8443 (default: the one you registered with).")
    var server: String?

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    @Flag(help: "Print each request and its status on standard error.")
    var verbose = false

    @Option(help: "The tenant id to act on (default: the selected tenant).")
    var tenant: String?

    func profile() throws -> ClientProfile { try ClientProfile.load() }

    /// Runs `body` with a client for the chosen server.
    func withClient<T>(_ body: (APIClient, ClientProfile) async throws -> T) async throws -> T {
        let profile = try profile()
        return try await body(try APIClient(profile: profile, server: server, verbose: verbose), profile)
    }

    /// The tenant to act on.
    func tenantID(_ profile: ClientProfile) throws -> RampartID {
        if let tenant { return try RampartID(parsing: tenant, field: "--tenant") }
        guard let selected = profile.tenant else {
            throw RampartError(
                .invalidRequest, "No tenant is selected. Run 'rampart tenant select --tenant ID' or pass --tenant.")
        }
        return selected
    }
}

/// Writes a downloaded file where the user asked, atomically.
enum Download {
    static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try SecureFile.write(Data(bytes), to: url, mode: 0o644)
        print("Wrote \(bytes.count) bytes to \(url.path)")
    }
}
