import Crypto
import Foundation
import JWTKit
import RampartCLI
import RampartCore
import RampartPKI
import RampartServer
import RampartTestKit
import Testing

@Suite("Password-less users")
struct AuthenticationTests {
    @Test("an invitation registers a key, login signs a challenge, and the token works")
    func registerAndLogin() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            #expect(admin.info.serverAdministrator)
            let keyFile = admin.home.appendingPathComponent("user-key.pem")
            let mode = try FileManager.default.attributesOfItem(atPath: keyFile.path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let token = try await admin.client.login()
            #expect(token.expiresAt <= Date() + 3600 + 5)
            let me = try await admin.client.json(UserInfo.self, .GET, "/v1/me")
            #expect(me == admin.info)
        }
    }

    @Test("a reused invitation is refused with invitationUsed")
    func reusedInvitation() async throws {
        try await TestServer.withServer { server in
            let invitation = try await server.runtime.users.inviteServerAdministrator(email: "once@test.rampart")
            _ = try await server.register(invitation: invitation.text)
            await expectAPIError("invitationUsed", status: 409) {
                _ = try await server.register(invitation: invitation.text)
            }
        }
    }

    @Test("a forged or garbled invitation is refused")
    func forgedInvitation() async throws {
        try await TestServer.withServer { server in
            var invitation = try await server.runtime.users.inviteServerAdministrator(email: "x@test.rampart")
            invitation.secret = Base64URL.encode([UInt8](repeating: 7, count: 32))
            await expectAPIError("invitationInvalid", status: 401) {
                _ = try await server.register(invitation: invitation.text)
            }
            await expectAPIError("invitationInvalid", status: 401) {
                _ = try await server.register(invitation: "rpi1.garbage")
            }
        }
    }

    @Test("an expired invitation is refused with invitationExpired")
    func expiredInvitation() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let invitation = try await server.runtime.users.inviteServerAdministrator(email: "late@test.rampart")
            clock.advance(by: 8 * 24 * 3600)
            await expectAPIError("invitationExpired", status: 401) {
                _ = try await server.register(invitation: invitation.text)
            }
        }
    }

    @Test("a registration with a malformed public key is refused and does not use up the invitation")
    func badPublicKey() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let invitation = try await server.runtime.users.inviteServerAdministrator(email: "k@test.rampart")
            let body = #"{"invitation":"\#(invitation.text)","publicKey":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}"#
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await admin.client.send(.POST, "/v1/users/register", rawBody: Array(body.utf8), authenticated: false)
            }
            _ = try await server.register(invitation: invitation.text)
        }
    }

    @Test("tokens: missing, tampered, wrong audience and expired are refused with their codes")
    func badTokens() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let good = try await admin.client.login().token
            await expectAPIError("unauthenticated", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, authenticated: false)
            }
            var tampered = Array(good)
            tampered[tampered.count - 3] = tampered[tampered.count - 3] == "A" ? "B" : "A"
            await expectAPIError("tokenInvalid", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, bearer: String(tampered))
            }
            await expectAPIError("tokenInvalid", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, bearer: "not.a.jwt")
            }
            let foreign = try await Self.token(
                audience: "someone-else", subject: admin.info.id, sealer: server.runtime.context.sealer)
            await expectAPIError("tokenInvalid", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, bearer: foreign)
            }
            let otherKey = try await Self.token(
                audience: "rampart-api", subject: admin.info.id,
                sealer: try KeySealer(base64: KeySealer.generateMasterKey()))
            await expectAPIError("tokenInvalid", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, bearer: otherKey)
            }
            clock.advance(by: 3601)
            await expectAPIError("tokenExpired", status: 401) {
                _ = try await admin.client.send(.GET, "/v1/me", rawBody: nil, bearer: good)
            }
        }
    }

    @Test("a challenge answered twice, late, or signed by another key is refused")
    func badChallenges() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let key = try P256.Signing.PrivateKey(
                pemRepresentation: String(contentsOf: admin.home.appendingPathComponent("user-key.pem"), encoding: .utf8))
            func challenge() async throws -> LoginChallenge {
                try await admin.client.json(
                    LoginChallenge.self, .POST, "/v1/auth/challenge", body: LoginChallengeRequest(userId: admin.info.id),
                    authenticated: false)
            }
            func answer(_ c: LoginChallenge, with signer: P256.Signing.PrivateKey) async throws {
                let signature = try signer.signature(for: LoginChallenge.signedMessage(challengeId: c.challengeId, nonce: c.nonce))
                _ = try await admin.client.json(
                    LoginToken.self, .POST, "/v1/auth/token",
                    body: LoginTokenRequest(challengeId: c.challengeId, signature: Base64URL.encode(signature.derRepresentation)),
                    authenticated: false)
            }
            let first = try await challenge()
            try await answer(first, with: key)
            await expectAPIError("challengeInvalid", status: 401) { try await answer(first, with: key) }
            await expectAPIError("signatureInvalid", status: 401) { try await answer(try await challenge(), with: P256.Signing.PrivateKey()) }
            let late = try await challenge()
            clock.advance(by: 61)
            await expectAPIError("challengeInvalid", status: 401) { try await answer(late, with: key) }
            await expectAPIError("notFound", status: 404) {
                _ = try await admin.client.json(
                    LoginChallenge.self, .POST, "/v1/auth/challenge", body: LoginChallengeRequest(userId: RampartID()),
                    authenticated: false)
            }
        }
    }

    struct ForeignPayload: JWTPayload {
        var sub: SubjectClaim
        var aud: AudienceClaim
        var iss: IssuerClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        var jti: IDClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func token(audience: String, subject: RampartID, sealer: KeySealer) async throws -> String {
        let keys = JWTKeyCollection()
        let secret = sealer.derivedKey(purpose: "session-token").withUnsafeBytes { Array($0) }
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: "session-v1")
        return try await keys.sign(
            ForeignPayload(
                sub: .init(value: subject.description), aud: .init(value: [audience]), iss: .init(value: "rampart"),
                iat: .init(value: Date()), exp: .init(value: Date() + 600), jti: .init(value: "x")),
            kid: "session-v1")
    }
}
