/// Validation of user-visible names (tenants, products, device groups).
public enum Name {
    /// The longest name accepted, as in Azure Sphere.
    public static let maximumLength = 50

    /// Returns the name trimmed of surrounding spaces if it is valid.
    ///
    /// Letters, digits, spaces, `-` and `_` are allowed, 1 to 50 characters.
    /// - Throws: ``RampartError`` `invalidName`.
    public static func validated(_ name: String, what: String = "name") throws -> String {
        let trimmed = name.trimmingSpaces
        guard !trimmed.isEmpty else {
            throw RampartError(.invalidName, "The \(what) is empty. Give 1 to \(maximumLength) characters.")
        }
        guard trimmed.count <= maximumLength else {
            throw RampartError(
                .invalidName, "The \(what) is \(trimmed.count) characters long; at most \(maximumLength) are allowed.")
        }
        let allowed = trimmed.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII
                && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                    || scalar == " " || scalar == "-" || scalar == "_")
        }
        guard allowed else {
            throw RampartError(
                .invalidName, "The \(what) '\(trimmed)' has invalid characters. Use letters, digits, spaces, '-' and '_'.")
        }
        return trimmed
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
