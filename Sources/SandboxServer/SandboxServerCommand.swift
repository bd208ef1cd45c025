import ArgumentParser

/// The `sandbox-server` executable: one binary, several subcommands.
@main
struct SandboxServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-server",
        abstract: "Runs untrusted programs in Linux sandboxes over HTTP.",
        subcommands: [ServeCommand.self, RunCommand.self, BenchCommand.self]
    )
}
