import Crypto
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import RampartCore
import RampartPKI
import RampartStore
import ServiceLifecycle
import UnixSignals
import X509

/// The assembled security service: store, domain services, HTTP application and background jobs.
///
/// ```swift
/// let runtime = try await ServerRuntime(configuration: configuration, logger: logger)
/// let group = ServiceGroup(configuration: .init(services: runtime.services(), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// ```
public struct ServerRuntime: Sendable {
    public let configuration: ServerConfiguration
    public let store: Store
    public let context: DomainContext
    public let users: UserService
    public let tenants: TenantService
    public let certificateAuthority: TenantCAService
    public let attestation: AttestationService
    public let devices: DeviceService
    /// Telemetry from hubs and cloud-to-device messages.
    public let messages: MessageService
    public let repository: TUFRepositoryService
    public let products: ProductService
    public let images: ImageService
    public let checks: UpdateCheckService
    /// Development mode and its capability.
    public let development: DevelopmentModeService
    let tokens: TokenAuthority

    /// Opens the store and builds the domain services. Nothing runs until ``services(onServerRunning:)``'s
    /// services are run.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for a bad master key or TLS material.
    public init(configuration: ServerConfiguration, clock: any WallClock = SystemWallClock(), logger: Logger)
        async throws
    {
        let sealer = try KeySealer(base64: configuration.masterKey)
        // Invitations pin the chain's self-signed root, when it has one (a development certificate). Chains
        // from a public CA end below their root, and clients use the system trust store for those.
        let root = (try? Certificate.parseBundle(pem: configuration.tlsCertificatePEM))?.last
        let pin = root.flatMap { $0.issuer == $0.subject ? try? $0.sha256Thumbprint : nil }
        self.configuration = configuration
        store = try await Store.open(configuration.store, logger: logger)
        context = DomainContext(
            store: store, clock: clock, sealer: sealer, configuration: configuration, logger: logger, tlsPin: pin)
        tokens = await TokenAuthority(sealer: sealer, clock: clock, lifetime: configuration.limits.tokenLifetime)
        users = UserService(context: context, tokens: tokens)
        tenants = TenantService(context: context)
        certificateAuthority = TenantCAService(context: context)
        attestation = try AttestationService(context: context, certificateAuthority: certificateAuthority)
        devices = DeviceService(context: context)
        messages = MessageService(context: context)
        repository = TUFRepositoryService(context: context)
        products = ProductService(context: context, repository: repository)
        images = ImageService(context: context, repository: repository)
        checks = UpdateCheckService(context: context, repository: repository)
        development = DevelopmentModeService(context: context, certificateAuthority: certificateAuthority)
    }

    /// The router with every route and middleware.
    ///
    /// - Parameter extraRoutes: Lets tests add routes (for example a slow one to test graceful shutdown).
    public func makeRouter(extraRoutes: (@Sendable (Router<RampartRequestContext>) -> Void)? = nil)
        -> Router<RampartRequestContext>
    {
        let router = Router(context: RampartRequestContext.self)
        // Outermost first: log and measure what the client finally receives, errors included.
        router.add(middleware: RequestLogMiddleware())
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ErrorMiddleware())
        let routes = APIRoutes(
            users: users, tenants: tenants, certificateAuthority: certificateAuthority,
            bodyLimit: configuration.limits.maximumBodyBytes)
        let deviceAuthenticator = DeviceCertificateAuthenticator(context: context)
        let deviceRoutes = DeviceRoutes(
            attestation: attestation, devices: devices, certificateAuthority: certificateAuthority,
            deviceAuthenticator: deviceAuthenticator, bodyLimit: configuration.limits.maximumBodyBytes)
        let updateRoutes = UpdateRoutes(
            repository: repository, products: products, images: images, checks: checks, development: development,
            deviceAuthenticator: deviceAuthenticator,
            bodyLimit: configuration.limits.maximumBodyBytes)
        let messageRoutes = MessageRoutes(
            messages: messages, devices: devices, deviceAuthenticator: deviceAuthenticator,
            bodyLimit: configuration.limits.maximumBodyBytes)
        routes.addPublic(to: router)
        deviceRoutes.addPublic(to: router)
        messageRoutes.addPublic(to: router)
        updateRoutes.addPublic(to: router)
        extraRoutes?(router)
        let authenticated = router.group().add(middleware: AuthenticationMiddleware(tokens: tokens, store: store))
        routes.addAuthenticated(to: authenticated)
        deviceRoutes.addAuthenticated(to: authenticated)
        messageRoutes.addAuthenticated(to: authenticated)
        updateRoutes.addAuthenticated(to: authenticated)
        return router
    }

    /// Every long-running part, in start order: the store first, so it is shut down last.
    ///
    /// - Parameter onServerRunning: Called with the bound port once the server accepts connections.
    public func services(
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        extraRoutes: (@Sendable (Router<RampartRequestContext>) -> Void)? = nil
    ) throws -> [any Service] {
        _ = MetricsRegistry.shared
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(configuration.tlsCertificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(configuration.tlsKeyPEM.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        // Devices authenticate to the TUF repository with their 24 h certificate. The handshake asks for one
        // but does not require it (users authenticate with tokens); which CA a certificate must chain to
        // depends on the tenant in the URL, so chains are checked per request (DeviceCertificateAuthenticator).
        // The handshake still proves possession of the presented certificate's key.
        tls.certificateVerification = .optionalVerification
        var application = Application(
            router: makeRouter(extraRoutes: extraRoutes),
            server: try .tls(
                .http1(),
                configuration: TLSChannelConfiguration(
                    tlsConfiguration: tls,
                    customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) })),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "rampart"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: context.logger)
        let store = store
        application.beforeServerStarts { try await store.migrate() }
        return [store, application, KeyMaintenanceService(
            certificateAuthority: certificateAuthority, repository: repository, messages: messages, devices: devices,
            store: store, logger: context.logger)]
    }

    /// Runs every service in one `ServiceGroup`, calls `body` once the server accepts connections, then shuts
    /// down gracefully when `body` returns. If the server fails to start, its error is thrown.
    ///
    /// - Parameters:
    ///   - gracefulShutdownSignals: Signals that stop the server (SIGTERM, SIGINT for a process).
    ///   - extraRoutes: Routes a test adds.
    ///   - body: What to do while the server runs.
    public func withRunningServer<T: Sendable>(
        gracefulShutdownSignals: [UnixSignal] = [],
        extraRoutes: (@Sendable (Router<RampartRequestContext>) -> Void)? = nil,
        _ body: @Sendable (RunningServer) async throws -> T
    ) async throws -> T {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let (stopped, stoppedContinuation) = AsyncStream.makeStream(of: Void.self)
        let group = ServiceGroup(
            configuration: .init(
                services: try services(onServerRunning: { portContinuation.yield($0) }, extraRoutes: extraRoutes),
                gracefulShutdownSignals: gracefulShutdownSignals, logger: context.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer {
                    portContinuation.finish()
                    stoppedContinuation.finish()
                }
                try await group.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await tasks.next()  // rethrows why the group stopped
                throw RampartError(.internalError, "The server stopped before it accepted connections.", status: 500)
            }
            do {
                let result = try await body(RunningServer(port: port, group: group, stopped: stopped))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// The routes the server answers, for the test that compares them with docs/openapi.yaml.
    public func routeTable() -> [(method: String, path: String)] {
        makeRouter().routes.map { (method: $0.method.rawValue, path: $0.path.description) }
    }

    /// The embedded OpenAPI document.
    public static var openAPIDocument: String { OpenAPIDocument.yaml }
}

/// Checks every tenant's CA lifecycle and TUF signatures periodically, so CA successors appear and activate
/// on time, and timestamp, snapshot and targets are re-signed well before they expire, even when no one is
/// looking.
struct KeyMaintenanceService: Service {
    let certificateAuthority: TenantCAService
    let repository: TUFRepositoryService
    let messages: MessageService
    let devices: DeviceService
    let store: Store
    let logger: Logger

    func run() async throws {
        // The HTTP server migrates before it starts; this job may start first, and migrating is idempotent.
        try await store.migrate()
        let interval = certificateAuthority.context.configuration.certificateAuthority.checkInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let tenants = try await store.read { session in try await session.allTenantIDs() }
                for tenant in tenants {
                    if try await certificateAuthority.rotateIfDue(tenant: tenant) {
                        logger.info("Tenant CA rotated", metadata: ["tenant": "\(tenant)"])
                    }
                    try await repository.ensureRepository(tenant: tenant)
                }
                _ = try await repository.resignDue()
                let now = certificateAuthority.context.clock.now()
                try await store.transaction { try await $0.purgeNonces(before: now - 300) }
            } catch {
                logger.warning("Key maintenance failed; will retry", metadata: ["error": "\(error)"])
            }
            do {
                // Never sooner than the longest TTL, so that no message still pending is deleted.
                let retention = max(
                    certificateAuthority.context.configuration.limits.messageRetention, TimeInterval(MessageService.maximumTimeToLive))
                try await messages.purge(olderThan: retention)
            } catch {
                logger.warning("Deleting old messages failed; will retry", metadata: ["error": "\(error)"])
            }
            do {
                try await devices.purgeErrorEvents(olderThan: certificateAuthority.context.configuration.limits.errorEventRetention)
            } catch {
                logger.warning("Deleting old error events failed; will retry", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}

/// One structured log line per request, with route, status and duration.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = RampartRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        context.logger.info(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
                "ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ])
        return response
    }
}

/// A server started by ``ServerRuntime/withRunningServer(gracefulShutdownSignals:extraRoutes:_:)``.
public struct RunningServer: Sendable {
    /// The bound TCP port.
    public let port: Int
    /// The service group, for triggering a graceful shutdown.
    public let group: ServiceGroup
    let stopped: AsyncStream<Void>

    /// Waits until the server stops (a signal, or a graceful shutdown triggered elsewhere).
    public func waitUntilStopped() async {
        for await _ in stopped {}
    }
}
