import Logging
import SQLKit
import Synchronization

/// Group commit for the SQLite backend: concurrent transactions share one `BEGIN … COMMIT`, and so one
/// fsync, each inside its own savepoint so that a failing body rolls back only itself.
///
/// There is no background task. The first caller to find no flush under way leads: it commits everything
/// queued (its own work included), answers every caller in the batch, then hands the lead to the first
/// caller still waiting, so no request serves others for longer than one batch. Nobody is answered before
/// their batch is durable.
final class GroupCommitter: Sendable {
    enum Wake: Sendable { case lead, done }

    /// One transaction body, type-erased.
    struct Job: Sendable {
        /// Runs the body inside a savepoint; returns whether it succeeded.
        let run: @Sendable (any SQLDatabase) async -> Bool
        /// Records the batch's commit outcome (`nil` for committed).
        let finish: @Sendable ((any Error)?) -> Void
        /// Wakes the caller: to lead the next batch, or because its batch is done.
        let wake: AsyncStream<Wake>.Continuation
    }

    private struct State {
        var queue: [Job] = []
        var flushing = false
    }

    private let state = Mutex(State())
    private let lock: AsyncSerialLock
    private let database: @Sendable () -> any SQLDatabase
    private let logger: Logger

    init(lock: AsyncSerialLock, logger: Logger, database: @escaping @Sendable () -> any SQLDatabase) {
        self.lock = lock
        self.logger = logger
        self.database = database
    }

    /// Runs `body` in the next batch and returns its result once the batch is committed.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> T) async throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self)
        let job = Job(
            run: { db in
                do {
                    let value = try await body(StoreSession(db: db))
                    outcome.withLock { $0 = .success(value) }
                    return true
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                    return false
                }
            },
            finish: { commitError in
                outcome.withLock { result in
                    // In a batch that failed to commit nothing was kept, so no one may be told otherwise.
                    if let commitError, result.map({ (try? $0.get()) != nil }) ?? true { result = .failure(commitError) }
                }
            },
            wake: wake)
        let leader = state.withLock { state -> Bool in
            state.queue.append(job)
            if state.flushing { return false }
            state.flushing = true
            return true
        }
        if leader { await flushOneBatch() }
        for await signal in wakes where signal == .lead {
            await flushOneBatch()
        }
        guard let result = outcome.withLock({ $0 }) else { throw CancellationError() }
        return try result.get()
    }

    /// Commits everything queued as one transaction, answers its callers, and passes the lead on.
    private func flushOneBatch() async {
        let batch = state.withLock { state -> [Job] in
            defer { state.queue.removeAll() }
            return state.queue
        }
        var failure: (any Error)?
        if !batch.isEmpty {
            do {
                try await lock.withLock {
                    let db = database()
                    try await db.raw("BEGIN IMMEDIATE").run()
                    do {
                        for job in batch {
                            try await db.raw("SAVEPOINT rampart_job").run()
                            if !(await job.run(db)) { try await db.raw("ROLLBACK TO rampart_job").run() }
                            try await db.raw("RELEASE rampart_job").run()
                        }
                        try await db.raw("COMMIT").run()
                    } catch {
                        try? await db.raw("ROLLBACK").run()
                        throw error
                    }
                }
            } catch {
                logger.error("A group commit failed; all of its transactions are rolled back", metadata: ["error": "\(error)"])
                failure = error
            }
        }
        for job in batch {
            job.finish(failure)
            job.wake.yield(.done)
            job.wake.finish()
        }
        let next = state.withLock { state -> Job? in
            guard let first = state.queue.first else {
                state.flushing = false
                return nil
            }
            return first
        }
        next?.wake.yield(.lead)
    }
}
