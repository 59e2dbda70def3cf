import Crypto
import Foundation
import Synchronization
import RampartCore
import RampartImage

/// Installed apps, in `D/apps/<componentId>/`: `app.wasm` (the payload), `image.json` (the package
/// manifest) and `app_manifest.json`.
///
/// An app is installed into a staging directory, fsynced, then swapped in with renames; a crash at any
/// point leaves either the old app or the new one, never half of either. ``recover()`` finishes or undoes
/// an interrupted swap at start.
public struct AppStore: Sendable {
    public let directory: URL
    /// Serialises installs and removals in this process: the update agent and the local API (sideloading)
    /// both change apps, and two installs of one component would share its staging directory.
    private static let changes = Mutex(())

    public init(state: DeviceState) {
        directory = state.directory.appendingPathComponent("apps")
    }

    /// One installed app.
    public struct InstalledApp: Sendable, Equatable {
        public var componentID: String
        public var name: String
        public var version: String
        public var payloadSHA256: String
        /// The deployment image it came from; `nil` for a sideloaded app.
        public var imageID: String?
        /// Installed by `device sideload deploy` in development mode, not from a deployment.
        public var sideloaded: Bool
        /// The module the runtime runs and measures.
        public var payloadFile: URL
    }

    /// The installed apps, by component ID.
    public func installed() -> [InstalledApp] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().compactMap { name in
            let folder = directory.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: folder.appendingPathComponent("image.json")),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let version = object["version"] as? String, let digest = object["payloadSha256"] as? String,
                FileManager.default.fileExists(atPath: folder.appendingPathComponent("app.wasm").path)
            else { return nil }
            return InstalledApp(
                componentID: name, name: object["name"] as? String ?? name, version: version, payloadSHA256: digest,
                imageID: object["imageId"] as? String, sideloaded: object["sideloaded"] as? Bool ?? false,
                payloadFile: folder.appendingPathComponent("app.wasm"))
        }
    }

    /// Installs a verified app package, replacing any installed version of the component.
    ///
    /// - Parameter imageID: The deployment image it comes from; `nil` for a sideloaded app.
    public func install(_ package: ImagePackage, imageID: String?) throws {
        try Self.changes.withLock { _ in try installLocked(package, imageID: imageID) }
    }

    private func installLocked(_ package: ImagePackage, imageID: String?) throws {
        let manifest = package.manifest
        guard manifest.kind == .app, let app = manifest.appManifest else {
            throw RampartError(.packageMalformed, "Not an app package.")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let staging = directory.appendingPathComponent(".staging-\(manifest.componentID)")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        try SecureFile.write(Data(package.payload), to: staging.appendingPathComponent("app.wasm"), mode: 0o644)
        var record = try JSONSerialization.jsonObject(with: Data(manifest.jsonText.utf8)) as? [String: Any] ?? [:]
        if let imageID { record["imageId"] = imageID } else { record["sideloaded"] = true }
        try SecureFile.write(
            try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .prettyPrinted]),
            to: staging.appendingPathComponent("image.json"), mode: 0o644)
        try SecureFile.write(
            try JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: Data(app.jsonText.utf8)), options: [.sortedKeys, .prettyPrinted]),
            to: staging.appendingPathComponent("app_manifest.json"), mode: 0o644)
        CrashPoint.reach("app-staged")
        try swapIn(staging, as: manifest.componentID)
    }

    /// Removes an installed app.
    public func remove(componentID: String) throws {
        try Self.changes.withLock { _ in try removeLocked(componentID: componentID) }
    }

    private func removeLocked(componentID: String) throws {
        let target = directory.appendingPathComponent(componentID)
        let retired = directory.appendingPathComponent(".removed-\(componentID)")
        guard FileManager.default.fileExists(atPath: target.path) else { return }
        try? FileManager.default.removeItem(at: retired)
        try rename(target, retired)
        try FileManager.default.removeItem(at: retired)
    }

    /// Finishes or undoes a swap a crash interrupted, and drops staging leftovers.
    public func recover() {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] {
            let path = directory.appendingPathComponent(name)
            if name.hasPrefix(".staging-") || name.hasPrefix(".removed-") {
                try? fm.removeItem(at: path)
            } else if name.hasPrefix(".old-") {
                let component = String(name.dropFirst(5))
                let live = directory.appendingPathComponent(component)
                if fm.fileExists(atPath: live.path) {
                    try? fm.removeItem(at: path)  // the new version made it in
                } else {
                    try? rename(path, live)  // the swap stopped half-way: keep the old version
                }
            }
        }
    }

    private func swapIn(_ staging: URL, as component: String) throws {
        let live = directory.appendingPathComponent(component)
        let retired = directory.appendingPathComponent(".old-\(component)")
        let fm = FileManager.default
        try? fm.removeItem(at: retired)
        if fm.fileExists(atPath: live.path) { try rename(live, retired) }
        CrashPoint.reach("app-retired")
        try rename(staging, live)
        try? fm.removeItem(at: retired)
    }

    private func rename(_ from: URL, _ to: URL) throws {
        guard Foundation.rename(from.path, to.path) == 0 else {
            throw RampartError(.configurationInvalid, "Cannot move \(from.path) to \(to.path): errno \(errno).")
        }
        SecureFile.synchronizeDirectory(of: to)
    }
}
