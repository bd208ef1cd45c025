import ArgumentParser

@main
struct SandboxServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-server",
        abstract: "Runs untrusted programs in Linux sandboxes over HTTP."
    )
}
