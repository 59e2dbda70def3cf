import Testing

@testable import RampartGateway

/// Shared set-up for the route tests, so that no test file repeats it.
enum RouteTestSupport {
    /// A device telemetry message from `device-1`.
    static func deviceMessage(
        app: [String: String] = [:], system: [String: String] = [:], body: [UInt8] = []
    ) -> RouteMessage {
        var system = system
        system["connectionDeviceId"] = system["connectionDeviceId"] ?? "device-1"
        return RouteMessage(sourcePath: "/messages/", systemProperties: system, applicationProperties: app, body: body)
    }

    /// A device message with a UTF-8 JSON body.
    static func jsonMessage(_ json: String, app: [String: String] = [:]) -> RouteMessage {
        deviceMessage(
            app: app, system: ["contentType": "application/json", "contentEncoding": "utf-8"], body: Array(json.utf8))
    }

    /// Parses `text` as one expression of any type and evaluates it.
    static func value(_ text: String, _ message: RouteMessage = deviceMessage()) throws -> RouteValue {
        try RouteParser.expression(text).evaluate(message)
    }

    /// The error a route fails with, or nil when it parses.
    static func parseError(_ text: String) -> RouteError? {
        do {
            _ = try RouteStatement.parse(text)
            return nil
        } catch {
            return error
        }
    }
}
