// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Sluice", targets: ["Sluice"]),
        .library(name: "SluiceRedis", targets: ["SluiceRedis"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The Swift server conventions the library targets follow: a `Logger` for what happens in the background,
        // swift-metrics for counters/gauges/timers (the application picks the backend), and `Service`s for the
        // background work, so that a ServiceGroup starts and gracefully stops it.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // A span around each Backpressure.call, with its stages, for the application's tracer; and the ServiceContext
        // that carries the request tree (`withValue(_:isolation:operation:)`, as 1.7 has it).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        // SHA-1 for the script digests `EVALSHA` names and SHA-256 for the suffix of cut key names (`Crypto`:
        // BoringSSL on Linux, CryptoKit on Apple platforms), instead of hand-written hashes. Majors 3 and 4 carry the
        // same API; the range lets an application that pins either one use Sluice.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        // `Deque` for the FIFOs of the Redis client: the connection pool's waiters and a connection's submissions.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // `HTTPResponse` and `HTTPFields`, so that a provider's response from Hummingbird, swift-openapi-runtime or
        // NIOHTTPTypes goes to `ProviderObservation` as it is.
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        // The RFC 9651 parser behind the IETF `RateLimit` and `RateLimit-Policy` fields (`rfc9651BareItem`, as 1.7 has it).
        .package(url: "https://github.com/apple/swift-http-structured-headers", from: "1.7.0"),
        // Only the load injector (`sluice storm`) and `sluice serve` use these; the library targets stay free of them.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        // HdrHistogram for the latency percentiles of `sluice bench` and of the storm's reports: each sample is
        // recorded in a histogram (three significant digits: within 0.1%) instead of being kept and sorted. The CLI
        // and the storm only; the library targets stay free of it.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // A Prometheus backend for swift-metrics, for `sluice storm --worker-metrics-port-base`: each storm worker
        // process bootstraps it and serves the library's own metrics on /metrics, so that the dashboard's worker row
        // (docs/grafana-dashboard.json) can be scraped during a storm. The `sluice` executable only; the library
        // targets stay backend-free (the application picks the backend).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // Debian's libhiredis-dev (0.14.1, the RESP reader) and libssl-dev (OpenSSL, for `rediss://`)
        // behind a small, prefixed shim header.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev", "libssl-dev"]), .brew(["hiredis", "openssl@3"])]
        ),
        // The only Swift code that touches hiredis: connections, replies, pipelining, pool, scripts.
        .target(
            name: "SluiceRedis",
            dependencies: [
                "CHiredis",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The limiter itself.
        .target(
            name: "Sluice",
            dependencies: [
                "SluiceRedis",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "RawStructuredFieldValues", package: "swift-http-structured-headers"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
        // The load injector behind `sluice storm`: a mock LLM provider, agent workers, scenarios, reports.
        .target(
            name: "SluiceStorm",
            dependencies: [
                "Sluice", "SluiceRedis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // The reports' latency percentiles.
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            exclude: ["README-section.md"]
        ),
        // The operator's command-line tool.
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Sluice", "SluiceRedis", "SluiceStorm",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `sluice serve`'s Prometheus endpoint.
                .product(name: "Hummingbird", package: "hummingbird"),
                // `sluice bench`'s latency percentiles.
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                // The storm workers' /metrics (`sluice storm --worker-metrics-port-base`).
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The multi-process tests' worker processes: built with the tests, not part of the operator's `sluice`.
        .executableTarget(
            name: "SluiceTestWorker",
            dependencies: [
                "Sluice", "SluiceRedis", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SluiceUnitTests",
            dependencies: [
                "Sluice", "SluiceRedis", "SluiceStorm", .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]),
        .testTarget(
            name: "SluiceIntegrationTests",
            dependencies: [
                "Sluice", "SluiceRedis", "SluiceStorm", "sluice", "SluiceTestWorker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets, one per input surface (Fuzz/README.md). They exist only when SLUICE_FUZZ=1, because only a
// build with `--sanitize=fuzzer` supplies their `main`; scripts/fuzz.sh sets both. The main build never sees them.
if Context.environment["SLUICE_FUZZ"] == "1" {
    let fuzzers: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzProviderHeaders", ["Sluice"]),
        ("FuzzQuotaSpec", ["Sluice"]),
        ("FuzzTreeHeader", ["Sluice"]),
        ("FuzzScenario", ["Sluice", "SluiceStorm"]),
        ("FuzzRESPReplies", ["SluiceRedis"]),
    ]
    for fuzzer in fuzzers {
        package.targets.append(
            .executableTarget(name: fuzzer.name, dependencies: fuzzer.dependencies, path: "Fuzz/\(fuzzer.name)"))
    }
}

// `scripts/sanitize.sh thread` sets SLUICE_THREAD_SANITIZER=1: Sluice's own targets then lock with a pthread mutex that
// ThreadSanitizer can see instead of `Synchronization.Mutex` (Sources/SluiceRedis/Concurrency/SluiceMutex.swift).
// A define here, not `-Xswiftc -D…`, so that only Sluice's targets rebuild, not every dependency.
if Context.environment["SLUICE_THREAD_SANITIZER"] == "1" {
    for target in package.targets where target.type != .system {
        target.swiftSettings = (target.swiftSettings ?? []) + [.define("SLUICE_THREAD_SANITIZER")]
    }
}
