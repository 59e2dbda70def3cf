import Foundation
import RampartCore
import RampartDevice
import TOMLKit

extension GatewayConfiguration {
    /// Reads `gateway.toml`. Relative paths are taken from the file's directory.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` naming the file, line and key for a syntax error,
    ///   an unknown key, a value of the wrong type or a route that does not parse.
    public static func load(file: String) throws -> GatewayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot read the gateway configuration \(file): \(error.localizedDescription)")
        }
        return try parse(text, file: file)
    }

    /// Parses configuration text; `file` names it in errors and anchors relative paths.
    public static func parse(_ text: String, file: String) throws -> GatewayConfiguration {
        let root = try TOMLReader.parse(text, file: file)
        let reader = TOMLReader(file: file, base: URL(fileURLWithPath: file).deletingLastPathComponent())
        var config = GatewayConfiguration()
        try reader.allow(root, ["listener", "trust", "identity", "children", "store", "upstream", "routes", "metrics"], in: "")

        if let table = try reader.table(root, "listener") {
            try reader.allow(table, ["host", "port", "certificate", "private_key"], in: "listener")
            config.listener.host = try reader.string(table, "host", in: "listener") ?? config.listener.host
            config.listener.port = try reader.port(table, "port", in: "listener") ?? config.listener.port
            config.listener.certificate = try reader.path(table, "certificate", in: "listener") ?? reader.resolve(config.listener.certificate)
            config.listener.privateKey = try reader.path(table, "private_key", in: "listener") ?? reader.resolve(config.listener.privateKey)
        } else {
            config.listener.certificate = reader.resolve(config.listener.certificate)
            config.listener.privateKey = reader.resolve(config.listener.privateKey)
        }
        config.trust.bundle = reader.resolve(config.trust.bundle)
        if let table = try reader.table(root, "trust") {
            try reader.allow(table, ["bundle", "refresh_from_server", "refresh_seconds"], in: "trust")
            config.trust.bundle = try reader.path(table, "bundle", in: "trust") ?? config.trust.bundle
            config.trust.refreshFromServer = try reader.bool(table, "refresh_from_server", in: "trust") ?? false
            if let seconds = try reader.int(table, "refresh_seconds", in: "trust") {
                guard seconds >= 10 else { throw reader.invalid("trust.refresh_seconds", "must be at least 10") }
                config.trust.refreshSeconds = seconds
            }
        }
        if let table = try reader.table(root, "identity") {
            try reader.allow(table, ["device_id", "device_state", "server", "tenant"], in: "identity")
            config.identity.deviceID = try reader.string(table, "device_id", in: "identity")
            config.identity.deviceState = try reader.path(table, "device_state", in: "identity")
            config.identity.server = try reader.string(table, "server", in: "identity")
            config.identity.tenant = try reader.string(table, "tenant", in: "identity")
        }
        if let table = try reader.table(root, "children") {
            try reader.allow(table, ["policy", "forwarders", "registered"], in: "children")
            config.forwarders = try reader.strings(table, "forwarders", in: "children") ?? []
            config.registeredChildren = try reader.strings(table, "registered", in: "children") ?? []
            if let policy = try reader.string(table, "policy", in: "children") {
                guard let parsed = ChildPolicy(rawValue: policy) else {
                    throw reader.invalid("children.policy", "must be \"any\" or \"registered\", not \"\(policy)\"")
                }
                config.children = parsed
            }
        }
        config.store.directory = reader.resolve(config.store.directory)
        if let table = try reader.table(root, "store") {
            try reader.allow(table, ["directory", "max_bytes", "ttl_seconds"], in: "store")
            config.store.directory = try reader.path(table, "directory", in: "store") ?? config.store.directory
            if let bytes = try reader.int(table, "max_bytes", in: "store") {
                guard bytes >= 1 << 16 else { throw reader.invalid("store.max_bytes", "must be at least 65536") }
                config.store.maximumBytes = bytes
            }
            config.store.defaultTimeToLiveSeconds = try reader.int(table, "ttl_seconds", in: "store") ?? config.store.defaultTimeToLiveSeconds
        }
        if let table = try reader.table(root, "upstream") {
            try reader.allow(table, ["url", "certificate", "private_key", "ca", "client_id", "protocol_version", "in_flight"], in: "upstream")
            guard let url = try reader.string(table, "url", in: "upstream") else {
                throw reader.invalid("upstream.url", "is required in [upstream] (mqtts://host:port); remove [upstream] for the hub role")
            }
            var upstream = Upstream(url: url)
            upstream.certificate = try reader.path(table, "certificate", in: "upstream")
            upstream.privateKey = try reader.path(table, "private_key", in: "upstream")
            upstream.ca = try reader.path(table, "ca", in: "upstream")
            upstream.clientID = try reader.string(table, "client_id", in: "upstream")
            if let version = try reader.int(table, "protocol_version", in: "upstream") {
                guard version == 4 || version == 5 else { throw reader.invalid("upstream.protocol_version", "must be 4 (MQTT 3.1.1) or 5") }
                upstream.protocolVersion = version
            }
            if let inFlight = try reader.int(table, "in_flight", in: "upstream") {
                guard (1...65535).contains(inFlight) else { throw reader.invalid("upstream.in_flight", "must be 1 to 65535") }
                upstream.inFlight = inFlight
            }
            config.upstream = upstream
        }
        if let value = root["routes"] {
            guard let array = value.array else { throw reader.invalid("routes", "must be an array of tables: [[routes]]") }
            config.routes = []
            for (index, element) in array.enumerated() {
                let where_ = "routes[\(index)]"
                guard let table = element.table else { throw reader.invalid(where_, "must be a table with name and query") }
                try reader.allow(table, ["name", "query", "priority", "ttl_seconds"], in: where_)
                guard let query = try reader.string(table, "query", in: where_) else { throw reader.invalid("\(where_).query", "is required") }
                var route = Route(name: try reader.string(table, "name", in: where_) ?? "route\(index + 1)", query: query)
                if let priority = try reader.int(table, "priority", in: where_) {
                    guard (0...9).contains(priority) else { throw reader.invalid("\(where_).priority", "must be 0 (highest) to 9") }
                    route.priority = priority
                }
                route.timeToLiveSeconds = try reader.int(table, "ttl_seconds", in: where_)
                config.routes.append(route)
            }
        }
        if let table = try reader.table(root, "metrics") {
            try reader.allow(table, ["host", "port"], in: "metrics")
            config.metrics.host = try reader.string(table, "host", in: "metrics") ?? config.metrics.host
            if let port = try reader.int(table, "port", in: "metrics") {
                guard (0...65535).contains(port) else { throw reader.invalid("metrics.port", "must be 0 (off) to 65535") }
                config.metrics.port = port
            }
        }
        return config
    }
}
