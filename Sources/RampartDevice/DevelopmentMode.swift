import Foundation
import RampartCore
import RampartImage
import RampartPKI
import Synchronization
import X509

/// Development mode on the device: the `appDevelopment` capability its server signed for it, kept in
/// `D/capabilities/app-development.jws`, and the sideloading it allows.
///
/// The capability is checked every time it is used, not only when stored: it must be for this device and
/// signed by the CA that issued the device certificate the device holds. Leaving development mode removes
/// the capability and every sideloaded app, so that nothing TUF did not authorise stays behind.
public struct DevelopmentMode: Sendable {
    public let state: DeviceState

    public init(state: DeviceState) { self.state = state }

    /// Where the capability is kept.
    public var capabilityFile: URL { state.directory.appendingPathComponent("capabilities/app-development.jws") }

    /// The largest image package that may be sideloaded.
    public static let maximumPackageBytes = 64 * 1024 * 1024

    /// The stored capability, if it verifies now.
    public func capability() -> DevelopmentCapability? {
        guard let token = storedToken() else { return nil }
        return try? verify(token)
    }

    /// What `device sideload` and the local API show.
    public func status() -> DevelopmentStatus {
        guard let token = storedToken() else { return DevelopmentStatus(developmentMode: false) }
        do {
            let capability = try verify(token)
            return DevelopmentStatus(
                developmentMode: true, since: Date(timeIntervalSince1970: Double(capability.iat)), tenantId: capability.tenantId)
        } catch {
            return DevelopmentStatus(developmentMode: false, problem: (error as? RampartError)?.message ?? "\(error)")
        }
    }

    /// Stores a capability after verifying it. A capability with the same claims as the stored one (the
    /// server signs afresh for every update check) changes nothing but the file, if its signer changed.
    ///
    /// - Returns: Whether development mode is newly on.
    /// - Throws: ``RampartError`` `capabilityInvalid` when it does not verify for this device, or was issued
    ///   before development mode last ended here (a replay of an old one); nothing is stored.
    @discardableResult
    public func install(_ token: String) throws -> Bool {
        try Self.lock.withLock { _ in
            let text = token.trimmingCharacters(in: .whitespacesAndNewlines)
            let (claims, signer) = try verifyWithSigner(text)
            if let left = lastLeft(), claims.iat <= left {
                throw RampartError(
                    .capabilityInvalid,
                    "The development capability was issued before development mode last ended on this device, so it is an old one. Run 'rampart device enable-development' again.")
            }
            let stored = storedToken().flatMap { try? verifyWithSigner($0) }
            if let stored, stored.claims == claims, stored.signer == signer { return false }
            try FileManager.default.createDirectory(at: capabilityFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            try SecureFile.write(text + "\n", to: capabilityFile, mode: 0o644)
            return stored?.claims != claims
        }
    }

    /// Whether anything of development mode is on this device: a capability file, or a sideloaded app.
    public var hasTraces: Bool {
        FileManager.default.fileExists(atPath: capabilityFile.path) || AppStore(state: state).installed().contains(where: \.sideloaded)
    }

    /// Leaves development mode: removes every sideloaded app, then the capability, and remembers when the
    /// capability was issued so that it cannot be stored again. Apps go first: if a removal fails, the
    /// capability is still there and the next update check tries again.
    ///
    /// - Returns: The component IDs of the apps removed.
    @discardableResult
    public func leave() throws -> [String] {
        try Self.lock.withLock { _ in
            let store = AppStore(state: state)
            let sideloaded = store.installed().filter(\.sideloaded).map(\.componentID)
            for component in sideloaded { try store.remove(componentID: component) }
            if let token = storedToken() {
                if let issued = (try? verify(token))?.iat {
                    try SecureFile.write("\(max(issued, lastLeft() ?? issued))\n", to: leftFile, mode: 0o644)
                }
                try FileManager.default.removeItem(at: capabilityFile)
                SecureFile.synchronizeDirectory(of: capabilityFile)
            }
            return sideloaded
        }
    }

    /// Installs an app image package, as `device sideload deploy` does.
    ///
    /// In development mode the device checks the package's form, its payload against the manifest, and the
    /// app manifest, but not who signed it: that trust is what the capability grants. Attestation then
    /// accepts the app from this device only while the server has it in development mode.
    ///
    /// - Throws: ``RampartError`` `developmentModeRequired` without a valid capability; `packageMalformed` for
    ///   a package that is not a well-formed app package.
    public func sideload(_ bytes: [UInt8]) throws -> AppStore.InstalledApp {
        try Self.lock.withLock { _ in try sideloadLocked(bytes) }
    }

    private func sideloadLocked(_ bytes: [UInt8]) throws -> AppStore.InstalledApp {
        try requireCapability("sideload an app")
        guard bytes.count <= Self.maximumPackageBytes else {
            throw RampartError(.packageMalformed, "The package is larger than \(Self.maximumPackageBytes / 1024 / 1024) MiB.", status: 413)
        }
        let package = try ImagePackage(bytes: bytes)
        guard package.manifest.kind == .app, package.manifest.appManifest != nil else {
            throw RampartError(
                .packageMalformed, "Only app packages can be sideloaded; this one is a \(package.manifest.kind.rawValue) image.")
        }
        guard package.payload.starts(with: [0x00, 0x61, 0x73, 0x6d]) else {
            throw RampartError(.packageMalformed, "The app's payload is not a WebAssembly module (no \\0asm header).")
        }
        let store = AppStore(state: state)
        try store.install(package, imageID: nil)
        guard let installed = store.installed().first(where: { $0.componentID == package.manifest.componentID }) else {
            throw RampartError(.internalError, "The sideloaded app did not appear in \(store.directory.path).", status: 500)
        }
        return installed
    }

    /// Deletes an installed app, as `device sideload delete` does: one component, or every app when `nil`.
    ///
    /// - Returns: The component IDs deleted.
    /// - Throws: ``RampartError`` `developmentModeRequired` without a valid capability; `notFound` for a
    ///   component that is not installed.
    public func delete(componentID: String?) throws -> [String] {
        try Self.lock.withLock { _ in try deleteLocked(componentID: componentID) }
    }

    private func deleteLocked(componentID: String?) throws -> [String] {
        try requireCapability("delete apps")
        let store = AppStore(state: state)
        let installed = store.installed().map(\.componentID)
        let doomed: [String]
        if let componentID {
            let id = componentID.lowercased()
            guard installed.contains(id) else { throw RampartError.notFound("App \(componentID.prefix(64))") }
            doomed = [id]
        } else {
            doomed = installed
        }
        for component in doomed { try store.remove(componentID: component) }
        return doomed
    }

    private func requireCapability(_ what: String) throws {
        guard let token = storedToken() else {
            throw RampartError(
                .developmentModeRequired,
                "This device is not in development mode, so it cannot \(what). Run 'rampart device enable-development --device-id ID --state-dir DIR'.",
                status: 403)
        }
        do {
            _ = try verify(token)
        } catch let error as RampartError {
            throw RampartError(.developmentModeRequired, "Cannot \(what): \(error.message)", status: 403)
        }
    }

    private func storedToken() -> String? {
        (try? String(contentsOf: capabilityFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func verify(_ token: String) throws -> DevelopmentCapability {
        try verifyWithSigner(token).claims
    }

    private func verifyWithSigner(_ token: String) throws -> (claims: DevelopmentCapability, signer: Certificate.PublicKey) {
        let deviceID = try state.identity().deviceID
        let issuers = Array(state.storedCertificate()?.chain.dropFirst() ?? [])
        return try DevelopmentCapability.verifyWithSigner(token, deviceID: deviceID, trustedIssuers: issuers)
    }

    /// Where the issue time of the last capability left behind is kept.
    private var leftFile: URL { capabilityFile.deletingLastPathComponent().appendingPathComponent("app-development.left") }

    private func lastLeft() -> Int64? {
        (try? String(contentsOf: leftFile, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Serialises development-mode changes in this process (the local API and the update agent).
    private static let lock = Mutex(())
}
