import Foundation

/// What the device last learned about its uplink from the router control channel (docs/router-control-channel.md).
///
/// Informational only: these facts come from a router the device does not trust, so they schedule servicing
/// and inform apps, and never decide a security question.
public struct LinkFacts: Codable, Sendable, Equatable {
    /// Received signal strength in dBm (from `+CSQ`: −113 + 2 × rssi), `nil` when unknown.
    public var signalDBm: Int?
    /// Bit error rate class 0–7 (from `+CSQ`), `nil` when unknown.
    public var bitErrorRate: Int?
    /// Network registration (from `+CREG`).
    public var registration: Registration?
    /// The operator's name (from `+COPS`).
    public var operatorName: String?
    /// The radio access technology (from `+COPS`).
    public var radio: RadioTechnology?
    /// Bytes the router counted on the cellular link since it started (from `+RDATA`).
    public var routerSentBytes: Int64?
    public var routerReceivedBytes: Int64?
    /// When the last valid report arrived.
    public var reportedAt: Date?

    /// 3GPP TS 27.007 `+CREG` `<stat>`.
    public enum Registration: String, Codable, Sendable, CaseIterable {
        case notRegistered, home, searching, denied, unknown, roaming
    }

    /// 3GPP TS 27.007 `+COPS` `<AcT>`, folded into the families that matter for scheduling.
    public enum RadioTechnology: String, Codable, Sendable, CaseIterable {
        case gsm, umts, lte, nbIoT = "nb-iot", nr
    }

    /// Whether the device is registered on a visited network.
    public var roaming: Bool { registration == .roaming }

    public init(
        signalDBm: Int? = nil, bitErrorRate: Int? = nil, registration: Registration? = nil, operatorName: String? = nil,
        radio: RadioTechnology? = nil, routerSentBytes: Int64? = nil, routerReceivedBytes: Int64? = nil, reportedAt: Date? = nil
    ) {
        self.signalDBm = signalDBm
        self.bitErrorRate = bitErrorRate
        self.registration = registration
        self.operatorName = operatorName
        self.radio = radio
        self.routerSentBytes = routerSentBytes
        self.routerReceivedBytes = routerReceivedBytes
        self.reportedAt = reportedAt
    }
}

/// Servicing data (attestation, update checks and downloads, error reports) the device sent and received this
/// month, counted on the wire (TLS included) by its service egress.
public struct ServicingDataUsage: Codable, Sendable, Equatable {
    /// The UTC month counted, `YYYY-MM`.
    public var month: String
    /// Bytes both ways this month.
    public var bytes: Int64
    /// The group's monthly budget when the device last heard it; `nil` for none.
    public var budgetBytes: Int64?
    /// Set when a security-critical update was downloaded beyond the budget this month.
    public var exceededForCriticalUpdate: Bool

    public init(month: String, bytes: Int64, budgetBytes: Int64?, exceededForCriticalUpdate: Bool = false) {
        self.month = month
        self.bytes = bytes
        self.budgetBytes = budgetBytes
        self.exceededForCriticalUpdate = exceededForCriticalUpdate
    }
}

extension ServicingDataUsage {
    /// `0.42 MB of 1 MB (2026-11)`, in MB of 10^6 bytes, with a note when a security-critical update went beyond
    /// the budget.
    public var summary: String {
        var text = Self.megabytes(bytes)
        if let budgetBytes { text += " of \(Self.megabytes(budgetBytes))" }
        text += " (\(month))"
        if budgetBytes == nil { text += ", no budget" }
        if exceededForCriticalUpdate { text += "; over budget for a security-critical update" }
        return text
    }

    /// Bytes in MB of 10^6: `3 MB`, `0.42 MB`.
    public static func megabytes(_ bytes: Int64) -> String {
        if bytes % 1_000_000 == 0 { return "\(bytes / 1_000_000) MB" }
        return String(format: "%.2f MB", Double(bytes) / 1_000_000)
    }
}

extension LinkFacts {
    /// Field and value rows for tables (`device show`, `device network show-status`). The router is not trusted,
    /// so the operator's name reaches the terminal without control characters.
    public var rows: [[String]] {
        var rows: [[String]] = []
        if let signalDBm {
            rows.append(["Signal", "\(signalDBm) dBm" + (bitErrorRate.map { " (bit error rate class \($0))" } ?? "")])
        }
        if let registration {
            rows.append(["Registration", registration.rawValue])
            rows.append(["Roaming", roaming ? "yes" : "no"])
        }
        if let operatorName {
            let scalars = operatorName.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }
            rows.append(["Operator", String(String.UnicodeScalarView(scalars))])
        }
        if let radio { rows.append(["Radio", radio.rawValue]) }
        if let routerSentBytes, let routerReceivedBytes {
            rows.append(["Router data counters", "sent \(routerSentBytes), received \(routerReceivedBytes) bytes"])
        }
        if let reportedAt { rows.append(["Link reported at", Timestamp.format(reportedAt)]) }
        return rows
    }
}
