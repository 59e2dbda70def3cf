import Crypto
import Foundation
import RampartAttestation
import RampartCore
import RampartPKI
import SwiftASN1
import X509

/// A device's state directory, created by `rampart manufacture device`:
///
/// ```
/// D/identity/identity-key.pem   the identity key (file KeyStore, 0600)
/// D/identity/endorsement.pem    the manufacturer's endorsement (CN = device ID)
/// D/identity/model              the hardware model
/// D/server-ca.pem               the CA that signs the server's TLS certificate (optional)
/// D/certs/device.pem            the current 24 h device certificate, then the tenant CA
/// D/certs/device-key.pem        its key (0600)
/// D/status.json                 the last attestation result
/// D/device.sock                 the local management API
/// ```
public struct DeviceState: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public var identityKeyFile: URL { directory.appendingPathComponent("identity/identity-key.pem") }
    public var endorsementFile: URL { directory.appendingPathComponent("identity/endorsement.pem") }
    public var modelFile: URL { directory.appendingPathComponent("identity/model") }
    public var serverCAFile: URL { directory.appendingPathComponent("server-ca.pem") }
    public var certificateFile: URL { directory.appendingPathComponent("certs/device.pem") }
    public var certificateKeyFile: URL { directory.appendingPathComponent("certs/device-key.pem") }
    public var statusFile: URL { directory.appendingPathComponent("status.json") }
    public var configFile: URL { directory.appendingPathComponent("device.toml") }
    public var socketFile: URL { directory.appendingPathComponent("device.sock") }

    /// Manufactures a device: a new identity key and its endorsement by `manufacturer`.
    ///
    /// - Returns: The device ID.
    /// - Throws: ``RampartError`` `conflict` if the directory already holds an identity.
    public static func manufacture(at directory: URL, manufacturer: ManufacturerCA, model: String) throws -> String {
        let state = DeviceState(directory: directory)
        let key = try FileKeyStore.create(at: state.identityKeyFile)
        let endorsement = try manufacturer.endorse(key.publicKey, model: model)
        try SecureFile.write(try endorsement.pemString, to: state.endorsementFile, mode: 0o644)
        try SecureFile.write(model + "\n", to: state.modelFile, mode: 0o644)
        return DeviceID.of(key.publicKey)
    }

    /// A device identity: its key store and the manufacturer's endorsement.
    public struct Identity: Sendable {
        public let keyStore: any KeyStore
        public let endorsement: [Certificate]
        public let deviceID: String
        public let model: String

        /// An identity from its parts.
        public init(keyStore: any KeyStore, endorsement: [Certificate], model: String) {
            self.keyStore = keyStore
            self.endorsement = endorsement
            self.deviceID = DeviceID.of(keyStore.publicKey)
            self.model = model
        }
    }

    /// Loads the identity.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when the directory holds no manufactured device.
    public func identity() throws -> Identity {
        let keyStore = try FileKeyStore.load(from: identityKeyFile)
        guard let pem = try? String(contentsOf: endorsementFile, encoding: .utf8),
            let endorsement = try? Certificate.parseBundle(pem: pem), !endorsement.isEmpty
        else {
            throw RampartError(
                .configurationInvalid, "\(endorsementFile.path) is missing. Is \(directory.path) a manufactured device?")
        }
        let model = (try? String(contentsOf: modelFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return Identity(keyStore: keyStore, endorsement: endorsement, model: model?.isEmpty == false ? model! : "generic")
    }

    /// The stored device certificate chain and key, if any (expired or not).
    public func storedCertificate() -> (chain: [Certificate], key: P256.Signing.PrivateKey)? {
        guard let pem = try? String(contentsOf: certificateFile, encoding: .utf8),
            let chain = try? Certificate.parseBundle(pem: pem), !chain.isEmpty,
            let keyPEM = try? String(contentsOf: certificateKeyFile, encoding: .utf8),
            let key = try? P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        else { return nil }
        return (chain, key)
    }

    /// Stores a new certificate chain and its key. The key goes first, so a crash never leaves a certificate
    /// without its key.
    public func store(chain: [String], key: P256.Signing.PrivateKey) throws {
        try FileManager.default.createDirectory(
            at: certificateFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        let staged = certificateKeyFile.appendingPathExtension("new")
        try SecureFile.write(key.pemRepresentation + "\n", to: staged)
        try SecureFile.write(chain.joined(), to: certificateFile.appendingPathExtension("new"), mode: 0o644)
        for (from, to) in [(staged, certificateKeyFile), (certificateFile.appendingPathExtension("new"), certificateFile)] {
            if rename(from.path, to.path) != 0 {
                throw RampartError(.configurationInvalid, "Cannot move \(from.path) into place: errno \(errno).")
            }
        }
    }
}

/// Measured boot, in software: hashes of what the runtime runs, reported in attestation.
public enum Measurer {
    /// The component name of the runtime itself.
    public static let runtimeComponent = "rampart-runtime"

    /// SHA-256 of a file, streamed.
    public static func sha256(of file: URL) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: file) else {
            throw RampartError(.configurationInvalid, "Cannot read \(file.path) to measure it.")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return Hex.encode(hasher.finalize())
    }

    /// The running executable.
    public static var runningExecutable: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }

    /// What this device runs: the runtime binary (with the version of the package it came from, when it
    /// runs from a slot), its configuration, and every installed app image.
    public static func measure(state: DeviceState, executable: URL = runningExecutable) throws -> [SoftwareMeasurement] {
        let slots = SlotStore(state: state)
        var version = RampartVersion.current
        if let active = slots.active, executable.resolvingSymlinksInPath() == slots.executable(active).resolvingSymlinksInPath(),
            let packaged = slots.activeVersion
        {
            version = packaged
        }
        var measurements = [
            SoftwareMeasurement(component: runtimeComponent, kind: .runtime, version: version, sha256: try sha256(of: executable))
        ]
        for app in AppStore(state: state).installed() {
            measurements.append(
                SoftwareMeasurement(component: app.componentID, kind: .app, version: app.version, sha256: try sha256(of: app.payloadFile)))
        }
        let config = (try? Data(contentsOf: state.configFile)) ?? Data()
        measurements.append(
            SoftwareMeasurement(component: "device-config", kind: .config, version: "1", sha256: Hex.encode(SHA256.hash(data: config))))
        return measurements
    }
}
