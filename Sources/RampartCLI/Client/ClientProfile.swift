import Foundation
import RampartCore
import RampartPKI
import RampartServer

/// What the CLI remembers between runs, under `$RAMPART_HOME` (default `~/.rampart`):
///
/// ```
/// config.toml       server URL, user id and email, selected tenant
/// user-key.pem      the user's P-256 private key (0600); it never leaves this machine
/// server-cert.pem   the server certificate pinned at registration
/// token             the cached session token (0600)
/// ```
public struct ClientProfile: Sendable {
    public var directory: URL
    public var server: String?
    public var userID: RampartID?
    public var email: String?
    public var tenant: RampartID?

    /// The profile directory: `$RAMPART_HOME`, or `~/.rampart`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let home = environment["RAMPART_HOME"], !home.isEmpty { return URL(fileURLWithPath: home, isDirectory: true) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".rampart", isDirectory: true)
    }

    var configFile: URL { directory.appendingPathComponent("config.toml") }
    var keyFile: URL { directory.appendingPathComponent("user-key.pem") }
    var pinnedCertificateFile: URL { directory.appendingPathComponent("server-cert.pem") }
    var tokenFile: URL { directory.appendingPathComponent("token") }

    /// Loads the profile, or an empty one if none exists yet.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when config.toml cannot be read.
    public static func load(from directory: URL = defaultDirectory()) throws -> ClientProfile {
        var profile = ClientProfile(directory: directory)
        guard let text = try? String(contentsOf: profile.configFile, encoding: .utf8) else { return profile }
        let values = try FlatTOML.parse(text, file: profile.configFile.path)
        profile.server = values["server"]
        profile.userID = values["user_id"].flatMap(RampartID.init)
        profile.email = values["email"]
        profile.tenant = values["tenant"].flatMap(RampartID.init)
        return profile
    }

    /// Writes config.toml.
    public func save() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        var lines = ["# Rampart CLI configuration, written by rampart. Safe to edit."]
        if let server { lines.append("server = \(FlatTOML.quote(server))") }
        if let userID { lines.append("user_id = \(FlatTOML.quote(userID.description))") }
        if let email { lines.append("email = \(FlatTOML.quote(email))") }
        if let tenant { lines.append("tenant = \(FlatTOML.quote(tenant.description))") }
        try SecureFile.write(lines.joined(separator: "\n") + "\n", to: configFile)
    }
}

/// The flat `key = "value"` subset of TOML that config.toml uses.
enum FlatTOML {
    static func parse(_ text: String, file: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw RampartError(.configurationInvalid, "\(file):\(number + 1): expected key = \"value\".")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") else {
                throw RampartError(.configurationInvalid, "\(file):\(number + 1): the value of \(key) must be a quoted string.")
            }
            values[key] = String(value.dropFirst().dropLast())
                .replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
        }
        return values
    }

    static func quote(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
