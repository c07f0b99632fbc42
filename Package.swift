// swift-tools-version:6.0
import PackageDescription

// Thin C targets wrap only what Swift cannot call directly (setjmp-based error
// handling, variadic functions). Each links its system library itself, because a
// system library's link setting is ignored when only a C target uses it; libcurl
// is the exception, loaded on first use.
let package = Package(
    name: "PipelineFramework",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Framework", targets: ["Framework"]),
        .library(name: "Stages", targets: ["Stages"]),
        .library(name: "RunnerCLI", targets: ["RunnerCLI"]),
        // For extension authors' tests: a memory sink, a pipeline harness, expectations.
        .library(name: "PipelineTesting", targets: ["PipelineTesting"]),
        .executable(name: "runner", targets: ["runner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .target(name: "CYAML", linkerSettings: [.linkedLibrary("yaml")]),
        .target(name: "CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png16")]),
        // libcurl is opened with dlopen on first use (see CCurl.h); only libdl is linked.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "Framework",
            dependencies: [
                "CYAML",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Stages",
            dependencies: [
                "Framework", "CJPEG", "CPNG", "CCurl",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "RunnerCLI",
            dependencies: [
                "Framework", "Stages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "runner", dependencies: ["RunnerCLI"]),
        .target(name: "PipelineTesting", dependencies: ["Framework"]),
        // Per-stage timings for Benchmarks/run; not a product.
        .executableTarget(
            name: "stage-bench",
            dependencies: ["Framework", "Stages", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "FrameworkTests", dependencies: ["Framework", "PipelineTesting"]),
        // Helpers that start the Python fixtures in Tests/Fixtures (local S3, proxies).
        .target(name: "TestFixtures", path: "Tests/TestFixtures"),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "Framework", "TestFixtures"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Stages", "Framework", "RunnerCLI", "TestFixtures", "PipelineTesting"]),
    ]
)
