import Foundation
import RampartCore

/// A directory under the system temporary directory, removed by ``remove()``.
public struct TemporaryDirectory: Sendable {
    public let url: URL

    /// Creates an empty directory.
    public init(prefix: String = "rampart-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(RampartID().description.prefix(13))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public var path: String { url.path }

    /// A path inside the directory.
    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}
