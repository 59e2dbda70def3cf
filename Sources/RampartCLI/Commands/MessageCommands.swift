import ArgumentParser
import Foundation
import RampartCore
import RampartPKI
import RampartServer

/// `rampart device message …`: telemetry a hub stored, and cloud-to-device messages.
struct DeviceMessageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "message", abstract: "Read a device's telemetry stored by a hub, and send it cloud-to-device messages.",
        subcommands: [List.self, Send.self])

    enum Direction: String, ExpressibleByArgument, CaseIterable {
        case fromDevice = "from-device"
        case toDevice = "to-device"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a device's stored telemetry, oldest first; --follow keeps printing new messages until Ctrl-C.",
            discussion: "With --direction to-device, lists the cloud-to-device messages sent to it and whether they were delivered.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String
        @Option(help: "from-device (telemetry) or to-device (cloud-to-device messages).") var direction: Direction = .fromDevice
        @Option(help: "Only messages after this sequence number.") var after: Int64 = 0
        @Option(help: "At most this many messages (1 to 1000).") var limit = 100
        @Flag(help: "Keep waiting for new telemetry and print it as it arrives.") var follow = false

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000.") }
            guard after >= 0 else { throw ValidationError("--after must not be negative.") }
            if follow, direction == .toDevice { throw ValidationError("--follow reads telemetry (--direction from-device).") }
        }

        func run() async throws {
            let device = try DeviceID.validated(deviceId)
            try await global.withClient { client, profile in
                let base = "/v1/tenants/\(try global.tenantID(profile))/devices/\(device)"
                if direction == .toDevice {
                    let list = try await client.json(CloudMessageList.self, .GET, "\(base)/cloud-messages?limit=\(limit)")
                    if global.output == .json { return try Printer.json(list) }
                    Printer.table(["ID", "Created", "State", "Expires", "Payload"], list.messages.map {
                        [$0.id, Timestamp.format($0.createdAt), $0.state.rawValue, Timestamp.format($0.expiresAt), Self.preview($0.payload, $0.payloadEncoding)]
                    })
                    return
                }
                var cursor = after
                var first = true
                repeat {
                    let wait = follow && !first ? MessageService.followWait : 0
                    let page = try await client.json(
                        DeviceMessageList.self, .GET, "\(base)/messages?after=\(cursor)&limit=\(limit)&wait=\(wait)")
                    cursor = page.next
                    if follow {
                        // One line per message, written at once (unbuffered), so that the output can be piped.
                        for message in page.messages {
                            let line = global.output == .json
                                ? String(decoding: try JSONCoding.encoder().encode(message), as: UTF8.self)
                                : "\(message.sequence)\t\(Timestamp.format(message.enqueuedAt))\t\(Self.preview(message.payload, message.payloadEncoding))"
                            FileHandle.standardOutput.write(Data((line + "\n").utf8))
                        }
                    } else if global.output == .json {
                        try Printer.json(page)
                    } else {
                        Printer.table(["Seq", "Enqueued", "Module", "Properties", "Payload"], page.messages.map {
                            [String($0.sequence), Timestamp.format($0.enqueuedAt), $0.moduleId ?? "",
                             $0.properties.map { "\($0.name)=\($0.value)" }.joined(separator: " "), Self.preview($0.payload, $0.payloadEncoding)]
                        })
                    }
                    first = false
                } while follow && !Task.isCancelled
            }
        }

        static func preview(_ payload: String, _ encoding: PayloadEncoding) -> String {
            let text = encoding == .base64 ? "base64:" + payload : payload
            let line = text.replacingOccurrences(of: "\n", with: " ")
            return line.count > 60 ? String(line.prefix(60)) + "…" : line
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a device a cloud-to-device message (Contributor or above). It waits for the device until its TTL.",
            discussion: "The gateway the device is connected to (a hub, or an edge gateway with a server) delivers it on devices/{id}/messages/devicebound/… once the device is subscribed; it counts as delivered when the device acknowledges it (PUBACK).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The device ID.") var deviceId: String
        @Option(help: "The payload, as text.") var payload: String?
        @Option(help: "Read the payload from this file instead (any bytes, at most 64 KiB).") var payloadFile: String?
        @Option(name: .customLong("property"), help: "An application property NAME=VALUE (repeatable).") var properties: [String] = []
        @Option(help: "How long it waits for the device, in seconds (1 to 172800).") var ttlSeconds = MessageService.defaultTimeToLive
        @Option(help: "Wait up to this many seconds for the device to acknowledge it; exit 1 if it did not.") var wait: Int?

        func validate() throws {
            guard (payload == nil) != (payloadFile == nil) else { throw ValidationError("Give either --payload or --payload-file.") }
            guard (1...MessageService.maximumTimeToLive).contains(ttlSeconds) else { throw ValidationError("--ttl-seconds must be 1 to 172800.") }
            for property in properties where !property.contains("=") || property.hasPrefix("=") {
                throw ValidationError("--property takes NAME=VALUE, not '\(property)'.")
            }
        }

        func run() async throws {
            let device = try DeviceID.validated(deviceId)
            var body: CloudMessageRequest
            if let payloadFile {
                let data: Data
                do { data = try Data(contentsOf: URL(fileURLWithPath: payloadFile)) } catch {
                    throw RampartError.invalidRequest("Cannot read \(payloadFile): \(error.localizedDescription)")
                }
                body = CloudMessageRequest(payload: data.base64EncodedString(), payloadEncoding: .base64)
            } else {
                body = CloudMessageRequest(payload: payload ?? "")
            }
            body.properties = properties.map {
                let parts = $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return MessageProperty(name: String(parts[0]), value: parts.count > 1 ? String(parts[1]) : "")
            }
            body.ttlSeconds = ttlSeconds
            try await global.withClient { client, profile in
                let base = "/v1/tenants/\(try global.tenantID(profile))/devices/\(device)/cloud-messages"
                var message = try await client.json(CloudMessage.self, .POST, base, body: body)
                if let wait {
                    let deadline = Date() + TimeInterval(wait)
                    while message.state == .pending && Date() < deadline {
                        try await Task.sleep(for: .milliseconds(500))
                        message = try await client.json(CloudMessage.self, .GET, "\(base)/\(message.id)")
                    }
                }
                if global.output == .json {
                    try Printer.json(message)
                } else {
                    Printer.table(["ID", "State", "Expires", "Delivered"], [[
                        message.id, message.state.rawValue, Timestamp.format(message.expiresAt),
                        message.deliveredAt.map(Timestamp.format) ?? "",
                    ]])
                }
                if wait != nil, message.state != .delivered {
                    throw RampartError(.conflict, "The device did not acknowledge the message within \(wait ?? 0) s; it stays \(message.state.rawValue).", status: 409)
                }
            }
        }
    }
}
