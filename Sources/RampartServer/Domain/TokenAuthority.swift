import Crypto
import Foundation
import JWTKit
import RampartCore
import RampartPKI

/// Issues and checks the short-lived session tokens (JWT, HS256) that users get after signing a challenge.
///
/// The signing key is derived from the master key, so every replica that shares the master key accepts
/// every replica's tokens and the server keeps no session state.
public struct TokenAuthority: Sendable {
    static let audience = "rampart-api"
    static let issuer = "rampart"

    struct Payload: JWTPayload {
        var sub: SubjectClaim
        var aud: AudienceClaim
        var iss: IssuerClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        var jti: IDClaim

        func verify(using algorithm: some JWTAlgorithm) async throws {
            // Expiry is checked by the caller against the injected clock.
            guard aud.value.contains(TokenAuthority.audience) else {
                throw RampartError.unauthenticated(.tokenInvalid, "The token was issued for another audience.")
            }
        }
    }

    private let keys: JWTKeyCollection
    private let clock: any WallClock
    private let lifetime: TimeInterval

    /// Creates an authority from the master key.
    public init(sealer: KeySealer, clock: any WallClock, lifetime: TimeInterval) async {
        let keys = JWTKeyCollection()
        let secret = sealer.derivedKey(purpose: "session-token").withUnsafeBytes { Array($0) }
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: "session-v1")
        self.keys = keys
        self.clock = clock
        self.lifetime = min(lifetime, 3600)
    }

    /// Issues a token for a user.
    public func issue(for user: RampartID) async throws -> LoginToken {
        let now = clock.now()
        let expiry = now + lifetime
        let payload = Payload(
            sub: .init(value: user.description), aud: .init(value: [Self.audience]), iss: .init(value: Self.issuer),
            iat: .init(value: now), exp: .init(value: expiry), jti: .init(value: RampartID().description))
        return LoginToken(token: try await keys.sign(payload, kid: "session-v1"), expiresAt: expiry)
    }

    /// Checks a token and returns the user it names.
    ///
    /// - Throws: ``RampartError`` `tokenInvalid` (malformed, tampered, wrong audience) or `tokenExpired`.
    public func verify(_ token: String) async throws -> RampartID {
        let payload: Payload
        do {
            payload = try await keys.verify(token, as: Payload.self)
        } catch let error as RampartError {
            throw error
        } catch {
            throw RampartError.unauthenticated(.tokenInvalid, "The token is malformed or its signature does not verify. Run 'rampart login'.")
        }
        guard payload.iss.value == Self.issuer, let user = RampartID(payload.sub.value) else {
            throw RampartError.unauthenticated(.tokenInvalid, "The token was not issued by this server.")
        }
        guard payload.exp.value > clock.now() else {
            throw RampartError.unauthenticated(.tokenExpired, "The token has expired. Run 'rampart login' for a new one.")
        }
        return user
    }
}
