import Testing

@testable import RampartGateway

@Suite struct RouteBodyTests {
    /// The body from the IoT Hub routing query documentation.
    static let weather = #"""
        {"Weather": {"Temperature": 50, "Time": "2017-03-09T00:00:00.000Z", "PrevTemperatures": [20, 30, 40],
         "IsEnabled": true, "Nothing": null,
         "Location": {"Street": "One Microsoft Way", "City": "Redmond", "State": "WA"},
         "HistoricalData": [{"Month": "Feb", "Temperature": 40}, {"Month": "Jan", "Temperature": 30}]}}
        """#

    @Test(arguments: [
        ("$body.Weather.Temperature", RouteValue.number(50)),
        ("$body.Weather.HistoricalData[0].Month", .string("Feb")),
        ("$body.Weather.HistoricalData[1].Temperature", .number(30)),
        ("$body.Weather.PrevTemperatures[2]", .number(40)),
        ("$body.Weather.IsEnabled", .bool(true)),
        ("$body.Weather.Nothing", .null),
        ("$BODY.Weather.Temperature", .number(50)),
        ("$body.Weather.Location", .undefined),
        ("$body.Weather.PrevTemperatures", .undefined),
        ("$body.Weather.Missing", .undefined),
        ("$body.Weather.PrevTemperatures[3]", .undefined),
        ("$body.Weather.Temperature[0]", .undefined),
        ("$body.weather.temperature", .undefined),
        ("length($body.Weather.Location.State) = 2", .bool(true)),
        ("$body.Weather.Temperature = 50 AND $body.Weather.IsEnabled", .bool(true)),
    ])
    func pathsReadJSONBodies(expression: String, expected: RouteValue) throws {
        #expect(try RouteTestSupport.value(expression, RouteTestSupport.jsonMessage(Self.weather)) == expected)
    }

    @Test(arguments: [
        (["contentType": "application/json", "contentEncoding": "utf-8"], RouteValue.number(1)),
        (["contenttype": "Application/JSON", "CONTENTENCODING": "UTF-8"], .number(1)),
        (["contentType": "text/plain", "contentEncoding": "utf-8"], .undefined),
        (["contentType": "application/json; charset=utf-8", "contentEncoding": "utf-8"], .undefined),
        (["contentType": "application/json"], .undefined),
        (["contentEncoding": "utf-8"], .undefined),
        (["contentType": "application/json", "contentEncoding": "latin1"], .undefined),
        ([:], .undefined),
    ])
    func pathsNeedJSONContentTypeAndUnicodeEncoding(system: [String: String], expected: RouteValue) throws {
        let message = RouteTestSupport.deviceMessage(system: system, body: Array(#"{"a": 1}"#.utf8))
        #expect(try RouteTestSupport.value("$body.a", message) == expected)
    }

    @Test(arguments: [
        #"{"a": 1"#, #"{"a": 1} x"#, #"[{"a": 1}]"#, #"{"a": 01}"#, #"{'a': 1}"#, "", #"{"a": "\x"}"#,
    ])
    func malformedBodiesReadAsUndefined(json: String) throws {
        #expect(try RouteTestSupport.value("$body.a", RouteTestSupport.jsonMessage(json)) == .undefined)
    }

    @Test func invalidUTF8ReadsAsUndefined() throws {
        let message = RouteTestSupport.deviceMessage(
            system: ["contentType": "application/json", "contentEncoding": "utf-8"],
            body: Array(#"{"a": ""#.utf8) + [0xFF] + Array(#""}"#.utf8))
        #expect(try RouteTestSupport.value("$body.a", message) == .undefined)
    }

    @Test func jsonEscapesAndByteOrderMarkAreHandled() throws {
        let message = RouteTestSupport.deviceMessage(
            system: ["contentType": "application/json", "contentEncoding": "utf-8"],
            body: [0xEF, 0xBB, 0xBF] + Array(#"{"a": "\u00e9\n\ud83d\ude00\"", "b": -1.5e2}"#.utf8))
        #expect(try RouteTestSupport.value("$body.a", message) == .string("é\n😀\""))
        #expect(try RouteTestSupport.value("$body.b", message) == .number(-150))
    }

    @Test func utf16AndUTF32BodiesAreLittleEndian() throws {
        let json = #"{"city": "Zürich"}"#
        let utf16 = json.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let utf32 = json.unicodeScalars.flatMap { scalar in (0..<4).map { UInt8((scalar.value >> ($0 * 8)) & 0xFF) } }
        for (encoding, body) in [("utf-16", utf16), ("UTF-32", utf32)] {
            let message = RouteTestSupport.deviceMessage(
                system: ["contentType": "application/json", "contentEncoding": encoding], body: body)
            #expect(try RouteTestSupport.value("$body.city", message) == .string("Zürich"), "\(encoding)")
        }
    }

    @Test func deeplyNestedBodyReadsAsUndefinedWithoutExhaustingTheStack() throws {
        let json = #"{"a": "# + String(repeating: "[", count: 100_000) + "}"
        #expect(try RouteTestSupport.value("$body.a", RouteTestSupport.jsonMessage(json)) == .undefined)
        let deepButFine =
            #"{"a": "# + String(repeating: "[", count: 100)
            + String(repeating: "]", count: 100) + #", "b": 2}"#
        #expect(try RouteTestSupport.value("$body.b", RouteTestSupport.jsonMessage(deepButFine)) == .number(2))
    }

    /// `{$body}` has no `.`, so it is the system property `body`, as is `$body`.
    @Test func bracedBodyIsASystemProperty() throws {
        let message = RouteTestSupport.deviceMessage(system: ["body": "system value"])
        #expect(try RouteTestSupport.value("{$body}", message) == .string("system value"))
        #expect(try RouteTestSupport.value("$body", message) == .string("system value"))
        #expect(try RouteParser.expression("{$body}") == .systemProperty("body", escaped: true))
    }

    /// As in edgeHub, an application property spelled `$body.x` shadows the body path unless it is braced.
    @Test func applicationPropertyShadowsBodyPathUnlessBraced() throws {
        let message = RouteTestSupport.jsonMessage(#"{"x": 1}"#, app: ["$body.x": "shadow"])
        #expect(try RouteTestSupport.value("$body.x", message) == .string("shadow"))
        #expect(try RouteTestSupport.value("{$body.x}", message) == .number(1))
    }
}
