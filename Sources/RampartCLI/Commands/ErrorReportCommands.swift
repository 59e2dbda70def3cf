import ArgumentParser
import Foundation
import RampartCore
import RampartPKI

/// The error report's filters, shared by `tenant download-error-report` and `device error list`.
struct ErrorReportFilterOptions: ParsableArguments {
    @Option(name: [.customLong("event-class"), .customLong("class")], help: "Only events of this class, e.g. appTrap or Attestation.")
    var eventClass: String?
    @Option(help: "Only events that last happened at or after this RFC 3339 time, e.g. 2026-11-21T08:00:00Z.")
    var from: String?
    @Option(help: "Only events that first happened before this RFC 3339 time.")
    var to: String?

    func validate() throws {
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, Timestamp.parse(value) == nil {
                throw ValidationError("\(name) must be an RFC 3339 time, e.g. 2026-11-21T08:00:00Z.")
            }
        }
        if let from = from.flatMap(Timestamp.parse), let to = to.flatMap(Timestamp.parse), from >= to {
            throw ValidationError("--from must be before --to.")
        }
    }

    /// The query string for `GET /v1/tenants/{id}/error-report`, starting with `?`.
    func query(format: String, deviceID: String?, limit: Int?) throws -> String {
        func encoded(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
        }
        var query = "?format=\(format)"
        if let deviceID { query += "&deviceId=\(try DeviceID.validated(deviceID))" }
        if let eventClass { query += "&eventClass=\(encoded(eventClass))" }
        if let from { query += "&from=\(encoded(from))" }
        if let to { query += "&to=\(encoded(to))" }
        if let limit { query += "&limit=\(limit)" }
        return query
    }
}

/// `rampart tenant download-error-report`.
struct DownloadErrorReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download-error-report",
        abstract: "Download the tenant's error report (device ID, event type, class, count, description, start, end, component).",
        discussion: """
            Attestation refusals the server saw, and what devices report themselves: app traps, exits and quota \
            faults, failed updates. CSV by default; JSON with --output json.
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Where to write it.") var destination: String
    @Option(help: "Only this device's events.") var deviceId: String?
    @OptionGroup var filter: ErrorReportFilterOptions
    @Option(help: "Only the newest this many events (1 to 100000); all by default.") var limit: Int?

    func validate() throws {
        if let limit, !(1...100_000).contains(limit) { throw ValidationError("--limit must be 1 to 100000.") }
    }

    func run() async throws {
        let path = try filter.query(format: global.output == .json ? "json" : "csv", deviceID: deviceId, limit: limit)
        try await global.withClient { client, profile in
            let raw = try await client.send(.GET, "/v1/tenants/\(try global.tenantID(profile))/error-report\(path)")
            try Download.write(raw.body, to: destination)
        }
    }
}

/// `rampart device error …`.
struct DeviceErrorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "error", abstract: "Read the errors a device reported and the attestation refusals the server saw.",
        subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a device's error events, most recent last; repeats are folded into a count.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String
        @OptionGroup var filter: ErrorReportFilterOptions
        @Option(help: "At most this many, the newest (1 to 100000).") var limit = 100

        func validate() throws {
            guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be 1 to 100000.") }
        }

        func run() async throws {
            let path = try filter.query(format: "json", deviceID: deviceId, limit: limit)
            try await global.withClient { client, profile in
                let report = try await client.json(
                    ErrorReport.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/error-report\(path)")
                try Printer.output(report, as: global.output, headers: ["Last", "First", "Class", "Count", "Component", "Description"]) {
                    report.events.map {
                        [Timestamp.format($0.endTimestamp), Timestamp.format($0.startTimestamp), $0.eventClass, String($0.eventCount),
                         $0.componentId ?? "", Self.oneLine($0.description)]
                    }
                }
            }
        }

        /// A description on one table line: line breaks and tabs as spaces, at most 200 characters.
        static func oneLine(_ text: String) -> String {
            let flat = String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
            return flat.count > 200 ? String(flat.prefix(199)) + "…" : flat
        }
    }
}
