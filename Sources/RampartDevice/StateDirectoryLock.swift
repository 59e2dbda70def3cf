import Foundation
import RampartCore

/// An exclusive lock on a device state directory, held for as long as a runtime uses it: two runtimes on
/// one directory would race on its certificates and on the local API's socket.
public final class StateDirectoryLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock, without waiting.
    ///
    /// - Throws: ``RampartError`` `conflict` when another runtime holds it.
    public convenience init(state: DeviceState) throws {
        try self.init(directory: state.directory, user: "device runtime", advice: "or use another --state-dir")
    }

    /// Takes the lock on any directory one process must own (a gateway's store, too), without waiting.
    ///
    /// - Throws: ``RampartError`` `conflict` naming `user` when another process holds it.
    public init(directory: URL, user: String, advice: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(".lock").path
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw RampartError(.configurationInvalid, "Cannot open \(path): errno \(errno).")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw RampartError.conflict(
                .conflict, "Another \(user) is using \(directory.path). Stop it first, \(advice).")
        }
        self.descriptor = descriptor
    }

    /// Lets go of the lock now, without waiting for the last reference to go (a store closed and reopened
    /// in one process).
    public func release() { flock(descriptor, LOCK_UN) }

    deinit { close(descriptor) }
}
