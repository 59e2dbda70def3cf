import Testing

@testable import RampartGateway

@Suite struct RouteStatementTests {
    @Test func referenceExampleSelectsDeviceMessagesButNotModuleMessages() throws {
        let route = try RouteStatement.parse(
            "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream")
        #expect(route.source == "/messages/")
        #expect(route.sink == .upstream)
        #expect(route.matches(RouteTestSupport.deviceMessage()))
        let moduleMessage = RouteMessage(
            sourcePath: "/messages/modules/filter/outputs/out1",
            systemProperties: ["connectionDeviceId": "edge-1", "connectionModuleId": "filter"])
        #expect(!route.matches(moduleMessage))
    }

    @Test func keywordsIgnoreCaseAndSelectStarIsAccepted() throws {
        let route = try RouteStatement.parse(
            "select * from /Messages/* where not is_defined($connectionModuleId) into $UPSTREAM")
        #expect(route.source == "/messages/")
        #expect(route.sink == .upstream)
        #expect(route.matches(RouteTestSupport.deviceMessage()))
    }

    @Test func routeWithoutWhereTakesEveryMessageFromItsSource() throws {
        let route = try RouteStatement.parse(
            "FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO $upstream")
        #expect(route.condition == nil)
        #expect(route.matches(RouteMessage(sourcePath: "/messages/modules/tempSensor/outputs/temperatureOutput")))
        #expect(!route.matches(RouteMessage(sourcePath: "/messages/modules/tempSensor/outputs/other")))
    }

    @Test func routesMaySpanLines() throws {
        let route = try RouteStatement.parse(
            """
            FROM /messages/*
            WHERE processingPath = 'hot'
              AND $contentEncoding = 'utf-8'
            INTO BrokeredEndpoint("/modules/filter/inputs/input1")
            """)
        #expect(route.sink == .brokeredEndpoint(module: "filter", input: "input1"))
        let hot = RouteTestSupport.deviceMessage(app: ["processingPath": "hot"], system: ["contentEncoding": "utf-8"])
        #expect(route.matches(hot))
        #expect(!route.matches(RouteTestSupport.deviceMessage(app: ["processingPath": "cold"])))
    }

    @Test(arguments: [
        ("/messages/*", "/messages/"),
        ("/*", "/"),
        ("/messages/", "/messages/"),
        ("/messages", "/messages/"),
        ("/messages/modules/Filter/outputs/*", "/messages/modules/filter/outputs/"),
        ("/messages/modules/m/outputs/o", "/messages/modules/m/outputs/o/"),
        ("/twinChangeNotifications", "/twinchangenotifications/"),
    ])
    func sourceIsNormalised(written: String, normalised: String) throws {
        let route = try RouteStatement.parse("FROM \(written) INTO $upstream")
        #expect(route.source == normalised)
        #expect(RouteStatement.normalizedSource(normalised) == normalised)
    }

    @Test(arguments: [
        ("/*", "/messages/", true),
        ("/*", "/twinChangeNotifications", true),
        ("/messages/*", "/messages/", true),
        ("/messages/*", "/messages/modules/m/outputs/o", true),
        ("/messages/*", "/twinChangeNotifications", false),
        ("/messages/modules/*", "/messages/", false),
        ("/messages/modules/*", "/messages/modules/m/outputs/o", true),
        ("/messages/modules/M/*", "/messages/modules/m/outputs/o", true),
        ("/MESSAGES/MODULES/m/OUTPUTS/*", "/messages/modules/m/outputs/o", true),
        ("/messages/modules/m/outputs/*", "/messages/modules/m2/outputs/o", false),
        ("/messages/modules/m/outputs/o", "/messages/modules/m/outputs/o", true),
        ("/messages/modules/m/outputs/o", "/messages/modules/m/outputs/o2", false),
        ("/messages/modules/m/outputs/o/", "/messages/modules/m/outputs/o", true),
        ("/twinChangeNotifications", "/twinChangeNotifications", true),
        ("/twinchangenotifications", "/twinChangeNotifications", true),
        ("/twinChangeNotifications", "/messages/", false),
    ])
    func sourceMatchesAsCaseInsensitivePrefix(source: String, path: String, expected: Bool) throws {
        let route = try RouteStatement.parse("FROM \(source) INTO $upstream")
        #expect(route.matchesSource(path) == expected)
        #expect(route.matches(RouteMessage(sourcePath: path)) == expected)
    }

    @Test(arguments: [
        ("$upstream", RouteSink.upstream, "$upstream"),
        ("$Upstream", .upstream, "$upstream"),
        (
            "BrokeredEndpoint(\"/modules/filter/inputs/input1\")", .brokeredEndpoint(module: "filter", input: "input1"),
            "BrokeredEndpoint(\"/modules/filter/inputs/input1\")"
        ),
        (
            "brokeredendpoint('/modules/a-b/inputs/in')", .brokeredEndpoint(module: "a-b", input: "in"),
            "BrokeredEndpoint(\"/modules/a-b/inputs/in\")"
        ),
    ])
    func sinksParse(written: String, sink: RouteSink, description: String) throws {
        let route = try RouteStatement.parse("FROM /* INTO \(written)")
        #expect(route.sink == sink)
        #expect(route.sink.description == description)
    }

    @Test func onlyExactlyTrueRoutes() throws {
        let message = RouteTestSupport.jsonMessage(#"{"flag": null, "yes": true, "no": false, "text": "true"}"#)
        for (condition, routes) in [
            ("$body.yes", true), ("$body.no", false), ("$body.flag", false), ("$body.text", false),
            ("$body.missing", false), ("undefined ?? true", true), ("$body.missing = 1", false),
        ] {
            let route = try RouteStatement.parse("FROM /* WHERE \(condition) INTO $upstream")
            #expect(route.matches(message) == routes, "\(condition)")
        }
    }

    @Test func parsedConditionHasTheExpectedTree() throws {
        let route = try RouteStatement.parse(
            "FROM /* WHERE NOT is_defined({$connectionModuleId}) AND $body.a[1].b >= -2 INTO $upstream")
        let expected: RouteExpression = .binary(
            .and,
            .unary(.not, .call(.isDefined, [.systemProperty("connectionModuleId", escaped: true)])),
            .binary(
                .greaterOrEqual,
                .body(
                    RouteBodyPath(components: [.member("a"), .index(1), .member("b")], spelling: "body.a[1].b"),
                    escaped: false),
                .literal(.number(-2))))
        #expect(route.condition == expected)
    }

    @Test func statementsBuiltInCodeNormaliseTheirSource() {
        let route = RouteStatement(source: "/Messages/*", sink: .upstream)
        #expect(route.source == "/messages/")
        #expect(route.matches(RouteTestSupport.deviceMessage()))
    }
}
