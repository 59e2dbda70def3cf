import Crypto
import Foundation
import RampartCore
import RampartPKI
import RampartStore

/// The on-disk layout of a server's data directory, created by `rampart server init`.
///
/// ```
/// D/master.key            base64 master key (0600), unless RAMPART_MASTER_KEY is set
/// D/tls/server.pem        development TLS chain: server certificate, then its private CA
/// D/tls/server-key.pem    its key (0600)
/// D/rampart.sqlite        the embedded database (WAL)
/// ```
public struct DataDirectory: Sendable {
    /// The directory.
    public let url: URL

    /// Names a data directory.
    public init(path: String) { url = URL(fileURLWithPath: path, isDirectory: true) }

    public var masterKeyFile: URL { url.appendingPathComponent("master.key") }
    public var tlsCertificateFile: URL { url.appendingPathComponent("tls/server.pem") }
    public var tlsKeyFile: URL { url.appendingPathComponent("tls/server-key.pem") }
    public var sqliteFile: URL { url.appendingPathComponent("rampart.sqlite") }
    /// Every `.pem` here is a trusted manufacturer root.
    public var manufacturerRootsDirectory: URL { url.appendingPathComponent("manufacturer-roots") }

    /// The manufacturer roots configured in the data directory plus `extra` files, as PEM texts.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for a file that cannot be read.
    public func manufacturerRoots(extra: [String]) throws -> [String] {
        let fm = FileManager.default
        let listed = (try? fm.contentsOfDirectory(atPath: manufacturerRootsDirectory.path)) ?? []
        let files = listed.filter { $0.hasSuffix(".pem") }.sorted().map { manufacturerRootsDirectory.appendingPathComponent($0).path }
        return try (files + extra).map { path in
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8), pem.contains("BEGIN CERTIFICATE") else {
                throw RampartError(.configurationInvalid, "The manufacturer root \(path) is not a readable PEM certificate.")
            }
            return pem
        }
    }

    /// Whether `init` has run here.
    public var isInitialized: Bool { FileManager.default.fileExists(atPath: tlsCertificateFile.path) }

    /// Creates the directory, master key and development TLS certificate.
    ///
    /// - Parameters:
    ///   - hostnames: DNS names for the TLS certificate (localhost is always included).
    ///   - writeMasterKey: Whether to create `master.key` (false when the key comes from the environment).
    /// - Throws: ``RampartError`` `conflict` if the directory is already initialised, so nothing is overwritten.
    public func initialize(hostnames: [String], writeMasterKey: Bool, now: Date) throws {
        guard !isInitialized else {
            throw RampartError.conflict(
                .conflict, "\(url.path) is already initialised. Use it with 'server run', or choose another directory.")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: url.appendingPathComponent("tls"), withIntermediateDirectories: true)
        try? fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: url.path)
        if writeMasterKey && !fm.fileExists(atPath: masterKeyFile.path) {
            try SecureFile.write(KeySealer.generateMasterKey() + "\n", to: masterKeyFile)
        }
        let names = ["localhost"] + hostnames.filter { $0 != "localhost" && IPAddressText.isIPAddress($0) == false }
        let addresses = ["127.0.0.1", "::1"] + hostnames.filter { IPAddressText.isIPAddress($0) }
        // The development CA's key is discarded: it signs this one certificate and nothing else.
        let identity = try CertificateIssuer.makeDevelopmentServerIdentity(
            hostnames: names, ipAddresses: addresses, now: now, validity: 825 * 24 * 3600)
        try SecureFile.write(identity.key.pemRepresentation + "\n", to: tlsKeyFile)
        try SecureFile.write(try identity.server.pemString + identity.ca.pemString, to: tlsCertificateFile, mode: 0o644)
    }

    /// A configuration for a server on this directory's SQLite file, master key and development TLS identity;
    /// callers change what differs (port, store, manufacturer roots).
    public func serverConfiguration(environment: [String: String] = [:]) throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.store = .sqlite(path: sqliteFile.path)
        configuration.masterKey = try masterKey(file: nil, environment: environment)
        configuration.tlsCertificatePEM = try String(contentsOf: tlsCertificateFile, encoding: .utf8)
        configuration.tlsKeyPEM = try String(contentsOf: tlsKeyFile, encoding: .utf8)
        return configuration
    }

    /// Undoes ``initialize(hostnames:writeMasterKey:now:)`` after a later step of `server init` failed.
    public func removeInitialization(removeDirectory: Bool, masterKey: Bool) {
        let fm = FileManager.default
        if removeDirectory {
            try? fm.removeItem(at: url)
            return
        }
        try? fm.removeItem(at: url.appendingPathComponent("tls"))
        if masterKey { try? fm.removeItem(at: masterKeyFile) }
        for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: sqliteFile.path + suffix) }
    }

    /// Reads the master key from `RAMPART_MASTER_KEY`, a given file, or `master.key`, in that order.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when none is found.
    public func masterKey(file: String?, environment: [String: String]) throws -> String {
        if let value = environment["RAMPART_MASTER_KEY"], !value.isEmpty { return value }
        let path = file ?? masterKeyFile.path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RampartError(
                .configurationInvalid,
                "No master key: set RAMPART_MASTER_KEY, pass --master-key-file, or run 'rampart server init' to create \(path).")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
