import Logging
import SQLKit
import Synchronization

/// Group commit for the SQLite backend: concurrent transactions share one `BEGIN … COMMIT`, and so one
/// fsync, each inside its own savepoint so that a failing body rolls back only itself.
///
/// There is no background task: the first caller to find no flush under way becomes the leader and
/// commits batches until the queue is empty; everyone else waits for the commit that holds their work.
/// Nobody is answered before their batch is durable.
final class GroupCommitter: Sendable {
    /// One transaction body, type-erased.
    struct Job: Sendable {
        /// Runs the body inside a savepoint; returns whether it succeeded.
        let run: @Sendable (any SQLDatabase) async -> Bool
        /// Answers the caller once the batch is committed (`nil`) or failed (the error).
        let finish: @Sendable ((any Error)?) -> Void
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
        let promise = Promise<T>()
        let outcome = Mutex<Result<T, any Error>?>(nil)
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
                let result = outcome.withLock { $0 }
                switch (commitError, result) {
                case (.some(let error), .some(.success)), (.some(let error), .none): promise.fulfill(.failure(error))
                case (_, .some(let result)): promise.fulfill(result)
                case (.none, .none): promise.fulfill(.failure(CancellationError()))
                }
            })
        let leader = state.withLock { state -> Bool in
            state.queue.append(job)
            if state.flushing { return false }
            state.flushing = true
            return true
        }
        if leader { await flush() }
        return try await promise.value()
    }

    private func flush() async {
        while true {
            let batch = state.withLock { state -> [Job] in
                let batch = state.queue
                state.queue.removeAll()
                if batch.isEmpty { state.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            var failure: (any Error)?
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
            for job in batch { job.finish(failure) }
        }
    }
}

/// A value delivered once, awaited once.
final class Promise<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<T, any Error>?
    }

    private let state = Mutex(State())

    func fulfill(_ result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
