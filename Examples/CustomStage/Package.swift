// swift-tools-version:6.0
import PackageDescription

// An extension package: new stage types and a runner that knows them, without a
// change to the pipeline framework itself, which it depends on by path.
let package = Package(
    name: "CustomStage",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "PipelineFramework", path: "../.."),
    ],
    targets: [
        .target(
            name: "CustomStages",
            dependencies: [
                .product(name: "Framework", package: "PipelineFramework"),
                .product(name: "Stages", package: "PipelineFramework"),
            ]
        ),
        .executableTarget(
            name: "custom-runner",
            dependencies: ["CustomStages", .product(name: "RunnerCLI", package: "PipelineFramework")]
        ),
        .testTarget(
            name: "CustomStagesTests",
            dependencies: [
                "CustomStages",
                .product(name: "PipelineTesting", package: "PipelineFramework"),
                .product(name: "Stages", package: "PipelineFramework"),
            ]
        ),
    ]
)
