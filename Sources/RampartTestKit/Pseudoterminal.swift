#if canImport(Glibc)
import Glibc
#endif

// Glibc's module leaves out the X/Open pseudoterminal calls.
@_silgen_name("posix_openpt") private func posixOpenpt(_ flags: CInt) -> CInt
@_silgen_name("grantpt") private func grantPseudoterminal(_ fd: CInt) -> CInt
@_silgen_name("unlockpt") private func unlockPseudoterminal(_ fd: CInt) -> CInt
@_silgen_name("ptsname") private func pseudoterminalName(_ fd: CInt) -> UnsafeMutablePointer<CChar>?

/// A pseudoterminal for tests of serial devices: the code under test opens `path` as its tty, and the test
/// reads and writes the other end through `master`.
public final class Pseudoterminal {
    /// The test's end.
    public let master: Int32
    /// The device's end, e.g. `/dev/pts/3`.
    public let path: String

    public struct Unavailable: Error {}

    public init() throws {
        let master = posixOpenpt(O_RDWR | O_NOCTTY)
        guard master >= 0 else { throw Unavailable() }
        guard grantPseudoterminal(master) == 0, unlockPseudoterminal(master) == 0, let name = pseudoterminalName(master) else {
            close(master)
            throw Unavailable()
        }
        self.master = master
        path = String(cString: name)
    }

    deinit { close(master) }
}
