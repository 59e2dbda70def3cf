import NIOCore
import NIOPosix
import RampartMQTT
import Testing

@Suite("MQTT client")
struct MQTTClientTests {
    /// A TCP server on a free loopback port that accepts connections and never answers.
    static func withSilentServer(_ body: (Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(server.localAddress?.port ?? 0)
        } catch {
            try? await server.close()
            throw error
        }
        try await server.close()
    }

    @Test("a task cancelled while it waits for CONNACK gives up at once, not at the connect timeout")
    func connectIsCancellable() async throws {
        try await Self.withSilentServer { port in
            var configuration = MQTTClient.Configuration(host: "127.0.0.1", port: port, clientID: "silent")
            configuration.connectTimeout = .seconds(60)
            let attempt = Task { try await MQTTClient.connect(configuration) }
            try await Task.sleep(for: .milliseconds(300))
            let started = ContinuousClock.now
            attempt.cancel()
            await #expect(throws: CancellationError.self) { _ = try await attempt.value }
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("without an answer, connect fails with timeout after the configured time")
    func connectTimesOut() async throws {
        try await Self.withSilentServer { port in
            var configuration = MQTTClient.Configuration(host: "127.0.0.1", port: port, clientID: "silent")
            configuration.connectTimeout = .milliseconds(300)
            await #expect { _ = try await MQTTClient.connect(configuration) } throws: { ($0 as? MQTTClientError)?.code == .timeout }
        }
    }
}
