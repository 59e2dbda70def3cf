import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RampartCore
import RampartDevice
import RampartMQTT
import Synchronization

/// Store and forward: a durable, ordered queue per endpoint and priority.
///
/// A publish is answered only once every queue it was routed to holds it on disk: appends from all
/// connections are gathered by one writer thread, written, and made durable with one `fdatasync` per
/// touched segment, so the fsync cost is shared by everyone in the batch (group commit). A crash loses
/// nothing that was answered: at start-up each segment is scanned, and a torn tail (a batch that never
/// finished, so was never answered) is cut off.
///
/// Each queue has one consumer (the upstream bridge, or the delivery to a local module), which reads
/// in order, acknowledges what the far side accepted, and rewinds to the first unacknowledged record
/// after a reconnect. Delivery is at least once. Records whose TTL has passed are skipped and counted,
/// never delivered. When the store is at `maximumBytes`, appends are refused with ``RampartError/Code/storeFull``.
public final class MessageStore: Sendable {
    /// Store settings.
    public struct Configuration: Sendable {
        /// The directory holding one sub-directory per queue.
        public var directory: String
        /// The most bytes the queues may hold together, framing included.
        public var maximumBytes: Int = 1 << 30
        /// The size at which a queue starts a new segment file.
        public var segmentBytes: Int = 16 << 20
        /// How many bytes of its newest records each queue also keeps in memory, so that its consumer, usually
        /// right behind the writer, reads them without the disk. 0 reads every record from disk.
        public var memoryBytesPerQueue: Int = 4 << 20
        /// Creates settings for `directory`.
        public init(directory: String) { self.directory = directory }
    }

    /// A queue: one endpoint at one priority (0 highest).
    public struct QueueKey: Sendable, Hashable, CustomStringConvertible {
        /// The sink: `$upstream` or `/modules/{m}/inputs/{i}`.
        public var endpoint: String
        /// 0 (highest) to 9.
        public var priority: Int
        /// Creates a key.
        public init(endpoint: String, priority: Int) {
            self.endpoint = endpoint
            self.priority = priority
        }
        public var description: String { "\(endpoint) p\(priority)" }

        /// A directory name that is safe whatever the endpoint is called.
        var directoryName: String {
            let safe = endpoint.utf8.map { byte -> String in
                let c = Character(Unicode.Scalar(byte))
                return c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_") ? String(c)
                    : String(format: "%%%02X", byte)
            }.joined()
            return "\(safe).p\(priority)"
        }
    }

    /// A record read from a queue.
    public struct Record: Sendable {
        /// Its position in the queue; acknowledge through it.
        public var sequence: UInt64
        /// The message.
        public var message: GatewayMessage
    }

    /// Counts for metrics and tests.
    public struct Statistics: Sendable, Equatable {
        /// Records accepted (per queue they went to).
        public var appended = 0
        /// Records acknowledged by their consumer.
        public var delivered = 0
        /// Records whose TTL passed before delivery.
        public var expired = 0
        /// Appends refused because the store was full.
        public var refusedFull = 0
        /// Appends that failed to reach the disk.
        public var writeFailures = 0
        /// Records found corrupt at start-up (never a torn tail, which was never acknowledged).
        public var corrupt = 0
        /// Records waiting, across all queues.
        public var queued = 0
        /// Bytes held, across all queues.
        public var bytes = 0
    }

    /// Guarded by `state`'s lock (the writer thread alone changes a tail segment's size).
    private final class Queue: @unchecked Sendable {
        let key: MessageStore.QueueKey
        let directory: String
        var segments: [SegmentFile]
        var cursor: UInt64
        var readSequence: UInt64
        var readSegment: Int
        var readOffset: Int
        /// Read but not yet released; `needsAck` is false for records skipped (expired, unreadable).
        var inFlight: [(sequence: UInt64, size: Int, needsAck: Bool)] = []
        var inFlightHead = 0
        var liveBytes = 0
        var liveRecords = 0
        var expiredCountedThrough: UInt64
        var cursorWrittenAt = UInt64(0)
        var cursorDirty = false
        /// The latest durable records as they were appended, so that a consumer close behind the writer (the
        /// usual case) reads them without going to the disk: the i-th is sequence `recentFirst + i`, with its
        /// frame size on disk. At most `memoryBytesPerQueue` bytes of frames, none already acknowledged.
        var recent = CircularBuffer<(message: GatewayMessage, size: Int)>()
        var recentFirst = UInt64(0)
        var recentBytes = 0

        init(key: MessageStore.QueueKey, directory: String, segments: [SegmentFile], cursor: UInt64) {
            self.key = key
            self.directory = directory
            self.segments = segments
            self.cursor = cursor
            self.readSequence = cursor
            self.readSegment = 0
            self.readOffset = 0
            self.expiredCountedThrough = cursor
        }

        var tail: SegmentFile { segments[segments.count - 1] }
        var durableEnd: UInt64 { tail.nextSequence }

        /// Keeps records `first`, `first + 1`, … (just made durable) in `recent`, dropping the oldest beyond
        /// `limit` bytes.
        func remember(_ records: [(message: GatewayMessage, size: Int)], first: UInt64, limit: Int) {
            if recentFirst + UInt64(recent.count) != first {
                recent.removeAll(keepingCapacity: true)
                recentFirst = first
                recentBytes = 0
            }
            for record in records {
                recent.append(record)
                recentBytes += record.size
            }
            while recentBytes > limit, let dropped = recent.popFirst() {
                recentBytes -= dropped.size
                recentFirst += 1
            }
        }

        /// Lets go of remembered records before `sequence`: acknowledged ones are never read again.
        func forget(before sequence: UInt64) {
            while recentFirst < sequence, let dropped = recent.popFirst() {
                recentBytes -= dropped.size
                recentFirst += 1
            }
        }

        /// Record `sequence` from `recent`, if it is still there.
        func remembered(_ sequence: UInt64) -> (message: GatewayMessage, size: Int)? {
            guard sequence >= recentFirst, sequence - recentFirst < UInt64(recent.count) else { return nil }
            return recent[recent.index(recent.startIndex, offsetBy: Int(sequence - recentFirst))]
        }
    }

    private struct Pending {
        var keys: [QueueKey]
        var message: GatewayMessage
        var record: [UInt8]
        var size: Int
        var promise: EventLoopPromise<Void>
    }

    private struct State {
        var queues: [QueueKey: Queue] = [:]
        var pending: [Pending] = []
        var reservedBytes = 0
        /// A consumer waiting for one of its endpoint's queues to grow (or to be created).
        var waiters: [String: CheckedContinuation<Void, Never>] = [:]
        var statistics = Statistics()
        var stopping = false
        var stopped = false
    }

    private let configuration: Configuration
    private let state: NIOLockedValueBox<State>
    private let wakeWriter = ConditionLock(value: false)
    private let logger: Logger
    private let writerDone = ConditionLock(value: false)
    private let lock: StateDirectoryLock

    /// Opens (or creates) the store and starts its writer thread.
    ///
    /// - Throws: ``RampartError`` `storeWriteFailed` when the directory cannot be created or read.
    public init(configuration: Configuration, logger: Logger = Logger(label: "rampart.gateway.store")) throws {
        self.configuration = configuration
        self.logger = logger
        self.state = NIOLockedValueBox(State())
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RampartError(
                .storeWriteFailed, "Cannot create the store directory \(configuration.directory): \(error).", status: 507)
        }
        lock = try StateDirectoryLock(
            directory: URL(fileURLWithPath: configuration.directory), user: "gateway",
            advice: "or give this one another [store] directory")
        try recoverQueues()
        let thread = Thread { [self] in writerLoop() }
        thread.name = "rampart-store-writer"
        thread.start()
    }

    /// Appends `message` to each queue in `keys`; `promise` succeeds once all of them hold it durably.
    ///
    /// Fails the promise at once with `storeFull` when the store is at its maximum size.
    public func append(_ message: GatewayMessage, to keys: [QueueKey], promise: EventLoopPromise<Void>) {
        guard !keys.isEmpty else { return promise.succeed() }
        let record = message.encoded()
        let size = (record.count + SegmentFile.headerSize) * keys.count
        let outcome: RampartError? = state.withLockedValue { state in
            if state.stopping { return RampartError(.storeWriteFailed, "The gateway is shutting down.", status: 503) }
            let live = state.queues.values.reduce(0) { $0 + $1.liveBytes } + state.reservedBytes
            if live + size > configuration.maximumBytes {
                state.statistics.refusedFull += 1
                return StoreError.full(maximumBytes: configuration.maximumBytes)
            }
            state.reservedBytes += size
            state.pending.append(Pending(keys: keys, message: message, record: record, size: size, promise: promise))
            return nil
        }
        if let outcome { return promise.fail(outcome) }
        wakeWriter.lock()
        wakeWriter.unlock(withValue: true)
    }

    /// Reads up to `maximumCount` records of `endpoint` after those already read, from its highest-priority
    /// queue that has any, waiting until there is at least one.
    ///
    /// Expired records are skipped (and counted). Returns `nil` only when the task is cancelled or the
    /// store stops.
    public func read(endpoint: String, maximumCount: Int) async -> (QueueKey, [Record])? {
        while !Task.isCancelled {
            let keys = state.withLockedValue { state in
                state.queues.keys.filter { $0.endpoint == endpoint }.sorted { $0.priority < $1.priority }
            }
            for key in keys {
                guard let records = readAvailable(key, maximumCount: maximumCount) else { return nil }
                if !records.isEmpty { return (key, records) }
            }
            await waitForAppend(endpoint: endpoint)
        }
        return nil
    }

    /// Like ``read(endpoint:maximumCount:)`` but never waits: `nil` when nothing is there.
    public func readNow(endpoint: String, maximumCount: Int) -> (QueueKey, [Record])? {
        let keys = state.withLockedValue { state in
            state.queues.keys.filter { $0.endpoint == endpoint }.sorted { $0.priority < $1.priority }
        }
        for key in keys {
            if let records = readAvailable(key, maximumCount: maximumCount), !records.isEmpty { return (key, records) }
        }
        return nil
    }

    /// Marks every record through `sequence` delivered; frees segments that hold nothing undelivered.
    public func acknowledge(_ key: QueueKey, through sequence: UInt64) {
        var removed: [SegmentFile] = []
        state.withLockedValue { state in
            guard let queue = state.queues[key] else { return }
            state.statistics.delivered += release(queue, through: sequence)
            removed = removeConsumedSegments(queue)
            queue.cursorDirty = true
        }
        for segment in removed { segment.remove() }
        persistCursorIfDue(key, force: false)
    }

    /// Releases expired records at the head of queues that have nothing in flight, so that a queue whose
    /// consumer is away does not keep space for messages that will never be sent. Each is counted as
    /// expired. Looks at most `limit` records per call, to keep the lock short.
    public func purgeExpired(limit: Int = 10_000) {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var removed: [SegmentFile] = []
        state.withLockedValue { state in
            var budget = limit
            for queue in state.queues.values
            where queue.inFlightHead == queue.inFlight.count && queue.readSequence == queue.cursor {
                while budget > 0, queue.readSequence < queue.durableEnd {
                    budget -= 1
                    let segment = queue.segments[queue.readSegment]
                    if queue.readOffset >= segment.size {
                        guard queue.readSegment + 1 < queue.segments.count else { break }
                        queue.readSegment += 1
                        queue.readOffset = 0
                        skipGap(queue, to: queue.segments[queue.readSegment].firstSequence)
                        continue
                    }
                    guard let header = segment.read(at: queue.readOffset, count: SegmentFile.headerSize),
                        let start = segment.read(at: queue.readOffset + SegmentFile.headerSize, count: 17),
                        let expiry = GatewayMessage.expiry(ofEncoded: start), expiry <= now
                    else { break }
                    let size = SegmentFile.headerSize + Int(header.uint32(at: 0))
                    if queue.readSequence >= queue.expiredCountedThrough {
                        state.statistics.expired += 1
                        queue.expiredCountedThrough = queue.readSequence + 1
                    }
                    queue.readOffset += size
                    queue.readSequence += 1
                    queue.cursor = queue.readSequence
                    queue.liveBytes -= size
                    queue.liveRecords -= 1
                    queue.cursorDirty = true
                }
                queue.forget(before: queue.cursor)
                removed += removeConsumedSegments(queue)
            }
        }
        for segment in removed { segment.remove() }
        for key in queueKeys { persistCursorIfDue(key, force: false) }
    }

    /// Goes back to the first unacknowledged record of each of `endpoint`'s queues, so that they are sent
    /// again (after a reconnect).
    public func rewind(endpoint: String) {
        state.withLockedValue { state in
            for queue in state.queues.values where queue.key.endpoint == endpoint {
                queue.inFlight.removeAll()
                queue.inFlightHead = 0
                seek(queue, to: queue.cursor)
            }
        }
    }

    /// Current counts.
    public var statistics: Statistics {
        state.withLockedValue { state in
            var stats = state.statistics
            stats.queued = state.queues.values.reduce(0) { $0 + $1.liveRecords }
            stats.bytes = state.queues.values.reduce(0) { $0 + $1.liveBytes }
            return stats
        }
    }

    /// The records and frame bytes one queue keeps in memory for its consumer.
    func memoryUse(_ key: QueueKey) -> (records: Int, bytes: Int) {
        state.withLockedValue { state in state.queues[key].map { ($0.recent.count, $0.recentBytes) } ?? (0, 0) }
    }

    /// Records waiting in one queue.
    public func depth(_ key: QueueKey) -> Int {
        state.withLockedValue { $0.queues[key]?.liveRecords ?? 0 }
    }

    /// The queues that exist.
    public var queueKeys: [QueueKey] { state.withLockedValue { Array($0.queues.keys) } }

    /// Finishes pending appends, saves every cursor and stops the writer thread. Readers return empty.
    public func close() {
        let alreadyStopping = state.withLockedValue { state -> Bool in
            defer { state.stopping = true }
            return state.stopping
        }
        if !alreadyStopping {
            wakeWriter.lock()
            wakeWriter.unlock(withValue: true)
        }
        writerDone.lock(whenValue: true)
        writerDone.unlock()
        let keys = state.withLockedValue { Array($0.queues.keys) }
        for key in keys { persistCursorIfDue(key, force: true) }
        let waiters = state.withLockedValue { state in
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
        lock.release()
    }

    // MARK: - Writer

    private func writerLoop() {
        while true {
            wakeWriter.lock(whenValue: true)
            wakeWriter.unlock(withValue: false)
            let (batch, stopping) = state.withLockedValue { state -> ([Pending], Bool) in
                defer { state.pending.removeAll(keepingCapacity: true) }
                return (state.pending, state.stopping)
            }
            if !batch.isEmpty { write(batch) }
            if stopping {
                let more = state.withLockedValue { !$0.pending.isEmpty }
                if more { continue }
                state.withLockedValue { $0.stopped = true }
                writerDone.lock()
                writerDone.unlock(withValue: true)
                return
            }
        }
    }

    /// Writes one batch: frames per queue, one write and one sync per touched segment, then answers.
    private func write(_ batch: [Pending]) {
        // Group by queue, keeping arrival order within each.
        var order: [QueueKey] = []
        var framesByQueue: [QueueKey: [(index: Int, record: [UInt8], message: GatewayMessage)]] = [:]
        for (index, entry) in batch.enumerated() {
            for key in entry.keys {
                if framesByQueue[key] == nil { order.append(key) }
                framesByQueue[key, default: []].append((index, entry.record, entry.message))
            }
        }
        var failed: [Int: RampartError] = [:]
        var notify: [CheckedContinuation<Void, Never>] = []
        for key in order {
            let entries = framesByQueue[key] ?? []
            do {
                let queue = try queue(for: key)
                // Only this thread changes a tail's size, so reading it here without the lock is safe.
                var tail = state.withLockedValue { _ in queue.tail }
                if tail.size >= configuration.segmentBytes {
                    let next = try SegmentFile.create(directory: queue.directory, firstSequence: tail.nextSequence)
                    state.withLockedValue { _ in queue.segments.append(next) }
                    tail = next
                }
                var bytes: [UInt8] = []
                var sequence = tail.nextSequence
                var sizes: [Int] = []
                for entry in entries {
                    let before = bytes.count
                    SegmentFile.frame(entry.record, sequence: sequence, into: &bytes)
                    sizes.append(bytes.count - before)
                    sequence += 1
                }
                let start = tail.size
                do {
                    try tail.write(bytes, at: start)
                    try tail.sync()
                } catch {
                    tail.truncate(to: start)
                    throw error
                }
                let written = tail
                let first = tail.nextSequence
                let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                    written.size = start + bytes.count
                    written.nextSequence = sequence
                    queue.remember(zip(entries, sizes).map { ($0.message, $1) }, first: first, limit: configuration.memoryBytesPerQueue)
                    queue.liveBytes += sizes.reduce(0, +)
                    queue.liveRecords += sizes.count
                    state.statistics.appended += sizes.count
                    return state.waiters.removeValue(forKey: key.endpoint)
                }
                if let waiter { notify.append(waiter) }
            } catch {
                let failure = (error as? RampartError) ?? RampartError(.storeWriteFailed, "\(error)", status: 507)
                logger.error("A store write failed; the batch is refused", metadata: ["queue": "\(key)", "error": "\(failure)"])
                for entry in entries { failed[entry.index] = failure }
            }
        }
        state.withLockedValue { state in
            state.reservedBytes -= batch.reduce(0) { $0 + $1.size }
            state.statistics.writeFailures += failed.count
        }
        for waiter in notify { waiter.resume() }
        // One task per event loop completes all of its promises, so that a connection sees the whole batch
        // at once (and answers it with one flush), instead of one wake-up per message.
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, outcomes: [(EventLoopPromise<Void>, RampartError?)])] = [:]
        for (index, entry) in batch.enumerated() {
            let loop = entry.promise.futureResult.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].outcomes.append((entry.promise, failed[index]))
        }
        for (_, group) in byLoop {
            let outcomes = group.outcomes
            group.loop.execute {
                for (promise, failure) in outcomes {
                    if let failure { promise.fail(failure) } else { promise.succeed() }
                }
            }
        }
    }

    /// The queue for `key`, created on first use.
    private func queue(for key: QueueKey) throws -> Queue {
        if let existing = state.withLockedValue({ $0.queues[key] }) { return existing }
        let directory = configuration.directory + "/" + key.directoryName
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let segment = try SegmentFile.create(directory: directory, firstSequence: 1)
        fsyncDirectory(configuration.directory)
        let queue = Queue(key: key, directory: directory, segments: [segment], cursor: 1)
        state.withLockedValue { $0.queues[key] = queue }
        return queue
    }

    // MARK: - Reading

    /// Reads what is durable after the read position; `nil` when the store is stopping.
    private func readAvailable(_ key: QueueKey, maximumCount: Int) -> [Record]? {
        let nowMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        return state.withLockedValue { state -> [Record]? in
            if state.stopped { return nil }
            guard let queue = state.queues[key] else { return [] }
            var records: [Record] = []
            while records.count < maximumCount, queue.readSequence < queue.durableEnd {
                var segment = queue.segments[queue.readSegment]
                if queue.readOffset >= segment.size {
                    guard queue.readSegment + 1 < queue.segments.count else { break }
                    queue.readSegment += 1
                    queue.readOffset = 0
                    segment = queue.segments[queue.readSegment]
                    skipGap(queue, to: segment.firstSequence)
                    continue
                }
                let message: GatewayMessage?
                let size: Int
                if let remembered = queue.remembered(queue.readSequence) {
                    (message, size) = remembered
                } else {
                    guard let header = segment.read(at: queue.readOffset, count: SegmentFile.headerSize) else { break }
                    let length = Int(header.uint32(at: 0))
                    size = SegmentFile.headerSize + length
                    message = segment.read(at: queue.readOffset + SegmentFile.headerSize, count: length).flatMap {
                        GatewayMessage(encoded: $0)
                    }
                }
                guard let message else {
                    // Unreadable although it passed the scan: count it and move on rather than stall the queue.
                    state.statistics.corrupt += 1
                    queue.readOffset += size
                    queue.inFlight.append((queue.readSequence, size, false))
                    queue.readSequence += 1
                    continue
                }
                let sequence = queue.readSequence
                queue.readOffset += size
                queue.readSequence += 1
                if let expiry = message.expiresAtMilliseconds, expiry <= nowMilliseconds {
                    if sequence >= queue.expiredCountedThrough {
                        state.statistics.expired += 1
                        queue.expiredCountedThrough = sequence + 1
                    }
                    queue.inFlight.append((sequence, size, false))
                    continue
                }
                queue.inFlight.append((sequence, size, true))
                records.append(Record(sequence: sequence, message: message))
            }
            // Skipped records at the head need no acknowledgement from anyone.
            _ = release(queue, through: 0)
            return records
        }
    }

    private func waitForAppend(endpoint: String) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.stopped || Task.isCancelled { return true }
                    for queue in state.queues.values where queue.key.endpoint == endpoint {
                        if queue.readSequence < queue.durableEnd { return true }
                    }
                    // One consumer per endpoint: a second waiter replaces (and wakes) the first.
                    state.waiters.updateValue(continuation, forKey: endpoint)?.resume()
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLockedValue { $0.waiters.removeValue(forKey: endpoint) }?.resume()
        }
    }

    private func seek(_ queue: Queue, to sequence: UInt64) {
        queue.readSequence = sequence
        var index = queue.segments.count - 1
        while index > 0, queue.segments[index].firstSequence > sequence { index -= 1 }
        queue.readSegment = index
        // Walk headers from the segment start to the record.
        let segment = queue.segments[index]
        var offset = 0
        var current = segment.firstSequence
        while current < sequence, offset < segment.size,
            let header = segment.read(at: offset, count: SegmentFile.headerSize)
        {
            offset += SegmentFile.headerSize + Int(header.uint32(at: 0))
            current += 1
        }
        queue.readOffset = offset
    }

    /// Steps over sequence numbers that no segment holds (records lost to corruption before the next
    /// segment), so that numbering stays true and the consumer does not spin on them.
    private func skipGap(_ queue: Queue, to first: UInt64) {
        guard queue.readSequence < first else { return }
        if queue.inFlightHead == queue.inFlight.count, queue.cursor == queue.readSequence { queue.cursor = first }
        queue.readSequence = first
        queue.cursorDirty = true
    }

    /// Releases acknowledged records through `sequence`, and any skipped records after them; returns how
    /// many acknowledged records were released.
    private func release(_ queue: Queue, through sequence: UInt64) -> Int {
        var count = 0
        while queue.inFlightHead < queue.inFlight.count {
            let entry = queue.inFlight[queue.inFlightHead]
            guard entry.sequence <= sequence || !entry.needsAck else { break }
            queue.liveBytes -= entry.size
            queue.liveRecords -= 1
            queue.inFlightHead += 1
            queue.cursor = entry.sequence + 1
            queue.cursorDirty = true
            if entry.needsAck { count += 1 }
        }
        queue.forget(before: queue.cursor)
        compactInFlight(queue)
        return count
    }

    private func compactInFlight(_ queue: Queue) {
        if queue.inFlightHead > 1024, queue.inFlightHead * 2 > queue.inFlight.count {
            queue.inFlight.removeFirst(queue.inFlightHead)
            queue.inFlightHead = 0
        } else if queue.inFlightHead == queue.inFlight.count {
            queue.inFlight.removeAll(keepingCapacity: true)
            queue.inFlightHead = 0
        }
    }

    /// Drops whole segments before the cursor (never the tail); returns them for deletion outside the lock.
    private func removeConsumedSegments(_ queue: Queue) -> [SegmentFile] {
        var removed: [SegmentFile] = []
        while queue.segments.count > 1, queue.segments[1].firstSequence <= queue.cursor, queue.readSegment > 0 {
            removed.append(queue.segments.removeFirst())
            queue.readSegment -= 1
        }
        return removed
    }

    private func persistCursorIfDue(_ key: QueueKey, force: Bool) {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let snapshot = state.withLockedValue { state -> (String, UInt64)? in
            guard let queue = state.queues[key], queue.cursorDirty else { return nil }
            guard force || now >= queue.cursorWrittenAt + 200 else { return nil }
            queue.cursorDirty = false
            queue.cursorWrittenAt = now
            return (queue.directory, queue.cursor)
        }
        guard let (directory, cursor) = snapshot else { return }
        // The cursor may lag: after a crash, records since it are delivered again (at least once).
        try? SecureFile.write(String(cursor), to: URL(fileURLWithPath: directory + "/cursor"), mode: 0o600)
    }

    // MARK: - Recovery

    private func recoverQueues() throws {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: configuration.directory)) ?? []
        for name in names.sorted() {
            guard let key = Self.key(fromDirectoryName: name) else { continue }
            let directory = configuration.directory + "/" + name
            let files = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".seg") }
            let firsts = files.compactMap { UInt64($0.dropLast(4)) }.sorted()
            let savedCursor = (try? String(contentsOfFile: directory + "/cursor", encoding: .utf8)).flatMap {
                UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines))
            } ?? 1
            var segments: [SegmentFile] = []
            var liveBytes = 0
            var liveRecords = 0
            var corrupt = 0
            for (index, first) in firsts.enumerated() {
                let path = directory + "/" + SegmentFile.fileName(firstSequence: first)
                let (segment, scan) = try SegmentFile.open(path: path, firstSequence: first)
                if scan.validEnd < scan.fileSize {
                    if index == firsts.count - 1 {
                        logger.notice(
                            "Cut a torn write off the end of a queue; it was never acknowledged",
                            metadata: ["segment": "\(path)", "bytes": "\(scan.fileSize - scan.validEnd)"])
                    } else {
                        corrupt += 1
                        logger.error(
                            "A queue segment is corrupt; the records after the damage are lost",
                            metadata: ["segment": "\(path)", "offset": "\(scan.validEnd)"])
                    }
                    segment.truncate(to: scan.validEnd)
                }
                for record in scan.records where record.sequence >= savedCursor {
                    liveBytes += record.size
                    liveRecords += 1
                }
                segments.append(segment)
            }
            if segments.isEmpty { segments = [try SegmentFile.create(directory: directory, firstSequence: savedCursor)] }
            // Segments wholly before the cursor were delivered; a crash may have left them behind.
            while segments.count > 1, segments[1].firstSequence <= savedCursor { segments.removeFirst().remove() }
            let cursor = max(savedCursor, segments[0].firstSequence)
            let queue = Queue(key: key, directory: directory, segments: segments, cursor: cursor)
            queue.liveBytes = liveBytes
            queue.liveRecords = liveRecords
            seek(queue, to: cursor)
            state.withLockedValue { state in
                state.queues[key] = queue
                state.statistics.corrupt += corrupt
            }
            if liveRecords > 0 {
                logger.info("Recovered a queue", metadata: ["queue": "\(key)", "records": "\(liveRecords)"])
            }
        }
    }

    /// Parses `<endpoint>.p<priority>` back into a key.
    static func key(fromDirectoryName name: String) -> QueueKey? {
        guard let dot = name.lastIndex(of: "."), name[name.index(after: dot)...].hasPrefix("p"),
            let priority = Int(name[name.index(dot, offsetBy: 2)...]), (0...9).contains(priority)
        else { return nil }
        guard let endpoint = PropertyBag.percentDecode(name[..<dot], plusIsSpace: false) else { return nil }
        return QueueKey(endpoint: endpoint, priority: priority)
    }
}
