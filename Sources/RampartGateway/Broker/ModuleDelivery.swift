import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import RampartMQTT
import ServiceLifecycle

/// Delivers one `BrokeredEndpoint("/modules/{m}/inputs/{i}")` queue to the connected module, in order,
/// acknowledging the queue only after the module's PUBACKs; a `Service`.
struct ModuleDelivery: Service {
    let module: String
    let input: String
    let store: MessageStore
    let broker: Broker
    let logger: Logger
    var batchSize = 256

    var endpoint: String { RouteSink.brokeredEndpoint(module: module, input: input).endpointName }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await deliverUntilCancelled()
        }
    }

    private func deliverUntilCancelled() async {
        while !Task.isCancelled {
            guard let client = broker.connectedModule(module) else {
                await broker.waitForModule(module)
                continue
            }
            guard let (key, records) = await store.read(endpoint: endpoint, maximumCount: batchSize) else { return }
            var futures: [EventLoopFuture<Void>] = []
            for record in records {
                let message = record.message
                let publish = MQTTPublish(
                    topic: IoTHubTopic.moduleInput(client, input: input, properties: message.propertyBag),
                    payload: ByteBuffer(bytes: message.payload), qos: .atLeastOnce, retain: false, dup: false,
                    packetID: nil, properties: MQTTProperties())
                guard let future = broker.submit(publish, to: client.clientID) else { break }
                futures.append(future)
            }
            do {
                guard futures.count == records.count, let first = futures.first else {
                    throw CancellationError()
                }
                try await EventLoopFuture.andAllSucceed(futures, on: first.eventLoop).get()
                store.acknowledge(key, through: records[records.count - 1].sequence)
                let now = UInt64(Date().timeIntervalSince1970 * 1000)
                for record in records {
                    broker.metrics.messagesOut.increment()
                    let waited = now &- record.message.enqueuedAtMilliseconds
                    broker.metrics.sendLatency.record(.milliseconds(Int64(min(waited, UInt64(Int64.max)))))
                }
            } catch {
                // The module went away or refused: everything unacknowledged goes again, in order.
                logger.debug("Module delivery interrupted", metadata: ["module": "\(module)", "error": "\(error)"])
                store.rewind(endpoint: endpoint)
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
