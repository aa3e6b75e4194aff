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
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // Debian's libhiredis-dev (0.14.1) behind a small, prefixed shim header.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]
        ),
        // The only Swift code that touches hiredis: connections, replies, pipelining, pool, scripts.
        .target(name: "SluiceRedis", dependencies: ["CHiredis"]),
        // The limiter itself.
        .target(name: "Sluice", dependencies: ["SluiceRedis"]),
        // The operator's command-line tool.
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Sluice", "SluiceRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SluiceUnitTests", dependencies: ["Sluice", "SluiceRedis"]),
        .testTarget(name: "SluiceIntegrationTests", dependencies: ["Sluice", "SluiceRedis", "sluice"]),
    ],
    swiftLanguageModes: [.v6]
)
