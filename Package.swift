// swift-tools-version: 6.0
import PackageDescription

// Data flows one way: HTTPCore ← SandboxServer → JobStore, Isolation.
// Library modules never import the executable or each other.
let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "SandboxServer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sandbox-server", targets: ["SandboxServer"]),
        .library(name: "Isolation", targets: ["Isolation"]),
        .library(name: "JobStore", targets: ["JobStore"]),
        .library(name: "HTTPCore", targets: ["HTTPCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // MARK: Isolation — the sandbox.
        // The sandbox's PID 1, freestanding: its code section is run as a program of its own.
        .target(
            name: "CSandboxInit",
            cSettings: [.unsafeFlags([
                "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fno-jump-tables",
                "-fno-asynchronous-unwind-tables", "-fno-sanitize=all",
            ])]
        ),
        .target(
            name: "CIsolation",
            dependencies: ["CSandboxInit"],
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        .target(name: "Isolation", dependencies: ["CIsolation"], swiftSettings: strictSwift),

        // MARK: JobStore — durable queue on the system SQLite.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "JobStore", dependencies: ["CSQLite"], swiftSettings: strictSwift),
        // Test helper: writes to a store until SIGKILLed (JobStoreTests' crash-consistency test).
        .executableTarget(name: "JobStoreCrashWriter", dependencies: ["JobStore"], swiftSettings: strictSwift),

        // MARK: HTTPCore — HTTP/1.1 on POSIX sockets.
        .target(name: "CHTTPCoreShims", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "HTTPCore", dependencies: ["CHTTPCoreShims"], swiftSettings: strictSwift),
        // libFuzzer target for the request parser (scripts/fuzz-http.sh); a replay tool otherwise.
        .executableTarget(name: "HTTPParserFuzzer", dependencies: ["HTTPCore"], swiftSettings: strictSwift),

        // MARK: The executable.
        .executableTarget(
            name: "SandboxServer",
            dependencies: [
                "HTTPCore", "JobStore", "Isolation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Tests, one folder per module.
        .testTarget(name: "IsolationTests", dependencies: ["Isolation"], swiftSettings: strictSwift),
        .testTarget(
            name: "JobStoreTests", dependencies: ["JobStore", "CSQLite", "JobStoreCrashWriter"],
            swiftSettings: strictSwift),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore"], exclude: ["FuzzCorpus"], swiftSettings: strictSwift),
        .testTarget(name: "SandboxServerTests", dependencies: ["SandboxServer"], swiftSettings: strictSwift),
    ],
    swiftLanguageModes: [.v6]
)
