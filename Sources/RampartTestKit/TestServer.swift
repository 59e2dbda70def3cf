import Foundation
import Hummingbird
import Logging
import RampartCLI
import RampartCore
import RampartPKI
import RampartServer
import RampartStore
import X509
import ServiceLifecycle

/// A real security service for tests: HTTPS on a free loopback port, a fresh database, a temporary data
/// directory, and an optional manual clock. Start it with ``withServer(clock:extraRoutes:_:)``.
public struct TestServer: Sendable {
    /// `https://127.0.0.1:PORT`.
    public let url: String
    public let runtime: ServerRuntime
    public let directory: TemporaryDirectory
    public let group: ServiceGroup

    /// Runs a server for the duration of `body`, then shuts it down gracefully.
    public static func withServer<T: Sendable>(
        clock: any WallClock = SystemWallClock(),
        extraRoutes: (@Sendable (Router<RampartRequestContext>) -> Void)? = nil,
        configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "rampart-server")
        defer { directory.remove() }
        let data = DataDirectory(path: directory.file("data").path)
        try data.initialize(hostnames: [], writeMasterKey: true, now: clock.now())
        var configuration = try data.serverConfiguration()
        configuration.port = 0
        configuration.store = try await TestDatabase.make(in: directory)
        configure(&configuration)
        var logger = Logger(label: "rampart.test.server")
        logger.logLevel = .warning
        let runtime = try await ServerRuntime(configuration: configuration, clock: clock, logger: logger)
        return try await runtime.withRunningServer(extraRoutes: extraRoutes) { running in
            try await body(
                TestServer(url: "https://127.0.0.1:\(running.port)", runtime: runtime, directory: directory, group: running.group))
        }
    }

    /// The CA that signs the server's TLS certificate, as devices trust it.
    public var tlsCAPEM: String {
        get throws { try runtime.configuration.tlsTrustAnchorPEM }
    }

    /// Creates a server-administrator invitation and registers it into a new CLI profile.
    ///
    /// - Returns: A client signed in as that user.
    public func registerAdministrator(email: String = "admin@test.rampart") async throws -> TestUser {
        let invitation = try await runtime.users.inviteServerAdministrator(email: email)
        return try await register(invitation: invitation.text)
    }

    /// Registers a user from invitation text into a new CLI profile.
    public func register(invitation: String) async throws -> TestUser {
        let home = directory.file("home-\(RampartID())")
        let user = try await Registration.register(server: url, invitation: invitation, directory: home)
        return TestUser(info: user, home: home, client: try APIClient(profile: try ClientProfile.load(from: home)))
    }
}

/// A registered user with a signed-in client.
public struct TestUser: Sendable {
    public let info: UserInfo
    /// The CLI profile directory (`RAMPART_HOME`).
    public let home: URL
    public let client: APIClient

    /// Invites `email` into `tenant` with `role` and registers them.
    public func invite(_ email: String, as role: Role, to tenant: RampartID, on server: TestServer) async throws -> TestUser {
        let grant = try await client.json(
            RoleGrant.self, .POST, "/v1/tenants/\(tenant)/roles", body: RoleAddRequest(email: email, role: role))
        guard let invitation = grant.invitation else {
            throw RampartError(.internalError, "Expected an invitation for \(email).", status: 500)
        }
        return try await server.register(invitation: invitation)
    }

    /// Creates a tenant.
    public func createTenant(_ name: String) async throws -> TenantInfo {
        try await client.json(TenantInfo.self, .POST, "/v1/tenants", body: TenantNameRequest(name: name))
    }
}

/// Runs `openssl` with arguments and returns its exit status and combined output.
public enum OpenSSL {
    @discardableResult
    public static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
