import ArgumentParser

/// `sandbox-server bench …`: benchmarks, each reporting medians and ratios against a baseline
/// measured in the same run. Not tests: nothing here passes or fails on a figure.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the sandbox, the store and the HTTP server against baselines.",
        subcommands: [BenchSandbox.self, BenchStore.self, BenchHTTP.self, BenchE2E.self]
    )
}
