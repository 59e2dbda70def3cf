import Foundation
import NIOCore
import NIOPosix
import RampartCore
import RampartTestKit
import Testing

@testable import RampartGateway

@Suite("Store and forward")
struct MessageStoreTests {
    static let upstream = MessageStore.QueueKey(endpoint: "$upstream", priority: 0)
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func message(_ n: Int, device: String = "dev1", expiresIn: Int? = nil) -> GatewayMessage {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        return GatewayMessage(
            deviceID: device, systemProperties: ["contentType": "text/plain"],
            applicationProperties: [.init(name: "n", value: "\(n)")], payload: Array("message \(n)".utf8),
            enqueuedAtMilliseconds: now, expiresAtMilliseconds: expiresIn.map { now + UInt64($0) })
    }

    func append(_ store: MessageStore, _ message: GatewayMessage, to key: MessageStore.QueueKey = Self.upstream) async throws {
        let promise = loop.makePromise(of: Void.self)
        store.append(message, to: [key], promise: promise)
        try await promise.futureResult.get()
    }

    @Test("Messages come back in order, and survive a reopen until acknowledged")
    func orderAndDurability() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = MessageStore.Configuration(directory: directory.path)
        do {
            let store = try MessageStore(configuration: configuration)
            for n in 0..<10 { try await append(store, message(n)) }
            let (key, first) = try #require(await store.read(endpoint: "$upstream", maximumCount: 4))
            #expect(first.map { $0.message.applicationProperties[0].value } == ["0", "1", "2", "3"])
            store.acknowledge(key, through: first[3].sequence)
            store.close()
        }
        let reopened = try MessageStore(configuration: configuration)
        defer { reopened.close() }
        #expect(reopened.statistics.queued == 6)
        let (_, rest) = try #require(await reopened.read(endpoint: "$upstream", maximumCount: 100))
        #expect(rest.map { $0.message.applicationProperties[0].value } == ["4", "5", "6", "7", "8", "9"])
        #expect(rest[0].message == message(4).with(enqueued: rest[0].message.enqueuedAtMilliseconds))
    }

    @Test("A second gateway cannot open a store in use; closing the first lets it")
    func exclusive() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try MessageStore(configuration: .init(directory: directory.path))
        #expect(throws: RampartError.conflict(.conflict, "")) { _ = try MessageStore(configuration: .init(directory: directory.path)) }
        first.close()
        let second = try MessageStore(configuration: .init(directory: directory.path))
        second.close()
    }

    /// Records are read from memory (the default), from disk (0), or some from each (a little).
    static let memoryLimits = [4 << 20, 0, 150]

    func configuration(_ directory: TemporaryDirectory, memory: Int) -> MessageStore.Configuration {
        var configuration = MessageStore.Configuration(directory: directory.path)
        configuration.memoryBytesPerQueue = memory
        return configuration
    }

    @Test("A rewind sends everything unacknowledged again, in order", arguments: memoryLimits)
    func rewind(memory: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try MessageStore(configuration: configuration(directory, memory: memory))
        defer { store.close() }
        for n in 0..<5 { try await append(store, message(n)) }
        let (key, batch) = try #require(await store.read(endpoint: "$upstream", maximumCount: 5))
        store.acknowledge(key, through: batch[1].sequence)
        store.rewind(endpoint: "$upstream")
        let (_, again) = try #require(await store.read(endpoint: "$upstream", maximumCount: 5))
        #expect(again.map(\.sequence) == Array(batch[2...].map(\.sequence)))
        #expect(again.map(\.message) == Array(batch[2...].map(\.message)))
        #expect(again.map { $0.message.applicationProperties[0].value } == ["2", "3", "4"])
    }

    @Test("Memory holds at most its limit of the newest records, and lets go of them once acknowledged", arguments: memoryLimits)
    func memoryBound(memory: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try MessageStore(configuration: configuration(directory, memory: memory))
        defer { store.close() }
        for n in 0..<20 { try await append(store, message(n)) }
        let held = store.memoryUse(Self.upstream)
        #expect(held.bytes <= memory)
        #expect(memory == 0 ? held.records == 0 : held.records > 0)
        let (key, records) = try #require(await store.read(endpoint: "$upstream", maximumCount: 20))
        #expect(records.map { $0.message.applicationProperties[0].value } == (0..<20).map(String.init))
        store.acknowledge(key, through: records[9].sequence)
        #expect(store.memoryUse(Self.upstream).records == min(held.records, 10))
        store.acknowledge(key, through: records[19].sequence)
        #expect(store.memoryUse(Self.upstream) == (0, 0))
    }

    @Test("Expired messages are counted, never delivered", arguments: memoryLimits)
    func expiry(memory: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try MessageStore(configuration: configuration(directory, memory: memory))
        defer { store.close() }
        try await append(store, message(0, expiresIn: 1))
        try await append(store, message(1))
        try await Task.sleep(for: .milliseconds(20))
        let (_, records) = try #require(await store.read(endpoint: "$upstream", maximumCount: 10))
        #expect(records.map { $0.message.applicationProperties[0].value } == ["1"])
        #expect(store.statistics.expired == 1)
        // Rewinding does not count it twice.
        store.rewind(endpoint: "$upstream")
        _ = await store.read(endpoint: "$upstream", maximumCount: 10)
        #expect(store.statistics.expired == 1)
    }

    @Test("A full store refuses new messages with storeFull and counts them; nothing queued is lost")
    func full() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = MessageStore.Configuration(directory: directory.path)
        configuration.maximumBytes = 1000
        let store = try MessageStore(configuration: configuration)
        defer { store.close() }
        var accepted = 0
        var refusal: RampartError?
        for n in 0..<100 {
            do {
                try await append(store, message(n))
                accepted += 1
            } catch let error as RampartError {
                refusal = error
                break
            }
        }
        #expect(refusal?.code == .storeFull)
        #expect(accepted > 0)
        #expect(store.statistics.refusedFull == 1)
        #expect(store.statistics.queued == accepted)
        let (key, records) = try #require(await store.read(endpoint: "$upstream", maximumCount: 1000))
        #expect(records.count == accepted)
        store.acknowledge(key, through: records.last!.sequence)
        try await append(store, message(1000))  // room again after delivery
    }

    @Test("A torn write at the end of a segment is cut off at start-up; earlier messages stay")
    func tornTail() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = MessageStore.Configuration(directory: directory.path)
        do {
            let store = try MessageStore(configuration: configuration)
            for n in 0..<3 { try await append(store, message(n)) }
            store.close()
        }
        let queueDirectory = directory.path + "/" + Self.upstream.directoryName
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: queueDirectory).first { $0.hasSuffix(".seg") })
        let handle = try #require(FileHandle(forWritingAtPath: queueDirectory + "/" + segment))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0, 0, 0, 40, 1, 2, 3, 4, 0, 0]))  // half a header
        try handle.close()
        let reopened = try MessageStore(configuration: configuration)
        defer { reopened.close() }
        #expect(reopened.statistics.queued == 3)
        #expect(reopened.statistics.corrupt == 0)
        try await append(reopened, message(3))
        let (_, records) = try #require(await reopened.read(endpoint: "$upstream", maximumCount: 10))
        #expect(records.map { $0.message.applicationProperties[0].value } == ["0", "1", "2", "3"])
    }

    @Test("A higher priority queue is read first")
    func priority() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try MessageStore(configuration: .init(directory: directory.path))
        defer { store.close() }
        try await append(store, message(1), to: .init(endpoint: "$upstream", priority: 5))
        try await append(store, message(0), to: .init(endpoint: "$upstream", priority: 0))
        let (key, records) = try #require(await store.read(endpoint: "$upstream", maximumCount: 10))
        #expect(key.priority == 0)
        #expect(records.count == 1)
    }

    @Test("Segments roll over and delivered ones are deleted; what is read is what was appended", arguments: memoryLimits)
    func segments(memory: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = self.configuration(directory, memory: memory)
        configuration.segmentBytes = 200
        let store = try MessageStore(configuration: configuration)
        defer { store.close() }
        for n in 0..<20 { try await append(store, message(n)) }
        let queueDirectory = directory.path + "/" + Self.upstream.directoryName
        let before = try FileManager.default.contentsOfDirectory(atPath: queueDirectory).filter { $0.hasSuffix(".seg") }.count
        #expect(before > 3)
        var delivered: [GatewayMessage] = []
        while delivered.count < 20, let (key, records) = await store.read(endpoint: "$upstream", maximumCount: 7) {
            delivered += records.map(\.message)
            store.acknowledge(key, through: records.last!.sequence)
        }
        #expect(delivered.map { $0.applicationProperties[0].value } == (0..<20).map(String.init))
        #expect(delivered == (0..<20).map { message($0).with(enqueued: delivered[$0].enqueuedAtMilliseconds) })
        let after = try FileManager.default.contentsOfDirectory(atPath: queueDirectory).filter { $0.hasSuffix(".seg") }.count
        #expect(after == 1)
    }

    @Test("Endpoint names of any characters map to directories and back")
    func directoryNames() {
        for endpoint in ["$upstream", "/modules/filter/inputs/in-1", "/modules/ü/inputs/x y"] {
            let key = MessageStore.QueueKey(endpoint: endpoint, priority: 3)
            #expect(!key.directoryName.contains("/"))
            #expect(MessageStore.key(fromDirectoryName: key.directoryName) == key)
        }
    }
}

extension GatewayMessage {
    func with(enqueued: UInt64) -> GatewayMessage {
        var copy = self
        copy.enqueuedAtMilliseconds = enqueued
        return copy
    }
}
