import Crypto
import Foundation
import RampartAttestation
import RampartCore
import RampartDevice
import RampartPKI
import X509

/// A manufacturer CA and devices it endorses, made in code for a test.
public struct TestFleet: Sendable {
    public let directory: TemporaryDirectory
    public let manufacturer: ManufacturerCA

    /// Creates a manufacturer CA in a temporary directory.
    public init(name: String = "Test Factory") throws {
        directory = try TemporaryDirectory(prefix: "rampart-fleet")
        manufacturer = try ManufacturerCA.create(in: directory.file("manufacturer"), name: name)
    }

    /// The manufacturer root as PEM, for `ServerConfiguration.manufacturerRoots`.
    public var rootPEM: String { get throws { try manufacturer.certificate.pemString } }

    /// Manufactures a device into a fresh state directory.
    public func device(model: String = "test-board") throws -> TestDevice {
        // Short names: the local API's Unix socket path must stay under 108 bytes.
        let state = DeviceState(directory: directory.file("d-\(RampartID().description.prefix(8))"))
        _ = try DeviceState.manufacture(at: state.directory, manufacturer: manufacturer, model: model)
        return TestDevice(state: state, identity: try state.identity())
    }

    public func remove() { directory.remove() }
}

/// A manufactured device and the evidence it can produce.
public struct TestDevice: Sendable {
    public let state: DeviceState
    public let identity: DeviceState.Identity
    public var id: String { identity.deviceID }

    /// A measurement of the runtime with a fixed, known digest.
    public static func runtime(_ digest: String = String(repeating: "ab", count: 32), version: String = "1.0.0")
        -> SoftwareMeasurement
    {
        SoftwareMeasurement(component: "rampart-runtime", kind: .runtime, version: version, sha256: digest)
    }

    /// Signed evidence answering `nonce`.
    public func evidence(
        nonce: String, measurements: [SoftwareMeasurement] = [TestDevice.runtime()],
        freshKey: P256.Signing.PublicKey = P256.Signing.PrivateKey().publicKey, signer: (any KeyStore)? = nil,
        endorsement: [Certificate]? = nil, deviceID: String? = nil
    ) throws -> String {
        let claims = EvidenceClaims(
            nonce: nonce, deviceID: deviceID ?? id, issuedAt: Date(), hardwareModel: identity.model,
            softwareName: "rampart", softwareVersion: "1.0.0", debugStatus: 3, measurements: measurements,
            freshKey: freshKey)
        return try EvidenceToken.sign(
            claims, identity: signer ?? identity.keyStore, endorsement: endorsement ?? identity.endorsement)
    }
}
