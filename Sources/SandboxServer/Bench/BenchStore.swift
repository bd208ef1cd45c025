import ArgumentParser

// Placeholder registered so the subcommand list is fixed; its issue replaces this file.
struct BenchStore: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Benchmark (store).")
    func run() throws { throw ValidationError("bench store is not built yet") }
}
