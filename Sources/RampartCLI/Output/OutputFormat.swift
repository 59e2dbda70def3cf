import ArgumentParser
import Foundation
import RampartCore

/// `--output json|table`.
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table
    case json
}

/// Prints results as JSON or as an aligned table.
enum Printer {
    static func json(_ value: some Encodable) throws {
        let data = try JSONCoding.encoder(pretty: true).encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// Prints `rows` under `headers`, each column as wide as its widest cell.
    static func table(_ headers: [String], _ rows: [[String]]) {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(headers))
        print(line(widths.map { String(repeating: "-", count: $0) }))
        for row in rows { print(line(row)) }
        if rows.isEmpty { print("(none)") }
    }

    static func output(
        _ value: some Encodable, as format: OutputFormat, headers: [String], rows: () -> [[String]]
    ) throws {
        switch format {
        case .json: try json(value)
        case .table: table(headers, rows())
        }
    }
}

/// Writes errors the way every command reports them: `code: message` on standard error.
enum ErrorReporter {
    static func report(_ error: RampartError) {
        FileHandle.standardError.write(Data("\(error.code): \(error.message)\n".utf8))
    }
}
