import Testing

@testable import RampartGateway

@Suite struct RoutePropertyTests {
    @Test func bareNamesAreApplicationPropertiesMatchedIgnoringCase() throws {
        let message = RouteTestSupport.deviceMessage(app: ["Severity": "high", "processing-path": "hot"])
        #expect(try RouteTestSupport.value("severity", message) == .string("high"))
        #expect(try RouteTestSupport.value("SEVERITY = 'high'", message) == .bool(true))
        #expect(try RouteTestSupport.value("processing-path = 'hot'", message) == .bool(true))
        #expect(try RouteTestSupport.value("missing", message) == .undefined)
    }

    @Test func dollarNamesAreSystemPropertiesMatchedIgnoringCase() throws {
        let message = RouteTestSupport.deviceMessage(
            system: ["contentEncoding": "utf-8", "iothub-creation-time-utc": "2024-01-01T00:00:00Z"])
        #expect(try RouteTestSupport.value("$contentEncoding = 'utf-8'", message) == .bool(true))
        #expect(try RouteTestSupport.value("$CONNECTIONDEVICEID", message) == .string("device-1"))
        #expect(try RouteTestSupport.value("$iothub-creation-time-utc", message) == .string("2024-01-01T00:00:00Z"))
        #expect(try RouteTestSupport.value("$connectionModuleId", message) == .undefined)
    }

    /// edgeHub reads an application property literally named `$name` before the system property; `{$name}` skips it.
    @Test func applicationPropertyNamedWithDollarWinsUnlessEscaped() throws {
        let message = RouteTestSupport.deviceMessage(app: ["$connectionDeviceId": "spoofed"])
        #expect(try RouteTestSupport.value("$connectionDeviceId", message) == .string("spoofed"))
        #expect(try RouteTestSupport.value("{$connectionDeviceId}", message) == .string("device-1"))
        #expect(try RouteTestSupport.value("{ $connectionDeviceId }", message) == .string("device-1"))
    }

    /// Properties are strings, so comparing one with a number is refused when the route is parsed rather than
    /// silently never matching; `as_number` converts. edgeHub refuses the same route with "Invalid operands".
    @Test func numericComparisonOfAPropertyNeedsAsNumber() throws {
        let error = try #require(RouteTestSupport.parseError("FROM /* WHERE temperature > 50 INTO $upstream"))
        #expect(error.code == .typeMismatch)
        #expect(error.column == 27)
        #expect(error.message.contains("as_number"))

        let route = try RouteStatement.parse("FROM /* WHERE as_number(temperature) > 50 INTO $upstream")
        #expect(route.matches(RouteTestSupport.deviceMessage(app: ["temperature": "72.5"])))
        #expect(!route.matches(RouteTestSupport.deviceMessage(app: ["temperature": "12"])))
        #expect(!route.matches(RouteTestSupport.deviceMessage(app: ["temperature": "hot"])))
        #expect(!route.matches(RouteTestSupport.deviceMessage()))

        let lexical = try RouteStatement.parse("FROM /* WHERE temperature > '50' INTO $upstream")
        #expect(!lexical.matches(RouteTestSupport.deviceMessage(app: ["temperature": "100"])))
    }

    @Test func twinChangeNotificationsRouteOnTheirBody() throws {
        let route = try RouteStatement.parse(
            "FROM /twinChangeNotifications WHERE $body.properties.desired.telemetryConfig.sendFrequency > 10 "
                + "INTO BrokeredEndpoint(\"/modules/config/inputs/twin\")")
        let twin = RouteMessage(
            sourcePath: "/twinChangeNotifications",
            systemProperties: ["contentType": "application/json", "contentEncoding": "utf-8"],
            body: Array(#"{"properties": {"desired": {"telemetryConfig": {"sendFrequency": 30}}}}"#.utf8))
        #expect(route.matches(twin))
        var telemetry = twin
        telemetry.sourcePath = "/messages/"
        #expect(!route.matches(telemetry))
    }
}
