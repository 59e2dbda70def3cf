import Foundation
import Hummingbird
import NIOCore
import RampartCore
import RampartStore

/// The per-request context: Hummingbird's core storage plus the authenticated caller, once known.
public struct RampartRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The user behind the bearer token, set by ``AuthenticationMiddleware``.
    public var caller: UserRecord?
    /// The connection, kept for client-certificate checks.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    public var responseEncoder: JSONEncoder { JSONCoding.encoder() }
    public var requestDecoder: JSONDecoder { JSONCoding.decoder() }

    /// The caller, or 401 if the route was reached without authentication.
    func requireCaller() throws -> UserRecord {
        guard let caller else {
            throw RampartError.unauthenticated(.unauthenticated, "Sign in with 'rampart login' and send the token.")
        }
        return caller
    }
}

extension UserInfo: ResponseEncodable {}
extension TenantInfo: ResponseEncodable {}
extension TenantList: ResponseEncodable {}
extension RoleList: ResponseEncodable {}
extension RoleGrant: ResponseEncodable {}
extension CACertificateInfo: ResponseEncodable {}
extension CACertificateList: ResponseEncodable {}
extension AuditList: ResponseEncodable {}
extension LoginChallenge: ResponseEncodable {}
extension LoginToken: ResponseEncodable {}
extension HealthStatus: ResponseEncodable {}
