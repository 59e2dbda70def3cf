import Foundation
import Logging
@testable import RampartStore
import RampartTestKit

/// Runs `body` with a running store (SQLite, or PostgreSQL under RAMPART_TEST_DATABASE) whose schema stops at
/// `version`, then stops it.
func withMigratedStore(upTo version: Int = .max, _ body: @escaping @Sendable (Store) async throws -> Void) async throws {
    let directory = try TemporaryDirectory(prefix: "rampart-store")
    defer { directory.remove() }
    var logger = Logger(label: "rampart.test.store")
    logger.logLevel = .error
    let store = try await Store.open(try await TestDatabase.make(in: directory), logger: logger)
    try await store.withRunning(upTo: version) { try await body(store) }
}
