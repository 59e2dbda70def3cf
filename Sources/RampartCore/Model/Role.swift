/// A user's role in one tenant, as in Azure Sphere.
///
/// - ``administrator`` does everything, including managing users.
/// - ``contributor`` creates and changes, never deletes.
/// - ``reader`` only reads.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    case reader = "Reader"
    case contributor = "Contributor"
    case administrator = "Administrator"

    /// Parses a role name case-insensitively.
    ///
    /// - Throws: ``RampartError`` `invalidRequest` naming the accepted roles.
    public init(parsing text: String) throws {
        guard let role = Role.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
            throw RampartError.invalidRequest(
                "Unknown role '\(text)'. Use one of: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        self = role
    }

    private var rank: Int {
        switch self {
        case .reader: 0
        case .contributor: 1
        case .administrator: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// What a request does, which decides the lowest role that may do it.
public enum Permission: Sendable {
    case read
    case create
    case update
    case delete
    case manageUsers

    /// The lowest role that holds this permission.
    public var minimumRole: Role {
        switch self {
        case .read: .reader
        case .create, .update: .contributor
        case .delete, .manageUsers: .administrator
        }
    }
}
