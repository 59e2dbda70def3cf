import RampartCore

/// TUF failures are ``RampartError``s with these codes, so the CLI and the device report them like any other.
typealias TUFError = RampartError

extension RampartError.Code {
    /// Metadata is not valid JSON, or not the shape the specification requires.
    public static let metadataMalformed: Self = "metadataMalformed"
    /// Fewer valid signatures than the role's threshold.
    public static let thresholdNotMet: Self = "thresholdNotMet"
    /// A version went backwards, or does not match the version that vouches for it.
    public static let versionRollback: Self = "versionRollback"
    /// A version is not the one that another role or the sequence requires.
    public static let versionMismatch: Self = "versionMismatch"
    /// Metadata has expired: the repository may be frozen.
    public static let metadataExpired: Self = "metadataExpired"
    /// A file's length or hash differs from what signed metadata says.
    public static let lengthOrHashMismatch: Self = "lengthOrHashMismatch"
    /// A download exceeded the largest size allowed for it.
    public static let downloadTooLarge: Self = "downloadTooLarge"
    /// A download failed for a reason other than its content.
    public static let downloadFailed: Self = "downloadFailed"
    /// The snapshot leaves out, or goes back on, metadata that an earlier snapshot listed.
    public static let snapshotInconsistent: Self = "snapshotInconsistent"
    /// The requested target is not in any trusted targets metadata.
    public static let targetNotFound: Self = "targetNotFound"
    /// A local TUF directory is missing, unreadable or untrusted.
    public static let trustedMetadataMissing: Self = "trustedMetadataMissing"
}

extension RampartError {
    static func malformed(_ message: String) -> Self { .init(.metadataMalformed, message) }
}
