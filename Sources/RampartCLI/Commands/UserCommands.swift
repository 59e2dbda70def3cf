import ArgumentParser
import Crypto
import Foundation
import RampartCore
import RampartPKI
import RampartServer

/// `rampart register-user`.
struct RegisterUserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register-user",
        abstract: "Create your user key and register it with an invitation. No password is ever used.")

    @Option(help: "The server URL, e.g. https://127.0.0.1:8443.") var server: String
    @Option(help: "The invitation text (rpi1.…) from 'server init' or 'role add'.") var invitation: String
    @Option(help: "Output format: table or json.") var output: OutputFormat = .table

    func run() async throws {
        let user = try await Registration.register(
            server: server, invitation: invitation, directory: ClientProfile.defaultDirectory())
        try Printer.output(user, as: output, headers: ["User ID", "Email", "Server administrator"]) {
            [[user.id.description, user.email, user.serverAdministrator ? "yes" : "no"]]
        }
    }
}

/// The steps of registration, shared by `register-user` and `demo`.
package enum Registration {
    /// Pins the server certificate, creates the user key and registers it; shared by `register-user` and `demo`.
    package static func register(server: String, invitation text: String, directory: URL) async throws -> UserInfo {
        let invitation = try InvitationToken(parsing: text)
        guard let url = URL(string: server), url.scheme == "https" else {
            throw RampartError.invalidRequest("The server URL must start with https://.")
        }
        var profile = ClientProfile(directory: directory)
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try? fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        // Everything is staged in a scratch profile and moved into place only once the server accepted it,
        // so a failed registration leaves the existing profile as it was.
        let staging = ClientProfile(directory: directory.appendingPathComponent(".registering-\(RampartID())"))
        try fm.createDirectory(at: staging.directory, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging.directory) }
        if let pin = invitation.tlsPin {
            let chain = try await ServerCertificateFetcher.fetchChain(url: url)
            guard let der = chain.first(where: { Hex.encode(SHA256.hash(data: $0)) == pin }) else {
                throw RampartError(
                    .certificateInvalid,
                    "The server at \(server) presents a certificate that does not match the invitation. Check the URL: you may be talking to another server.")
            }
            let pem = PEMBlock.encode(der, label: "CERTIFICATE")
            try SecureFile.write(pem, to: staging.pinnedCertificateFile, mode: 0o644)
        }
        // The key is on disk before it is registered, so a crash cannot leave a registered key that is lost.
        let key = P256.Signing.PrivateKey()
        try SecureFile.write(key.pemRepresentation + "\n", to: staging.keyFile)
        let user = try await APIClient(profile: staging, server: server).json(
            UserInfo.self, .POST, "/v1/users/register",
            body: RegisterUserRequest(invitation: text, publicKey: key.publicKey.pemRepresentation),
            authenticated: false)
        if fm.fileExists(atPath: profile.keyFile.path) {
            let backup = profile.keyFile.appendingPathExtension("\(Int(Date().timeIntervalSince1970)).bak")
            try fm.moveItem(at: profile.keyFile, to: backup)
        }
        try fm.moveItem(at: staging.keyFile, to: profile.keyFile)
        try? fm.removeItem(at: profile.pinnedCertificateFile)
        if fm.fileExists(atPath: staging.pinnedCertificateFile.path) {
            try fm.moveItem(at: staging.pinnedCertificateFile, to: profile.pinnedCertificateFile)
        }
        try? fm.removeItem(at: profile.tokenFile)
        profile.server = server
        profile.userID = user.id
        profile.email = user.email
        profile.tenant = nil
        try profile.save()
        return user
    }
}

/// PEM armour for DER bytes.
enum PEMBlock {
    static func encode(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
    }
}

/// `rampart login`.
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign a server challenge with your key and cache a session token (valid at most 1 h).")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the bearer token to standard output, for curl and scripts.") var printToken = false

    func run() async throws {
        try await global.withClient { client, profile in
            let token = try await client.login()
            if printToken {
                print(token.token)
            } else {
                print("Signed in as \(profile.email ?? "?"); token valid until \(Timestamp.format(token.expiresAt)).")
            }
        }
    }
}
