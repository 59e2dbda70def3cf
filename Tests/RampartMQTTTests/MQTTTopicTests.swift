import RampartMQTT
import Testing

@Suite("Topic names, topic filters and matching")
struct MQTTTopicTests {
    @Test("Valid topic names", arguments: ["a", "a/b", "/", "a//b", "$SYS/broker", "sport/tennis player1", "ü/€"])
    func validNames(_ name: String) throws {
        try MQTTTopic.validateName(name)
    }

    @Test("Invalid topic names", arguments: ["", "a/+", "#", "a/#", "a+b", "a\u{0}b"])
    func invalidNames(_ name: String) {
        let error = #expect(throws: MQTTProtocolError.self) { try MQTTTopic.validateName(name) }
        #expect(error?.reasonCode == .topicNameInvalid)
    }

    @Test("A topic name of 65535 bytes is valid and one of 65536 is not")
    func nameLength() throws {
        try MQTTTopic.validateName(String(repeating: "a", count: 65_535))
        #expect(throws: MQTTProtocolError(.topicNameInvalid, "")) {
            try MQTTTopic.validateName(String(repeating: "a", count: 65_536))
        }
    }

    @Test(
        "Valid topic filters",
        arguments: [
            "#", "+", "a/#", "a/+", "+/+", "+/a/#", "/+", "a//b", "$SYS/#", "$share/group/a/+", "$share/g/#",
            "$share", "$sharegroup/a",
        ]
    )
    func validFilters(_ filter: String) throws {
        try MQTTTopic.validateFilter(filter)
    }

    @Test(
        "Invalid topic filters",
        arguments: [
            "", "a#", "a/#/b", "#/a", "a/b#", "a+", "+a", "a/+b", "a\u{0}", "$share/", "$share/group", "$share//a",
            "$share/g+/a", "$share/g#/a", "$share/g/", "$share/g/a#",
        ]
    )
    func invalidFilters(_ filter: String) {
        let error = #expect(throws: MQTTProtocolError.self) { try MQTTTopic.validateFilter(filter) }
        #expect(error?.reasonCode == .topicFilterInvalid)
    }

    struct MatchCase: Sendable, CustomTestStringConvertible {
        var filter: String
        var topic: String
        var matches: Bool
        var testDescription: String { "'\(filter)' \(matches ? "matches" : "does not match") '\(topic)'" }
    }

    @Test(
        "Matching",
        arguments: [
            MatchCase(filter: "sport/tennis/player1", topic: "sport/tennis/player1", matches: true),
            MatchCase(filter: "sport/tennis/player1", topic: "sport/tennis/player2", matches: false),
            MatchCase(filter: "sport/tennis/player1/#", topic: "sport/tennis/player1", matches: true),
            MatchCase(filter: "sport/tennis/player1/#", topic: "sport/tennis/player1/ranking", matches: true),
            MatchCase(filter: "sport/tennis/player1/#", topic: "sport/tennis/player1/score/wimbledon", matches: true),
            MatchCase(filter: "sport/#", topic: "sport", matches: true),
            MatchCase(filter: "#", topic: "sport/tennis", matches: true),
            MatchCase(filter: "#", topic: "/", matches: true),
            MatchCase(filter: "sport/tennis/+", topic: "sport/tennis/player1", matches: true),
            MatchCase(filter: "sport/tennis/+", topic: "sport/tennis/player1/ranking", matches: false),
            MatchCase(filter: "sport/+", topic: "sport", matches: false),
            MatchCase(filter: "sport/+", topic: "sport/", matches: true),
            MatchCase(filter: "+/+", topic: "/finance", matches: true),
            MatchCase(filter: "/+", topic: "/finance", matches: true),
            MatchCase(filter: "+", topic: "/finance", matches: false),
            MatchCase(filter: "+/tennis/#", topic: "sport/tennis/player1", matches: true),
            MatchCase(filter: "a/b", topic: "a/b/c", matches: false),
            MatchCase(filter: "a/b/c", topic: "a/b", matches: false),
            MatchCase(filter: "A/b", topic: "a/b", matches: false),
            MatchCase(filter: "#", topic: "$SYS/broker", matches: false),
            MatchCase(filter: "+/monitor/Clients", topic: "$SYS/monitor/Clients", matches: false),
            MatchCase(filter: "$SYS/#", topic: "$SYS/monitor/Clients", matches: true),
            MatchCase(filter: "$SYS/monitor/+", topic: "$SYS/monitor/Clients", matches: true),
            MatchCase(filter: "$share/group/sport/#", topic: "sport/tennis", matches: true),
            MatchCase(filter: "$share/group/+", topic: "$SYS", matches: false),
            MatchCase(filter: "a/+/b", topic: "a//b", matches: true),
            MatchCase(filter: "a/", topic: "a", matches: false),
            MatchCase(filter: "a", topic: "a/", matches: false),
            MatchCase(filter: "sport/tennis", topic: "sport/tennis2", matches: false),
            MatchCase(filter: "sport/tennis2", topic: "sport/tennis", matches: false),
            MatchCase(filter: "+/+", topic: "a", matches: false),
            MatchCase(filter: "+/#", topic: "a", matches: true),
            MatchCase(filter: "sport/#", topic: "sports/tennis", matches: false),
        ]
    )
    func matching(_ match: MatchCase) {
        #expect(MQTTTopic.matches(filter: match.filter, topic: match.topic) == match.matches)
    }
}
