import ArgumentParser

// Placeholder registered so the subcommand list is fixed; its issue replaces this file.
struct BenchHTTP: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "http", abstract: "Benchmark (http).")
    func run() throws { throw ValidationError("bench http is not built yet") }
}
