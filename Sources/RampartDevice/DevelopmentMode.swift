import Foundation
import RampartCore
import RampartImage
import RampartPKI

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

    /// Stores a capability after verifying it.
    ///
    /// - Returns: Whether the stored capability changed.
    /// - Throws: ``RampartError`` `capabilityInvalid` when it does not verify for this device; nothing is stored.
    @discardableResult
    public func install(_ token: String) throws -> Bool {
        let text = token.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try verify(text)
        guard storedToken() != text else { return false }
        try FileManager.default.createDirectory(at: capabilityFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try SecureFile.write(text + "\n", to: capabilityFile, mode: 0o644)
        return true
    }

    /// Leaves development mode: removes the capability, then every sideloaded app.
    ///
    /// - Returns: The component IDs of the apps removed.
    @discardableResult
    public func leave() throws -> [String] {
        if FileManager.default.fileExists(atPath: capabilityFile.path) {
            try FileManager.default.removeItem(at: capabilityFile)
            SecureFile.synchronizeDirectory(of: capabilityFile)
        }
        let store = AppStore(state: state)
        let sideloaded = store.installed().filter(\.sideloaded).map(\.componentID)
        for component in sideloaded { try store.remove(componentID: component) }
        return sideloaded
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
        let deviceID = try state.identity().deviceID
        let issuers = Array(state.storedCertificate()?.chain.dropFirst() ?? [])
        return try DevelopmentCapability.verify(token, deviceID: deviceID, trustedIssuers: issuers)
    }
}
