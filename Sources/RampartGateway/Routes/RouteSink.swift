/// Where a route delivers the messages it selects.
public enum RouteSink: Sendable, Hashable, CustomStringConvertible {
    /// `$upstream`: the cloud (IoT Hub, or Rampart's server).
    case upstream
    /// `BrokeredEndpoint("/modules/{module}/inputs/{input}")`: an input of a module on this gateway.
    case brokeredEndpoint(module: String, input: String)

    /// The sink as a route spells it: `$upstream` or `BrokeredEndpoint("/modules/m/inputs/i")`.
    public var description: String {
        switch self {
        case .upstream:
            "$upstream"
        case .brokeredEndpoint(let module, let input):
            "BrokeredEndpoint(\"/modules/\(module)/inputs/\(input)\")"
        }
    }
}
