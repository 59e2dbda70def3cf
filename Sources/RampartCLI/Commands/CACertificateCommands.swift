import ArgumentParser
import Foundation
import RampartCore

/// `rampart ca-certificate …`.
struct CACertificateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca-certificate", abstract: "List, download and revoke the tenant's CA certificates.",
        subcommands: [List.self, Download.self, DownloadChain.self, DownloadProof.self, Bundle.self, Revoke.self])

    /// Checks a thumbprint before it goes into a URL path.
    static func thumbprint(_ text: String) throws -> String {
        let lowered = text.lowercased()
        guard lowered == "active" || (lowered.count == 64 && lowered.allSatisfy(\.isHexDigit)) else {
            throw RampartError.invalidRequest("A thumbprint is 64 hex characters (see 'ca-certificate list'), or 'active'.")
        }
        return lowered
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant CAs with status and validity.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(
                    CACertificateList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/ca-certificates")
                try Printer.output(list, as: global.output, headers: ["Thumbprint (SHA-256)", "Status", "Not before", "Not after"]) {
                    list.certificates.map {
                        [$0.thumbprint, $0.status.rawValue, Timestamp.format($0.notBefore), Timestamp.format($0.notAfter)]
                    }
                }
            }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a CA certificate (default: the Active one).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Where to write it.") var destination: String
        @Option(help: "pem or der.") var format: String = "pem"
        @Option(help: "The CA's SHA-256 thumbprint (default: active).", transform: CACertificateCommand.thumbprint)
        var thumbprint: String = "active"

        func run() async throws {
            let format = try CertificateFormat(parsing: format)
            try await global.withClient { client, profile in
                let raw = try await client.send(
                    .GET, "/v1/tenants/\(try global.tenantID(profile))/ca-certificates/\(thumbprint)?format=\(format.rawValue)")
                try RampartCLI.Download.write(raw.body, to: destination)
            }
        }
    }

    struct DownloadChain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "download-chain", abstract: "Download the CA chain as PKCS#7 (.p7b, certificates only).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Where to write it, e.g. chain.p7b.") var destination: String
        @Option(help: "The CA's SHA-256 thumbprint (default: active).", transform: CACertificateCommand.thumbprint)
        var thumbprint: String = "active"

        func run() async throws {
            try await global.withClient { client, profile in
                let raw = try await client.send(
                    .GET, "/v1/tenants/\(try global.tenantID(profile))/ca-certificates/\(thumbprint)/chain")
                try RampartCLI.Download.write(raw.body, to: destination)
            }
        }
    }

    struct DownloadProof: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "download-proof",
            abstract: "Download a proof-of-possession certificate (CN = verification code) for DPS or IoT Hub.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The verification code the relying party gave you.") var verificationCode: String
        @Option(help: "Where to write it.") var destination: String
        @Option(help: "pem or der.") var format: String = "pem"
        @Option(help: "The CA's SHA-256 thumbprint (default: active).", transform: CACertificateCommand.thumbprint)
        var thumbprint: String = "active"

        func run() async throws {
            let format = try CertificateFormat(parsing: format)
            try await global.withClient { client, profile in
                let raw = try await client.send(
                    .POST, "/v1/tenants/\(try global.tenantID(profile))/ca-certificates/\(thumbprint)/proof",
                    body: ProofRequest(verificationCode: verificationCode, format: format))
                try RampartCLI.Download.write(raw.body, to: destination)
            }
        }
    }

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print or save every CA that is not revoked, as PEM, for relying parties.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Where to write it (default: standard output).") var destination: String?

        func run() async throws {
            try await global.withClient { client, profile in
                let raw = try await client.send(.GET, "/v1/tenants/\(try global.tenantID(profile))/ca-bundle")
                if let destination {
                    try RampartCLI.Download.write(raw.body, to: destination)
                } else {
                    print(String(decoding: raw.body, as: UTF8.self), terminator: "")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a CA (Administrator). Revoking the Active CA activates a new one at once.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The CA's SHA-256 thumbprint.", transform: CACertificateCommand.thumbprint) var thumbprint: String

        func run() async throws {
            try await global.withClient { client, profile in
                let info = try await client.json(
                    CACertificateInfo.self, .POST,
                    "/v1/tenants/\(try global.tenantID(profile))/ca-certificates/\(thumbprint)/revoke")
                try Printer.output(info, as: global.output, headers: ["Thumbprint", "Status"]) {
                    [[info.thumbprint, info.status.rawValue]]
                }
            }
        }
    }
}
