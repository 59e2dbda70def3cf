#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RampartCore

extension RampartError.Code {
    /// The store and forward queue is at its configured maximum size.
    public static let storeFull: Self = "storeFull"
    /// Writing to the store and forward queue failed (a full disk, an I/O error).
    public static let storeWriteFailed: Self = "storeWriteFailed"
}

/// The errors of the store and forward queue.
enum StoreError {
    static func io(_ what: String, errno code: Int32) -> RampartError {
        let reason = String(cString: strerror(code))
        let advice = code == ENOSPC ? " The disk is full: free space or lower [store] max_bytes." : ""
        return RampartError(.storeWriteFailed, "Cannot \(what): \(reason).\(advice)", status: 507)
    }

    static func full(maximumBytes: Int) -> RampartError {
        RampartError(
            .storeFull,
            "The store and forward queue holds its maximum of \(maximumBytes) bytes; the message was refused, not "
                + "dropped. It drains when the upstream is reachable again; raise [store] max_bytes to hold more.",
            status: 507)
    }
}
