import Foundation
import RampartCore

/// Where the store keeps its data: an SQLite file (the default) or a PostgreSQL database shared by replicas.
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// An SQLite database file, opened in WAL mode.
    case sqlite(path: String)
    /// A PostgreSQL server.
    case postgres(PostgresLocation)

    /// Parses `--database`: a `postgres://` URL, or an SQLite path or `sqlite://` URL.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for anything else.
    public init(parsing text: String) throws {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresLocation(url: text))
        } else if text.hasPrefix("sqlite://") {
            self = .sqlite(path: String(text.dropFirst("sqlite://".count)))
        } else if text.contains("://") {
            throw RampartError(
                .configurationInvalid, "Unsupported database URL '\(PostgresLocation.redacted(text))'. Use postgres://… or an SQLite file path.")
        } else {
            self = .sqlite(path: text)
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let location): location.description
        }
    }
}

/// The parts of a `postgres://user[:password]@host[:port]/database[?sslmode=…]` URL.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode
    /// The most connections this process opens (`pool_max` in the URL; default 16).
    public var maximumConnections: Int

    /// Parses a PostgreSQL URL.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` naming the missing part.
    public init(url text: String) throws {
        let shown = Self.redacted(text)
        guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw RampartError(.configurationInvalid, "The database URL '\(shown)' has no host.")
        }
        guard let user = components.user, !user.isEmpty else {
            throw RampartError(.configurationInvalid, "The database URL '\(shown)' names no user (postgres://USER@host/db).")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else {
            throw RampartError(.configurationInvalid, "The database URL '\(shown)' names no database (…/DBNAME).")
        }
        let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        guard let tlsMode = TLSMode(rawValue: mode == "verify-full" ? "require" : mode) else {
            throw RampartError(.configurationInvalid, "Unsupported sslmode '\(mode)'. Use disable, prefer or require.")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user
        self.password = components.password
        self.database = database
        self.tlsMode = tlsMode
        let pool = components.queryItems?.first(where: { $0.name == "pool_max" })?.value ?? "16"
        guard let maximumConnections = Int(pool), (1...1000).contains(maximumConnections) else {
            throw RampartError(.configurationInvalid, "pool_max must be a whole number from 1 to 1000, not '\(pool)'.")
        }
        self.maximumConnections = maximumConnections
    }

    /// The URL with the password hidden, for logs.
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    /// `text` with any password replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "postgres://…"
    }

    /// The same server with another database name.
    public func withDatabase(_ name: String) -> PostgresLocation {
        var copy = self
        copy.database = name
        return copy
    }
}
