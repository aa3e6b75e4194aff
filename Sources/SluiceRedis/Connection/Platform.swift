#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The few operating-system calls whose Swift spelling differs between Linux and Darwin, in one
/// place (socket calls that differ live in the C shim, `sluice_send` and `sluice_prepare_socket`).
enum Platform {
    /// Closes a file descriptor.
    static func closeDescriptor(_ fd: Int32) {
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #elseif canImport(Darwin)
            _ = Darwin.close(fd)
        #endif
    }

    /// Starts a detached thread running `body`; it must not return before its work is done.
    static func startThread(_ body: @escaping @Sendable () -> Void) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let argument = Unmanaged.passRetained(Box(body)).toOpaque()
        #if canImport(Glibc)
            var thread = pthread_t()
            let status = pthread_create(
                &thread, nil,
                { argument in
                    Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
                    return nil
                }, argument)
        #elseif canImport(Darwin)
            var thread: pthread_t?
            let status = pthread_create(
                &thread, nil,
                { argument in
                    Unmanaged<Box>.fromOpaque(argument).takeRetainedValue().body()
                    return nil
                }, argument)
        #endif
        precondition(status == 0, "could not start the Redis I/O thread: \(status)")
        #if canImport(Glibc)
            pthread_detach(thread)
        #elseif canImport(Darwin)
            pthread_detach(thread!)
        #endif
    }

    /// The text of an `errno` value.
    static func describe(errno code: Int32) -> String {
        String(cString: strerror(code))
    }
}

/// Nanoseconds of the monotonic clock (`CLOCK_MONOTONIC`).
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
