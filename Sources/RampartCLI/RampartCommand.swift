import ArgumentParser
import Foundation
import RampartCore

/// The `rampart` command tree, shaped like azsphere: `rampart <group> <operation> [options]`.
public struct RampartCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "Rampart: a self-hosted security service, device runtime and gateway for IoT fleets.",
        subcommands: [
            DemoCommand.self, ServerCommand.self, RegisterUserCommand.self, LoginCommand.self, TenantCommand.self,
            RoleCommand.self, CACertificateCommand.self, DeviceCommand.self, ManufactureCommand.self, DoctorCommand.self, BenchCommand.self,
            ProductCommand.self, DeviceGroupCommand.self, ImagePackageCommand.self, ImageCommand.self,
            RuntimeReleaseCommand.self, DeploymentCommand.self, TUFClientCommand.self, GatewayCommand.self,
        ])

    public init() {}

    /// Parses the arguments and runs the command. Errors print as `code: message` on standard error and
    /// exit non-zero.
    public static func main(arguments: [String]? = nil) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as RampartError {
            ErrorReporter.report(error)
            return 1
        } catch {
            let code = exitCode(for: error)
            if code != .success, (arguments ?? Array(CommandLine.arguments.dropFirst())).first == "tuf-client" {
                // The TUF client's interface promises exit status 1 for every failure, usage errors included.
                FileHandle.standardError.write(Data("\(fullMessage(for: error))\n".utf8))
                return 1
            }
            if code == .success {
                print(fullMessage(for: error))
                return 0
            }
            FileHandle.standardError.write(Data("\(fullMessage(for: error))\n".utf8))
            return code.rawValue
        }
    }
}
