import ArgumentParser
import Foundation
import RampartCore

/// `rampart tenant …`.
struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "Create, list, select and update tenants; read their audit log.",
        subcommands: [
            Create.self, List.self, Select.self, ShowSelected.self, Update.self, Audit.self, RuntimeAllowCommand.self,
            DownloadErrorReportCommand.self, TenantTUFCommand.self, SigningKeyCommand.self,
        ])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant (server administrators only).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The tenant name: letters, digits, spaces, '-' and '_', up to 50.") var name: String

        func run() async throws {
            try await global.withClient { client, profile in
                let tenant = try await client.json(TenantInfo.self, .POST, "/v1/tenants", body: TenantNameRequest(name: name))
                var profile = profile
                if profile.tenant == nil {
                    profile.tenant = tenant.id
                    try profile.save()
                }
                try TenantCommand.show([tenant], global.output, single: true)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenants you have a role in.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(TenantList.self, .GET, "/v1/tenants")
                try Printer.output(list, as: global.output, headers: ["ID", "Name", "Role", "Selected"]) {
                    list.tenants.map { [$0.id.description, $0.name, $0.role.rawValue, $0.id == profile.tenant ? "*" : ""] }
                }
            }
        }
    }

    struct Select: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Select the tenant later commands act on.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            guard let text = global.tenant else {
                throw RampartError.invalidRequest("Pass --tenant ID (see 'rampart tenant list').")
            }
            let id = try RampartID(parsing: text, field: "--tenant")
            try await global.withClient { client, profile in
                let tenant = try await client.json(TenantInfo.self, .GET, "/v1/tenants/\(id)")
                var profile = profile
                profile.tenant = tenant.id
                try profile.save()
                try TenantCommand.show([tenant], global.output, single: true)
            }
        }
    }

    struct ShowSelected: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show-selected", abstract: "Show the selected tenant.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let tenant = try await client.json(TenantInfo.self, .GET, "/v1/tenants/\(try global.tenantID(profile))")
                try TenantCommand.show([tenant], global.output, single: true)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename the selected tenant (Contributor or above).")
        @OptionGroup var global: GlobalOptions
        @Option(name: [.customLong("new-name"), .customLong("name")], help: "The new name.") var newName: String

        func run() async throws {
            try await global.withClient { client, profile in
                let tenant = try await client.json(
                    TenantInfo.self, .PATCH, "/v1/tenants/\(try global.tenantID(profile))",
                    body: TenantNameRequest(name: newName))
                try TenantCommand.show([tenant], global.output, single: true)
            }
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read the tenant's audit log.", subcommands: [AuditList.self])
    }

    struct AuditList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List audit events, oldest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only events at or after this RFC 3339 time, e.g. 2026-11-21T08:00:00Z.") var since: String?
        @Option(help: "At most this many events (1–1000).") var limit: Int = 100

        func run() async throws {
            var query = "?limit=\(limit)"
            if let since {
                guard Timestamp.parse(since) != nil else {
                    throw RampartError.invalidRequest("--since must be an RFC 3339 time, e.g. 2026-11-21T08:00:00Z.")
                }
                query += "&since=\(since.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? since)"
            }
            try await global.withClient { client, profile in
                let list = try await client.json(
                    RampartCore.AuditList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/audit\(query)")
                try Printer.output(list, as: global.output, headers: ["Time", "Actor", "Action", "Target", "Result"]) {
                    list.events.map { [Timestamp.format($0.time), $0.actor, $0.action, $0.target, $0.result] }
                }
            }
        }
    }

    static func show(_ tenants: [TenantInfo], _ format: OutputFormat, single: Bool) throws {
        if single, format == .json, let tenant = tenants.first { return try Printer.json(tenant) }
        Printer.table(["ID", "Name", "Role", "Created"], tenants.map {
            [$0.id.description, $0.name, $0.role.rawValue, Timestamp.format($0.createdAt)]
        })
    }
}

/// `rampart role …`.
struct RoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Manage who has which role in the selected tenant.",
        subcommands: [Add.self, List.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a user a role; prints an invitation when they have not registered yet.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The user's email.") var email: String
        @Option(help: "Administrator, Contributor or Reader.") var role: String

        func run() async throws {
            let role = try Role(parsing: role)
            try await global.withClient { client, profile in
                let grant = try await client.json(
                    RoleGrant.self, .POST, "/v1/tenants/\(try global.tenantID(profile))/roles",
                    body: RoleAddRequest(email: email, role: role))
                if global.output == .json { return try Printer.json(grant) }
                if let invitation = grant.invitation {
                    print("\(grant.email) is invited as \(grant.role.rawValue) until \(Timestamp.format(grant.expiresAt ?? Date())).")
                    print("Give them this invitation (single use):")
                    print("Invitation: \(invitation)")
                    print("They run: rampart register-user --server \(client.baseURL.absoluteString) --invitation <invitation>")
                } else {
                    print("\(grant.email) is now \(grant.role.rawValue).")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and open invitations with their roles.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withClient { client, profile in
                let list = try await client.json(RoleList.self, .GET, "/v1/tenants/\(try global.tenantID(profile))/roles")
                try Printer.output(list, as: global.output, headers: ["Email", "Role", "Status", "User ID"]) {
                    list.roles.map { [$0.email, $0.role.rawValue, $0.status.rawValue, $0.userId?.description ?? ""] }
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user's role, or withdraw an invitation.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The user's email.") var email: String
        @Option(help: "The role to remove.") var role: String

        func run() async throws {
            let role = try Role(parsing: role)
            let encoded = email.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? email
            try await global.withClient { client, profile in
                _ = try await client.send(
                    .DELETE, "/v1/tenants/\(try global.tenantID(profile))/roles/\(encoded)/\(role.rawValue)")
                print("Removed \(role.rawValue) from \(email).")
            }
        }
    }
}
