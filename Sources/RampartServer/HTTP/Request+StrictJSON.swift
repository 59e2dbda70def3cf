import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat
import RampartCore

extension Request {
    /// The whole body, refusing more than `limit` bytes.
    ///
    /// - Throws: ``RampartError`` `bodyTooLarge` (413).
    func collectBounded(limit: Int) async throws -> [UInt8] {
        var request = self
        do {
            return Array(buffer: try await request.collectBody(upTo: limit))
        } catch is NIOTooManyBytesError {
            throw RampartError(.bodyTooLarge, "The request body exceeds \(limit) bytes.", status: 413)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw RampartError(.bodyTooLarge, "The request body exceeds \(limit) bytes.", status: 413)
        }
    }

    /// Decodes a JSON body strictly: bounded in size, an object, no unknown fields, every field well typed.
    ///
    /// - Throws: ``RampartError`` `bodyTooLarge`, `malformedJSON`, `unknownField` or `invalidRequest`.
    func decodeStrict<T: APIRequest>(_ type: T.Type, limit: Int) async throws -> T {
        let data = Data(try await collectBounded(limit: limit))
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw RampartError(.malformedJSON, "The request body is not valid JSON.")
        }
        guard let dictionary = object as? [String: Any] else {
            throw RampartError(.malformedJSON, "The request body must be a JSON object.")
        }
        try Self.refuseUnknownKeys(of: dictionary, allowed: T.allowedKeys, path: "")
        for (key, allowed) in T.nestedAllowedKeys.sorted(by: { $0.key < $1.key }) {
            // Values of another shape are left to the decoder, which names the field and its type.
            if let object = dictionary[key] as? [String: Any] {
                try Self.refuseUnknownKeys(of: object, allowed: allowed, path: "\(key).")
            } else if let array = dictionary[key] as? [Any] {
                for case let (index, object as [String: Any]) in array.enumerated() {
                    try Self.refuseUnknownKeys(of: object, allowed: allowed, path: "\(key)[\(index)].")
                }
            }
        }
        do {
            return try JSONCoding.decoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw RampartError.invalidRequest("The field '\(key.stringValue)' is required.")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw RampartError.invalidRequest("The field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type.")
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw RampartError.invalidRequest("The field '\(field)' is invalid: \(context.debugDescription).")
        } catch {
            throw RampartError.invalidRequest("The request body does not match the expected shape.")
        }
    }
}

extension Request {
    /// - Throws: ``RampartError`` `unknownField`, naming the unknown keys under `path` and the allowed ones.
    fileprivate static func refuseUnknownKeys(of object: [String: Any], allowed: Set<String>, path: String) throws {
        let unknown = Set(object.keys).subtracting(allowed).sorted()
        guard !unknown.isEmpty else { return }
        let names = unknown.map { "'\(path)\($0.prefix(64))'" }.joined(separator: ", ")
        let scope = path.isEmpty ? "" : " in '\(path.dropLast())'"
        throw RampartError(
            .unknownField,
            "Unknown field\(unknown.count == 1 ? "" : "s") \(names). Allowed\(scope): "
                + "\(allowed.sorted().joined(separator: ", ")).")
    }
}

extension Parameters {
    /// A path parameter that must be a UUID; anything else is a 404, as an unknown object would be.
    func requireID(_ name: String, what: String) throws -> RampartID {
        guard let text = self.get(name), let id = RampartID(text) else {
            throw RampartError.notFound(what)
        }
        return id
    }

    /// A percent-decoded path parameter.
    func requireDecoded(_ name: String) throws -> String {
        guard let text = self.get(name), let decoded = text.removingPercentEncoding else {
            throw RampartError.invalidRequest("The path parameter '\(name)' is malformed.")
        }
        return decoded
    }
}

/// Builds non-JSON responses (certificates, PEM bundles, YAML).
enum FileResponse {
    static func make(_ bytes: [UInt8], contentType: String, filename: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: contentType]
        if let filename {
            headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A file answered whole, or the one byte range asked for (`Range: bytes=N-` or `bytes=N-M`), so that
    /// downloads resume after a cut.
    static func ranged(_ bytes: [UInt8], contentType: String, range: String?) -> Response {
        var headers: HTTPFields = [.contentType: contentType, .acceptRanges: "bytes"]
        guard let range, range.hasPrefix("bytes="), !range.contains(",") else {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        let bounds = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let start = Int(bounds[0]), start >= 0,
            bounds[1].isEmpty || Int(bounds[1]).map({ $0 >= start }) == true, start < bytes.count
        else {
            headers[.contentRange] = "bytes */\(bytes.count)"
            headers[.contentType] = "application/json"
            let body = Array(#"{"code":"rangeNotSatisfiable","message":"The requested range is outside the file."}"#.utf8)
            return Response(status: .rangeNotSatisfiable, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let end = min(bounds[1].isEmpty ? bytes.count - 1 : Int(bounds[1])!, bytes.count - 1)
        headers[.contentRange] = "bytes \(start)-\(end)/\(bytes.count)"
        return Response(status: .partialContent, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes[start...end])))
    }
}
