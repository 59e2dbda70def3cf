import Foundation
import Logging
import PostgresNIO
import RampartCore
import RampartStore

/// Where store and server tests keep data: a fresh SQLite file, or, when `RAMPART_TEST_DATABASE` is a
/// `postgres://` URL (scripts/test starts a throwaway server), a fresh database created on that server.
public enum TestDatabase {
    /// The backend the suite runs against: `sqlite` or `postgres`.
    public static var backendName: String { postgresURL == nil ? "sqlite" : "postgres" }

    static var postgresURL: String? {
        let value = ProcessInfo.processInfo.environment["RAMPART_TEST_DATABASE"] ?? ""
        return value.hasPrefix("postgres") ? value : nil
    }

    /// A new, empty database location.
    public static func make(in directory: TemporaryDirectory) async throws -> StoreLocation {
        guard let url = postgresURL else { return .sqlite(path: directory.file("rampart.sqlite").path) }
        let server = try PostgresLocation(url: url)
        let name = "rampart_test_\(RampartID().description.replacingOccurrences(of: "-", with: "").prefix(16))"
        let configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password,
            database: server.database, tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: Logger(label: "rampart.test.postgres"))
        do {
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: Logger(label: "rampart.test.postgres"))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        // Many test servers run at once against one PostgreSQL: keep each one's pool small.
        var location = server.withDatabase(name)
        location.maximumConnections = 4
        return .postgres(location)
    }
}
