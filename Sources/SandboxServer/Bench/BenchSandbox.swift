import ArgumentParser

// Placeholder registered so the subcommand list is fixed; its issue replaces this file.
struct BenchSandbox: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sandbox", abstract: "Benchmark (sandbox).")
    func run() throws { throw ValidationError("bench sandbox is not built yet") }
}
