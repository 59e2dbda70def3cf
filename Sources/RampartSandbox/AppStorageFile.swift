#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RampartCore
import Synchronization

/// The storage writes of every app in this process, by storage file, metered in 4 KiB pages against an
/// hourly budget that refills continuously. Kept here rather than in the app's instance, so that an app
/// cannot reset its count by crashing and being restarted.
final class StorageWriteMeter: Sendable {
    static let shared = StorageWriteMeter()
    static let page = 4096
    private let buckets = Mutex<[String: TokenBucket]>([:])

    /// Takes the pages a write of `count` bytes at `offset` touches from `file`'s budget of `perHour`
    /// bytes, if there is enough; `false` (nothing taken) if not. `perHour` 0 means no budget.
    func take(file: String, offset: Int, count: Int, perHour: Int, now: UInt64 = Monotonic.milliseconds) -> Bool {
        guard perHour > 0 else { return true }
        let firstPage = offset / Self.page
        let lastPage = (offset + max(count, 1) - 1) / Self.page
        let cost = Double((lastPage - firstPage + 1) * Self.page)
        return buckets.withLock { buckets in
            var bucket = buckets[file] ?? TokenBucket(capacity: Double(perHour), perSecond: Double(perHour) / 3600, now: now)
            defer { buckets[file] = bucket }
            return bucket.take(cost, now: now)
        }
    }
}

/// An app's mutable storage: one file, `storage.bin`, no bigger than the manifest's `MutableStorage.SizeKB`.
/// Each write reaches the disk before the call returns, so what an app was told it stored survives a power
/// cut; a write the quota or the disk cannot take changes nothing and returns `RAMPART_ENOSPC`.
final class AppStorageFile {
    let url: URL
    let quota: Int
    private var descriptor: Int32 = -1

    init(directory: URL, quota: Int) {
        url = directory.appendingPathComponent("storage.bin")
        self.quota = quota
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    }

    deinit { if descriptor >= 0 { _ = close(descriptor) } }

    /// The file's size in bytes, or a host result if it cannot be opened.
    var size: Int32 {
        guard descriptor >= 0 else { return HostResult.unavailable }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return HostResult.unavailable }
        return Int32(clamping: Int(info.st_size))
    }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        guard descriptor >= 0 else { return HostResult.unavailable }
        guard offset <= quota else { return 0 }
        let count = pread(descriptor, buffer.baseAddress, min(buffer.count, quota - offset), off_t(offset))
        return count < 0 ? HostResult.unavailable : Int32(count)
    }

    func write(_ bytes: [UInt8], at offset: Int) -> Int32 {
        guard descriptor >= 0 else { return HostResult.unavailable }
        guard offset + bytes.count <= quota else { return HostResult.noSpace }
        let previousSize = Int(size)
        // Reserve the blocks first: on a full disk the write fails here, before any byte changes.
        if offset + bytes.count > previousSize, posix_fallocate(descriptor, 0, off_t(offset + bytes.count)) != 0 {
            return HostResult.noSpace
        }
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            if previousSize >= 0 { _ = ftruncate(descriptor, off_t(previousSize)) }
            return HostResult.noSpace
        }
        return Int32(written)
    }

    func truncate(to size: Int) -> Int32 {
        guard descriptor >= 0 else { return HostResult.unavailable }
        guard (0...quota).contains(size) else { return size < 0 ? HostResult.invalid : HostResult.noSpace }
        guard ftruncate(descriptor, off_t(size)) == 0, fsync(descriptor) == 0 else { return HostResult.unavailable }
        return 0
    }

    /// Bytes in use, for quota reports.
    var usedBytes: Int { max(0, Int(size)) }
}
