import Foundation

/// A UUID identifier (tenant, user, CA, audit event…) that is always written in lowercase, as the wire
/// format requires. Swift's own `UUID` encodes in uppercase.
public struct RampartID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The underlying UUID.
    public let uuid: UUID

    /// A new random identifier.
    public init() { uuid = UUID() }

    /// Wraps a UUID.
    public init(_ uuid: UUID) { self.uuid = uuid }

    /// Parses an identifier; `nil` when the text is not a UUID.
    public init?(_ text: String) {
        guard let uuid = UUID(uuidString: text) else { return nil }
        self.uuid = uuid
    }

    /// Parses an identifier.
    ///
    /// - Throws: ``RampartError`` `invalidRequest` naming the field.
    public init(parsing text: String, field: String) throws {
        guard let id = RampartID(text) else {
            throw RampartError.invalidRequest("The \(field) '\(text.prefix(80))' is not a UUID.")
        }
        self = id
    }

    public var description: String { uuid.uuidString.lowercased() }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = RampartID(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not a UUID")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: RampartID, rhs: RampartID) -> Bool { lhs.description < rhs.description }
}
