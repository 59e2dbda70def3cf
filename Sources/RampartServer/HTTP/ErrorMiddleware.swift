import Foundation
import Hummingbird
import Logging
import NIOCore
import RampartCore

/// Turns every error into a JSON `{code, message}` body with the right status, so clients never see an
/// empty or HTML error, and nothing the server did not mean to say leaks out of a 500.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = RampartRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RampartError {
            if error.status >= 500 {
                context.logger.error("Request failed", metadata: ["code": "\(error.code)", "error": "\(error.message)"])
            }
            return Self.response(for: error)
        } catch let error as HTTPError {
            return Self.response(for: Self.translate(error))
        } catch {
            context.logger.error("Unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return Self.response(
                for: RampartError(.internalError, "The server could not complete the request; see its log.", status: 500))
        }
    }

    static func translate(_ error: HTTPError) -> RampartError {
        switch error.status {
        case .notFound:
            return RampartError(.notFound, "No such endpoint. See /openapi.yaml for the API.", status: 404)
        case .methodNotAllowed:
            return RampartError(.methodNotAllowed, "This endpoint does not take that method.", status: 405)
        case .contentTooLarge:
            return RampartError(.bodyTooLarge, "The request body is too large.", status: 413)
        default:
            let status = error.status.code
            return RampartError(
                status == 401 ? .unauthenticated : .invalidRequest, error.body ?? error.status.reasonPhrase,
                status: (400..<500).contains(status) ? status : 400)
        }
    }

    static func response(for error: RampartError) -> Response {
        let body = APIErrorBody(code: error.code.rawValue, message: error.message)
        let data = (try? JSONCoding.encoder().encode(body)) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if error.status == 401 {
            headers[.wwwAuthenticate] = "Bearer"
        }
        return Response(
            status: HTTPResponse.Status(code: error.status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
