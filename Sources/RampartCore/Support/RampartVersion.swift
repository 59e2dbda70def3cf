/// The version of this build of Rampart, reported in attestation as `swversion`.
public enum RampartVersion {
    public static let current = "0.1.0"
}
