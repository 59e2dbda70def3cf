import Foundation
import RampartCore
import TOMLKit

/// Typed access to TOML tables with errors that name the file and key.
package struct TOMLReader {
    package let file: String
    package let base: URL

    package init(file: String, base: URL) {
        self.file = file
        self.base = base
    }

    /// Parses TOML text; a syntax error names the file, line and column.
    package static func parse(_ text: String, file: String) throws -> TOMLTable {
        do {
            return try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw RampartError(
                .configurationInvalid,
                "\(file):\(error.source.begin.line):\(error.source.begin.column): \(error.description)")
        }
    }

    package func invalid(_ key: String, _ problem: String) -> RampartError {
        RampartError(.configurationInvalid, "\(file): \(key) \(problem).")
    }

    package func allow(_ table: TOMLTable, _ keys: Set<String>, in section: String) throws {
        for key in table.keys where !keys.contains(key) {
            let name = section.isEmpty ? key : "\(section).\(key)"
            throw invalid(name, "is not a known setting (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    package func table(_ table: TOMLTable, _ key: String) throws -> TOMLTable? {
        guard let value = table[key] else { return nil }
        guard let result = value.table else { throw invalid(key, "must be a table: [\(key)]") }
        return result
    }

    package func string(_ table: TOMLTable, _ key: String, in section: String) throws -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw invalid("\(section).\(key)", "must be a string") }
        return string
    }

    package func int(_ table: TOMLTable, _ key: String, in section: String) throws -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw invalid("\(section).\(key)", "must be an integer") }
        return int
    }

    package func strings(_ table: TOMLTable, _ key: String, in section: String) throws -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw invalid("\(section).\(key)", "must be an array of strings") }
        let strings = array.compactMap(\.string)
        guard strings.count == array.count else { throw invalid("\(section).\(key)", "must be an array of strings") }
        return strings
    }

    package func bool(_ table: TOMLTable, _ key: String, in section: String) throws -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw invalid("\(section).\(key)", "must be true or false") }
        return bool
    }

    package func port(_ table: TOMLTable, _ key: String, in section: String) throws -> Int? {
        guard let port = try int(table, key, in: section) else { return nil }
        guard (0...65535).contains(port) else { throw invalid("\(section).\(key)", "must be 0 to 65535") }
        return port
    }

    package func path(_ table: TOMLTable, _ key: String, in section: String) throws -> String? {
        try string(table, key, in: section).map(resolve)
    }

    package func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path
    }
}
