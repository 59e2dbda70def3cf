import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresKit
import RampartCore
import SQLKit
import SQLiteKit
import ServiceLifecycle
import Synchronization

/// The one data-access layer. Every query is written once against SQLKit and runs on SQLite or PostgreSQL.
///
/// The store is a `Service`: for PostgreSQL its `run()` drives the connection pool, so it must run in the
/// same `ServiceGroup` as whatever uses it. Use ``transaction(_:)`` for every write: the body either commits
/// as a whole or not at all.
public final class Store: Service, Sendable {
    private enum Backend: Sendable {
        case sqlite(SQLiteConnection, AsyncSerialLock, GroupCommitter, ReadConnections)
        case postgres(PostgresClient)
    }

    private let backend: Backend
    private let logger: Logger
    /// Where the data lives.
    public let location: StoreLocation

    private init(backend: Backend, location: StoreLocation, logger: Logger) {
        self.backend = backend
        self.location = location
        self.logger = logger
    }

    /// Opens the store. Call ``migrate()`` once ``run()`` is running.
    ///
    /// - Throws: ``RampartError`` `storeUnavailable` when the database cannot be opened.
    public static func open(_ location: StoreLocation, logger: Logger) async throws -> Store {
        switch location {
        case .sqlite(let path):
            do {
                let connection = try await SQLiteThreads.open(path: path, logger: logger)
                do {
                    let db = connection.sql(queryLogLevel: nil)
                    // WAL lets readers run beside the writer; FULL makes every acknowledged commit survive a crash.
                    _ = try await db.raw("PRAGMA journal_mode=WAL").all()
                    try await db.raw("PRAGMA synchronous=FULL").run()
                    try await db.raw("PRAGMA foreign_keys=ON").run()
                    try await db.raw("PRAGMA busy_timeout=5000").run()
                    let lock = AsyncSerialLock()
                    let committer = GroupCommitter(lock: lock, logger: logger) { connection.sql(queryLogLevel: nil) }
                    let readers = try await ReadConnections.open(path: path, count: ReadConnections.defaultCount, logger: logger)
                    return Store(backend: .sqlite(connection, lock, committer, readers), location: location, logger: logger)
                } catch {
                    try? await connection.close().get()
                    throw error
                }
            } catch {
                throw RampartError(
                    .storeUnavailable, "Cannot open the SQLite database at \(path): \(error)", status: 503)
            }
        case .postgres(let pg):
            let tls: PostgresClient.Configuration.TLS =
                switch pg.tlsMode {
                case .disable: .disable
                case .prefer: .prefer(.makeClientConfiguration())
                case .require: .require(.makeClientConfiguration())
                }
            // One direct connection first: the pool would retry an unreachable server for a minute, while a
            // user running `server init` or `server run` wants to hear at once what is wrong.
            var probe = PostgresConnection.Configuration(
                host: pg.host, port: pg.port, username: pg.username, password: pg.password, database: pg.database,
                tls: pg.tlsMode == .disable ? .disable : .prefer(try NIOSSLContext(configuration: .makeClientConfiguration())))
            probe.options.connectTimeout = .seconds(10)
            do {
                let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
                try await connection.close()
            } catch {
                throw RampartError(
                    .storeUnavailable, "Cannot connect to PostgreSQL at \(pg): \(String(reflecting: error).prefix(300))",
                    status: 503)
            }
            var configuration = PostgresClient.Configuration(
                host: pg.host, port: pg.port, username: pg.username, password: pg.password, database: pg.database,
                tls: tls)
            configuration.options.maximumConnections = pg.maximumConnections
            let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
            return Store(backend: .postgres(client), location: location, logger: logger)
        }
    }

    /// Drives the backend until cancelled or until graceful shutdown, then closes it.
    public func run() async throws {
        switch backend {
        case .postgres(let client):
            await client.run()
        case .sqlite(let connection, _, _, let readers):
            try? await gracefulShutdown()
            // The future-based close is not cancellable, so the connection is closed even when the task was cancelled.
            await readers.close()
            try await connection.close().get()
        }
    }

    /// Runs `body` in one transaction, committing when it returns and rolling back when it throws.
    ///
    /// - Throws: What `body` throws; a lost unique-key race as ``RampartError`` `conflict` (409); any other
    ///   database failure as `storeUnavailable` (503).
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> T) async throws -> T {
        switch backend {
        case .sqlite(_, _, let committer, _):
            // Concurrent transactions share one commit (and one fsync); see GroupCommitter.
            do {
                return try await committer.transaction(body)
            } catch {
                throw Self.translate(error, logger: logger)
            }
        case .postgres(let client):
            return try await client.withConnection { connection in
                try await Self.inTransaction(connection.sql(queryLogLevel: nil), logger: logger, body)
            }
        }
    }

    /// Runs read-only `body` outside a transaction: each query sees committed data, so use
    /// ``transaction(_:)`` when several reads must agree with each other. On SQLite, reads run on their own
    /// connections (WAL lets them beside the writer), which refuse any write.
    public func read<T: Sendable>(_ body: @Sendable (StoreSession) async throws -> T) async throws -> T {
        do {
            switch backend {
            case .sqlite(_, _, _, let readers):
                return try await readers.withConnection { try await body(StoreSession(db: $0)) }
            case .postgres(let client):
                return try await client.withConnection { connection in
                    try await body(StoreSession(db: connection.sql(queryLogLevel: nil)))
                }
            }
        } catch {
            throw Self.translate(error, logger: logger)
        }
    }

    private static func inTransaction<T>(
        _ db: any SQLDatabase, logger: Logger, _ body: @Sendable (StoreSession) async throws -> T
    ) async throws -> T {
        do {
            try await db.raw("BEGIN").run()
            do {
                let result = try await body(StoreSession(db: db))
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        } catch {
            throw translate(error, logger: logger)
        }
    }

    /// Database failures become errors a client can act on: a lost race on a unique key is a 409, anything
    /// else (busy, disk full, connection lost) a 503 that is safe to retry. The database's own text is kept
    /// out of the answer; it goes to the server log.
    static func translate(_ error: any Error, logger: Logger) -> any Error {
        if error is RampartError || error is CancellationError { return error }
        let text = String(reflecting: error)
        logger.error("Database operation failed", metadata: ["error": "\(text)"])
        if text.contains("UNIQUE constraint failed") || text.contains("23505") || text.contains("duplicate key") {
            return RampartError(.conflict, "The request conflicts with a concurrent change. Retry it.", status: 409)
        }
        return RampartError(.storeUnavailable, "The database could not complete the request; retry later.", status: 503)
    }

    /// Brings the schema up to the newest version. Safe to call from several replicas at once.
    public func migrate() async throws {
        try await migrate(upTo: .max)
    }

    /// Brings the schema up to `version` only: for tests that write rows in an older shape, then upgrade.
    func migrate(upTo version: Int) async throws {
        try await transaction { session in
            if case .postgres = self.location {
                // Serialise concurrent replicas starting against one database.
                try await session.db.raw("SELECT pg_advisory_xact_lock(7342001)").run()
            }
            try await Migrations.apply(on: session.db, logger: self.logger, upTo: version)
        }
    }

    /// Opens a store, runs and migrates it for the duration of `body`, then closes it: for one-off commands
    /// and tests, where no `ServiceGroup` runs.
    public static func withRunning<T: Sendable>(
        _ location: StoreLocation, logger: Logger, _ body: @escaping @Sendable (Store) async throws -> T
    ) async throws -> T {
        let store = try await Store.open(location, logger: logger)
        return try await store.withRunning { try await body(store) }
    }

    /// Runs and migrates this store for the duration of `body`, then closes it.
    public func withRunning<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withRunning(upTo: .max, body)
    }

    /// The same, with the schema migrated only up to `version` (for tests of a migration).
    func withRunning<T: Sendable>(upTo version: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            do {
                try await migrate(upTo: version)
                let result = try await body()
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// The schema version the database is at.
    public func schemaVersion() async throws -> Int {
        // A transaction: finding the version creates the version table when it is missing.
        try await transaction { session in try await Migrations.currentVersion(on: session.db) }
    }
}

extension StoreSession {
    /// Runs one statement as written: for tests that write rows in an older schema's shape.
    func execute(_ statement: String) async throws {
        try await db.raw(SQLQueryString(statement)).run()
    }
}

/// The SQLite backend's read-only connections. WAL lets readers run beside the one writer, so a read never
/// waits for a group commit's fsync; each connection is used by one read at a time.
final class ReadConnections: Sendable {
    /// As many as the thread pool that runs SQLite calls has threads.
    static var defaultCount: Int { SQLiteThreads.threadCount }

    private let connections: [(SQLiteConnection, AsyncSerialLock)]
    private let next = Mutex(0)

    private init(_ connections: [(SQLiteConnection, AsyncSerialLock)]) {
        self.connections = connections
    }

    static func open(path: String, count: Int, logger: Logger) async throws -> ReadConnections {
        var opened: [(SQLiteConnection, AsyncSerialLock)] = []
        do {
            for _ in 0..<count {
                let connection = try await SQLiteThreads.open(path: path, logger: logger)
                opened.append((connection, AsyncSerialLock()))
                let db = connection.sql(queryLogLevel: nil)
                try await db.raw("PRAGMA busy_timeout=5000").run()
                // A read that tried to write would bypass the group commit: refuse it.
                try await db.raw("PRAGMA query_only=ON").run()
            }
        } catch {
            for (connection, _) in opened { try? await connection.close().get() }
            throw error
        }
        return ReadConnections(opened)
    }

    /// Runs `body` on an idle connection if there is one (else the next in turn), alone.
    func withConnection<T>(_ body: (any SQLDatabase) async throws -> T) async throws -> T {
        let index = next.withLock { next in
            defer { next = (next + 1) % connections.count }
            return connections.indices.first { !connections[$0].1.isHeld } ?? next
        }
        let (connection, lock) = connections[index]
        return try await lock.withLock { try await body(connection.sql(queryLogLevel: nil)) }
    }

    func close() async {
        for (connection, _) in connections { try? await connection.close().get() }
    }
}

/// The threads SQLite work runs on, apart from the network's. SQLiteNIO runs each statement on a thread pool
/// and completes it on an event loop; on the shared event loops a completion would queue behind TLS
/// handshakes, and every statement of a transaction pays that wait again.
enum SQLiteThreads {
    static let threadCount = max(2, NIOSingletons.blockingPoolThreadCountSuggestion)
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: threadCount)
        pool.start()
        return pool
    }()
    static let eventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()

    static func open(path: String, logger: Logger) async throws -> SQLiteConnection {
        try await SQLiteConnection.open(storage: .file(path: path), threadPool: pool, logger: logger, on: eventLoop).get()
    }
}
