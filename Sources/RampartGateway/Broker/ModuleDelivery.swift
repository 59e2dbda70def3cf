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

    /// A batch handed to the module and not yet acknowledged by it.
    private struct Batch {
        let key: MessageStore.QueueKey
        let records: [MessageStore.Record]
        let acknowledged: EventLoopFuture<Void>
    }

    private func deliverUntilCancelled() async {
        while !Task.isCancelled {
            guard let client = broker.connectedModule(module) else {
                await broker.waitForModule(module)
                continue
            }
            // Two batches in flight: the next one goes out while the module acknowledges the last, so the
            // connection never runs dry between batches. Order holds: one connection, one queue order.
            var inFlight: [Batch] = []
            var connection: ObjectIdentifier?
            do {
                while !Task.isCancelled {
                    let next: (MessageStore.QueueKey, [MessageStore.Record])?
                    if inFlight.isEmpty {
                        guard let batch = await store.read(endpoint: endpoint, maximumCount: batchSize) else { return }
                        next = batch
                    } else {
                        next = inFlight.count < 2 ? store.readNow(endpoint: endpoint, maximumCount: batchSize) : nil
                    }
                    if let (key, records) = next, !records.isEmpty {
                        let publishes = records.map { record in
                            MQTTPublish(
                                topic: IoTHubTopic.moduleInput(client, input: input, properties: record.message.propertyBag),
                                payload: ByteBuffer(bytes: record.message.payload), qos: .atLeastOnce, retain: false, dup: false,
                                packetID: nil, properties: MQTTProperties())
                        }
                        guard let (used, futures) = broker.submit(publishes, to: client.clientID, pinned: connection),
                            let first = futures.first
                        else {
                            throw CancellationError()
                        }
                        connection = used
                        inFlight.append(Batch(key: key, records: records, acknowledged: EventLoopFuture.andAllSucceed(futures, on: first.eventLoop)))
                        continue
                    }
                    try await settle(inFlight.removeFirst())
                }
            } catch {
                // The module went away or refused: everything unacknowledged goes again, in order, once the
                // batch still out has finished either way (so that it cannot arrive after the resent ones).
                logger.debug("Module delivery interrupted", metadata: ["module": "\(module)", "error": "\(error)"])
                for batch in inFlight { _ = try? await batch.acknowledged.get() }
                store.rewind(endpoint: endpoint)
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Waits for the module's PUBACKs of a batch, then lets the store go of it.
    private func settle(_ batch: Batch) async throws {
        try await batch.acknowledged.get()
        store.acknowledge(batch.key, through: batch.records[batch.records.count - 1].sequence)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        broker.metrics.messagesOut.increment(by: Int64(batch.records.count))
        for record in batch.records {
            let waited = now &- record.message.enqueuedAtMilliseconds
            broker.metrics.sendLatency.record(.milliseconds(Int64(min(waited, UInt64(Int64.max)))))
        }
    }
}
