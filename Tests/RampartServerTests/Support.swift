import Foundation
import RampartCLI
import RampartCore
import RampartTestKit
import Testing

/// Expects `body` to fail with the API error `code` and HTTP `status` (and a message containing `fragment`).
func expectAPIError(
    _ code: String, status: Int, containing fragment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("Expected \(code) (\(status)) but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RampartError {
        #expect(error.code.rawValue == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.status == status, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        if let fragment { #expect(error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("Expected \(code) but got \(error)", sourceLocation: sourceLocation)
    }
}

extension APIClient {
    /// Sends raw bytes with the cached token, returning the decoded error body if it fails.
    func raw(_ method: Method, _ path: String, _ text: String?) async throws -> RawResponse {
        try await send(method, path, rawBody: text.map { Array($0.utf8) })
    }
}
