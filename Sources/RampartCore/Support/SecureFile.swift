import Foundation

/// Writes files that hold secrets: created with the final mode, then renamed into place, so a crash never
/// leaves a half-written or world-readable key.
public enum SecureFile {
    /// Writes `text` atomically with `mode`.
    public static func write(_ text: String, to url: URL, mode: Int = 0o600) throws {
        try write(Data(text.utf8), to: url, mode: mode)
    }

    /// Writes `data` atomically with `mode`.
    public static func write(_ data: Data, to url: URL, mode: Int = 0o600) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        let fm = FileManager.default
        try? fm.removeItem(at: temporary)
        guard fm.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: mode]) else {
            throw RampartError(.configurationInvalid, "Cannot write \(url.path). Is the disk full or read-only?")
        }
        let handle = try FileHandle(forUpdating: temporary)
        try handle.synchronize()
        try handle.close()
        if rename(temporary.path, url.path) != 0 {
            throw RampartError(.configurationInvalid, "Cannot move \(temporary.path) into place: errno \(errno).")
        }
        synchronizeDirectory(of: url)
    }

    /// Moves an unreadable state file aside as `NAME.corrupt` (replacing an older one), so that what it held
    /// is kept for inspection instead of being overwritten by the next save.
    ///
    /// - Returns: A sentence for the log: what was kept where, and `consequence`.
    public static func setAside(_ url: URL, consequence: String) -> String {
        let aside = url.appendingPathExtension("corrupt")
        try? FileManager.default.removeItem(at: aside)
        do {
            try FileManager.default.moveItem(at: url, to: aside)
        } catch {
            return "\(url.path) could not be read, nor kept aside (\(error.localizedDescription)); \(consequence)"
        }
        synchronizeDirectory(of: url)
        return "\(url.path) could not be read; it was kept as \(aside.lastPathComponent) and \(consequence)"
    }

    /// Flushes a directory entry change (a rename) to disk, so that renames in different directories
    /// reach the disk in the order they were made.
    public static func synchronizeDirectory(of url: URL) {
        let descriptor = open(url.deletingLastPathComponent().path, O_RDONLY)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}

/// Tells IP address literals from host names.
public enum IPAddressText {
    /// Whether `text` is an IPv4 or IPv6 literal.
    public static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
