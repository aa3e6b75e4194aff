#if SLUICE_THREAD_SANITIZER
    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Musl)
        import Musl
    #elseif canImport(Darwin)
        import Darwin
    #endif

    /// The mutex Sluice's code locks its state with, built for ThreadSanitizer (`scripts/sanitize.sh thread` sets
    /// `SLUICE_THREAD_SANITIZER`): a `pthread_mutex_t`, whose lock and unlock ThreadSanitizer intercepts, so that it
    /// sees the ordering a lock gives and reports only accesses that no lock orders. `Synchronization.Mutex` locks a
    /// futex inside the uninstrumented standard library, which ThreadSanitizer cannot see on Linux: every access under
    /// its `withLock` looks like a race. Same API as `Mutex` (`init`, `withLock`); slower, and only in that build.
    package final class SluiceMutex<Value: ~Copyable>: @unchecked Sendable {
        private let mutex: UnsafeMutablePointer<pthread_mutex_t>
        private let storage: UnsafeMutablePointer<Value>

        package init(_ initialValue: consuming sending Value) {
            mutex = .allocate(capacity: 1)
            mutex.initialize(to: pthread_mutex_t())
            pthread_mutex_init(mutex, nil)
            storage = .allocate(capacity: 1)
            storage.initialize(to: initialValue)
        }

        deinit {
            storage.deinitialize(count: 1)
            storage.deallocate()
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
        }

        /// Runs `body` with the value, holding the lock (as `Mutex.withLock`).
        package func withLock<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&storage.pointee)
        }
    }
#else
    import Synchronization

    /// The mutex Sluice's code locks its state with: `Synchronization.Mutex` itself (no wrapper, no allocation).
    /// Built with `SLUICE_THREAD_SANITIZER` (`scripts/sanitize.sh thread`), it is a `pthread_mutex_t` instead, which
    /// ThreadSanitizer can see; `Mutex`'s futex it cannot, on Linux.
    package typealias SluiceMutex<Value: ~Copyable> = Mutex<Value>
#endif
