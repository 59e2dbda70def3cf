import Foundation
import RampartCore

/// An exclusive lock on a device state directory, held for as long as a runtime uses it: two runtimes on
/// one directory would race on its certificates and on the local API's socket.
public final class StateDirectoryLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock, without waiting.
    ///
    /// - Throws: ``RampartError`` `conflict` when another runtime holds it.
    public init(state: DeviceState) throws {
        try FileManager.default.createDirectory(at: state.directory, withIntermediateDirectories: true)
        let path = state.directory.appendingPathComponent(".lock").path
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw RampartError(.configurationInvalid, "Cannot open \(path): errno \(errno).")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw RampartError.conflict(
                .conflict, "Another device runtime is using \(state.directory.path). Stop it first, or use another --state-dir.")
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
