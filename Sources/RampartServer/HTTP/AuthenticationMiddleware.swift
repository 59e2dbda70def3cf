import Hummingbird
import Logging
import RampartCore
import RampartStore

/// Resolves `Authorization: Bearer <token>` to a user for every route behind it.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = RampartRequestContext
    let tokens: TokenAuthority
    let store: Store

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw RampartError.unauthenticated(
                .unauthenticated, "This endpoint needs a bearer token. Run 'rampart login' first.")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw RampartError.unauthenticated(.tokenInvalid, "Use 'Authorization: Bearer <token>'.")
        }
        let userID = try await tokens.verify(String(parts[1]))
        guard let user = try await store.read({ session in try await session.user(id: userID) }) else {
            throw RampartError.unauthenticated(.tokenInvalid, "The token's user no longer exists.")
        }
        var context = context
        context.caller = user
        context.logger[metadataKey: "user"] = .string(user.email)
        return try await next(request, context)
    }
}
