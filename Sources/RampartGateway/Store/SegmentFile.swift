#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import RampartCore

/// One append-only segment of a queue: `<first sequence>.seg`, records framed as
/// `[u32 length][u32 crc32c][u64 sequence][record]`, big-endian.
///
/// Not thread-safe by itself: ``MessageStore`` serialises access under its lock.
final class SegmentFile: @unchecked Sendable {
    static let headerSize = 16
    static let maximumRecordSize = 4 * 1024 * 1024

    let path: String
    let firstSequence: UInt64
    /// Bytes written and synced, the end a reader may read up to.
    var size: Int
    /// The sequence the next appended record gets.
    var nextSequence: UInt64
    private(set) var descriptor: Int32

    private init(path: String, firstSequence: UInt64, descriptor: Int32) {
        self.path = path
        self.firstSequence = firstSequence
        self.nextSequence = firstSequence
        self.descriptor = descriptor
        self.size = 0
    }

    deinit { if descriptor >= 0 { Glibc.close(descriptor) } }

    static func fileName(firstSequence: UInt64) -> String {
        let digits = String(firstSequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    /// Creates an empty segment.
    static func create(directory: String, firstSequence: UInt64) throws -> SegmentFile {
        let path = directory + "/" + fileName(firstSequence: firstSequence)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.io("create \(path)", errno: errno) }
        let segment = SegmentFile(path: path, firstSequence: firstSequence, descriptor: fd)
        fsyncDirectory(directory)
        return segment
    }

    /// The outcome of scanning a segment at start-up.
    struct Scan {
        var records: [(sequence: UInt64, offset: Int, size: Int, expiresAt: UInt64?)] = []
        /// Where valid records end; past it lies a torn write or corruption.
        var validEnd = 0
        var fileSize = 0
    }

    /// Opens an existing segment and scans its records, stopping at the first that is torn or corrupt.
    static func open(path: String, firstSequence: UInt64) throws -> (SegmentFile, Scan) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.io("open \(path)", errno: errno) }
        let segment = SegmentFile(path: path, firstSequence: firstSequence, descriptor: fd)
        var scan = Scan()
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw StoreError.io("measure \(path)", errno: errno) }
        scan.fileSize = Int(end)
        var offset = 0
        var expected = firstSequence
        while offset + headerSize <= scan.fileSize {
            guard let header = segment.read(at: offset, count: headerSize) else { break }
            let length = Int(header.uint32(at: 0))
            let crc = header.uint32(at: 4)
            let sequence = header.uint64(at: 8)
            guard length <= maximumRecordSize, sequence == expected, offset + headerSize + length <= scan.fileSize,
                let body = segment.read(at: offset + headerSize, count: length), CRC32C.checksum(body) == crc
            else { break }
            scan.records.append(
                (sequence, offset, headerSize + length, GatewayMessage.expiry(ofEncoded: body)))
            offset += headerSize + length
            expected += 1
        }
        scan.validEnd = offset
        segment.size = offset
        segment.nextSequence = expected
        return (segment, scan)
    }

    /// Cuts the file back to `size` (a torn tail, or a batch whose write failed).
    func truncate(to size: Int) {
        _ = ftruncate(descriptor, off_t(size))
        self.size = size
    }

    /// Frames `record` with `sequence` for appending.
    static func frame(_ record: [UInt8], sequence: UInt64, into bytes: inout [UInt8]) {
        bytes.appendBigEndian(UInt32(record.count))
        bytes.appendBigEndian(CRC32C.checksum(record))
        bytes.appendBigEndian(sequence)
        bytes.append(contentsOf: record)
    }

    /// Writes framed bytes at the end (not yet synced).
    func write(_ bytes: [UInt8], at offset: Int) throws {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                pwrite(descriptor, raw.baseAddress! + written, raw.count - written, off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw StoreError.io("write \(path)", errno: errno)
            }
            written += result
        }
    }

    /// Makes everything written durable.
    func sync() throws {
        guard fdatasync(descriptor) == 0 else { throw StoreError.io("fsync \(path)", errno: errno) }
    }

    /// Reads `count` bytes at `offset`; `nil` if the file is shorter.
    func read(at offset: Int, count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let result = bytes.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset + done))
            }
            if result < 0, errno == EINTR { continue }
            guard result > 0 else { return nil }
            done += result
        }
        return bytes
    }

    /// Closes and deletes the file.
    func remove() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
        unlink(path)
    }
}

/// Flushes a directory's entries (new or removed files).
func fsyncDirectory(_ path: String) {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    Glibc.close(fd)
}

extension [UInt8] {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    func uint32(at offset: Int) -> UInt32 {
        self[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    func uint64(at offset: Int) -> UInt64 {
        self[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
