import Foundation

// Wire types shared by the server and the CLI. Field names are the contract in docs/openapi.yaml.

/// A request body whose keys are checked strictly: unknown fields are refused.
public protocol APIRequest: Decodable, Sendable {
    /// Every key the body may contain.
    static var allowedKeys: Set<String> { get }
    /// Every key each nested object may contain, by the top-level key that holds it (an object, or an array of
    /// objects). Nested objects not listed here are not checked.
    static var nestedAllowedKeys: [String: Set<String>] { get }
}

extension APIRequest {
    public static var nestedAllowedKeys: [String: Set<String>] { [:] }
}

/// The body of every error response.
public struct APIErrorBody: Codable, Sendable {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// A registered user.
public struct UserInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var email: String
    public var serverAdministrator: Bool
    public var createdAt: Date
    public init(id: RampartID, email: String, serverAdministrator: Bool, createdAt: Date) {
        self.id = id
        self.email = email
        self.serverAdministrator = serverAdministrator
        self.createdAt = createdAt
    }
}

/// `POST /v1/users/register`.
public struct RegisterUserRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["invitation", "publicKey"]
    public var invitation: String
    /// PEM SubjectPublicKeyInfo of the user's P-256 key.
    public var publicKey: String
    public init(invitation: String, publicKey: String) {
        self.invitation = invitation
        self.publicKey = publicKey
    }
}

/// `POST /v1/auth/challenge`.
public struct LoginChallengeRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["userId"]
    public var userId: RampartID
    public init(userId: RampartID) { self.userId = userId }
}

/// A login challenge to sign.
public struct LoginChallenge: Codable, Sendable {
    public var challengeId: RampartID
    public var nonce: String
    public var expiresAt: Date
    public init(challengeId: RampartID, nonce: String, expiresAt: Date) {
        self.challengeId = challengeId
        self.nonce = nonce
        self.expiresAt = expiresAt
    }

    /// The exact bytes a user signs to answer a challenge.
    public static func signedMessage(challengeId: RampartID, nonce: String) -> Data {
        Data("rampart-login:v1:\(challengeId):\(nonce)".utf8)
    }
}

/// `POST /v1/auth/token`.
public struct LoginTokenRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["challengeId", "signature"]
    public var challengeId: RampartID
    /// base64url DER ECDSA signature over ``LoginChallenge/signedMessage(challengeId:nonce:)``.
    public var signature: String
    public init(challengeId: RampartID, signature: String) {
        self.challengeId = challengeId
        self.signature = signature
    }
}

/// A short-lived bearer token.
public struct LoginToken: Codable, Sendable {
    public var token: String
    public var expiresAt: Date
    public init(token: String, expiresAt: Date) {
        self.token = token
        self.expiresAt = expiresAt
    }
}

/// A tenant as one user sees it.
public struct TenantInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var name: String
    /// The caller's role in this tenant.
    public var role: Role
    public var createdAt: Date
    public var updatedAt: Date
    public init(id: RampartID, name: String, role: Role, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.role = role
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `POST /v1/tenants` and `PATCH /v1/tenants/{id}`.
public struct TenantNameRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["name"]
    public var name: String
    public init(name: String) { self.name = name }
}

/// `GET /v1/tenants`.
public struct TenantList: Codable, Sendable {
    public var tenants: [TenantInfo]
    public init(tenants: [TenantInfo]) { self.tenants = tenants }
}

/// Whether a role assignment belongs to a registered user or waits on an invitation.
public enum RoleAssignmentStatus: String, Codable, Sendable {
    case active
    case invited
}

/// One user's role in a tenant.
public struct RoleAssignment: Codable, Sendable, Equatable {
    public var email: String
    public var role: Role
    public var status: RoleAssignmentStatus
    public var userId: RampartID?
    public init(email: String, role: Role, status: RoleAssignmentStatus, userId: RampartID?) {
        self.email = email
        self.role = role
        self.status = status
        self.userId = userId
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(email, forKey: .email)
        try c.encode(role, forKey: .role)
        try c.encode(status, forKey: .status)
        try c.encode(userId, forKey: .userId)  // explicit null, as the spec says
    }
}

/// `GET /v1/tenants/{id}/roles`.
public struct RoleList: Codable, Sendable {
    public var roles: [RoleAssignment]
    public init(roles: [RoleAssignment]) { self.roles = roles }
}

/// `POST /v1/tenants/{id}/roles`.
public struct RoleAddRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["email", "role"]
    public var email: String
    public var role: Role
    public init(email: String, role: Role) {
        self.email = email
        self.role = role
    }
}

/// The answer to a role grant: either active at once, or an invitation to pass on.
public struct RoleGrant: Codable, Sendable {
    public var email: String
    public var role: Role
    public var status: RoleAssignmentStatus
    public var invitation: String?
    public var expiresAt: Date?
    public init(email: String, role: Role, status: RoleAssignmentStatus, invitation: String?, expiresAt: Date?) {
        self.email = email
        self.role = role
        self.status = status
        self.invitation = invitation
        self.expiresAt = expiresAt
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(email, forKey: .email)
        try c.encode(role, forKey: .role)
        try c.encode(status, forKey: .status)
        try c.encode(invitation, forKey: .invitation)
        try c.encode(expiresAt, forKey: .expiresAt)
    }
}

/// The lifecycle state of a tenant CA.
public enum CAStatus: String, Codable, Sendable {
    case active = "Active"
    case inactive = "Inactive"
    case revoked = "Revoked"
}

/// A tenant CA certificate as listed.
public struct CACertificateInfo: Codable, Sendable, Equatable {
    /// Lowercase hex SHA-256 of the DER certificate.
    public var thumbprint: String
    public var status: CAStatus
    public var subject: String
    public var notBefore: Date
    public var notAfter: Date
    public var createdAt: Date
    public init(
        thumbprint: String, status: CAStatus, subject: String, notBefore: Date, notAfter: Date, createdAt: Date
    ) {
        self.thumbprint = thumbprint
        self.status = status
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.createdAt = createdAt
    }
}

/// `GET /v1/tenants/{id}/ca-certificates`.
public struct CACertificateList: Codable, Sendable {
    public var certificates: [CACertificateInfo]
    public init(certificates: [CACertificateInfo]) { self.certificates = certificates }
}

/// Encodings offered for certificate downloads.
public enum CertificateFormat: String, Codable, Sendable, CaseIterable {
    case pem
    case der

    /// Parses `pem` or `der`, in any case.
    ///
    /// - Throws: ``RampartError`` `invalidRequest`.
    public init(parsing text: String) throws {
        guard let format = CertificateFormat(rawValue: text.lowercased()) else {
            throw RampartError.invalidRequest("The format must be pem or der, not '\(text.prefix(16))'.")
        }
        self = format
    }
}

/// `POST /v1/tenants/{id}/ca-certificates/{thumbprint}/proof`.
public struct ProofRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["verificationCode", "format"]
    public var verificationCode: String
    public var format: CertificateFormat?
    public init(verificationCode: String, format: CertificateFormat? = nil) {
        self.verificationCode = verificationCode
        self.format = format
    }
}

/// One audit log entry.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var id: RampartID
    public var time: Date
    /// The acting user's email, or `system`.
    public var actor: String
    public var tenantId: RampartID?
    public var action: String
    public var target: String
    /// `success`, or the error code of a refusal.
    public var result: String
    public init(
        id: RampartID, time: Date, actor: String, tenantId: RampartID?, action: String, target: String, result: String
    ) {
        self.id = id
        self.time = time
        self.actor = actor
        self.tenantId = tenantId
        self.action = action
        self.target = target
        self.result = result
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(time, forKey: .time)
        try c.encode(actor, forKey: .actor)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(action, forKey: .action)
        try c.encode(target, forKey: .target)
        try c.encode(result, forKey: .result)
    }
}

/// `GET /v1/tenants/{id}/audit`.
public struct AuditList: Codable, Sendable {
    public var events: [AuditEvent]
    public init(events: [AuditEvent]) { self.events = events }
}

/// `GET /healthz`.
public struct HealthStatus: Codable, Sendable {
    public var status: String
    public init(status: String) { self.status = status }
}

// MARK: - Devices and attestation

/// `POST /v1/attestation/challenge`.
public struct AttestationChallengeRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["deviceId"]
    public var deviceId: String
    public init(deviceId: String) { self.deviceId = deviceId }
}

/// A single-use attestation nonce.
public struct AttestationChallenge: Codable, Sendable {
    /// base64url, 32 bytes.
    public var nonce: String
    public var expiresAt: Date
    public init(nonce: String, expiresAt: Date) {
        self.nonce = nonce
        self.expiresAt = expiresAt
    }
}

/// `POST /v1/attestation`.
public struct AttestationRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["evidence"]
    /// The EAT as a compact JWS.
    public var evidence: String
    public init(evidence: String) { self.evidence = evidence }
}

/// A successful attestation: the 24 h device certificate and when to come back.
public struct AttestationResult: Codable, Sendable {
    /// PEM certificates: the device certificate, then the issuing tenant CA.
    public var certificateChain: [String]
    public var notAfter: Date
    public var tenantId: RampartID
    public var productId: RampartID?
    public var deviceGroupId: RampartID?
    public var repositoryURL: String?
    public var nextAttestationAfter: Date
    public init(
        certificateChain: [String], notAfter: Date, tenantId: RampartID, productId: RampartID?,
        deviceGroupId: RampartID?, repositoryURL: String?, nextAttestationAfter: Date
    ) {
        self.certificateChain = certificateChain
        self.notAfter = notAfter
        self.tenantId = tenantId
        self.productId = productId
        self.deviceGroupId = deviceGroupId
        self.repositoryURL = repositoryURL
        self.nextAttestationAfter = nextAttestationAfter
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(certificateChain, forKey: .certificateChain)
        try c.encode(notAfter, forKey: .notAfter)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(productId, forKey: .productId)
        try c.encode(deviceGroupId, forKey: .deviceGroupId)
        try c.encode(repositoryURL, forKey: .repositoryURL)
        try c.encode(nextAttestationAfter, forKey: .nextAttestationAfter)
    }
}

/// `POST /v1/tenants/{id}/devices`: claim a device.
public struct DeviceClaimRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["deviceId"]
    public var deviceId: String
    public init(deviceId: String) { self.deviceId = deviceId }
}

/// A device as its tenant sees it.
public struct DeviceInfo: Codable, Sendable, Equatable {
    public var id: String
    public var tenantId: RampartID
    public var claimedAt: Date?
    public var firstSeenAt: Date?
    public var lastSeenAt: Date?
    public var hardwareModel: String?
    public var softwareVersion: String?
    public var lastAttestationAt: Date?
    /// `success` or the refusal code of the last attestation.
    public var lastAttestationResult: String?
    public var certificateNotAfter: Date?
    /// The gateway the device connects through, if one is registered.
    public var parentId: String?
    /// Whether the device is a hub: a gateway that may store telemetry and fetch cloud-to-device messages
    /// for any device of the tenant (`device set-hub`). Other gateways act for their registered children.
    public var hub: Bool
    /// The link facts the device last reported (from its router control channel), if any.
    public var link: LinkFacts?
    /// The servicing data the device last reported using this month.
    public var dataUsage: ServicingDataUsage?
    /// Since when the device is in development mode (`device enable-development`); `nil` when it is not.
    public var developmentSince: Date?
    /// Whether the device said, in its last update report, that it holds the development capability: the
    /// device's side of development mode, which follows the server's within an update check.
    public var deviceDevelopmentMode: Bool?
    public init(
        id: String, tenantId: RampartID, claimedAt: Date?, firstSeenAt: Date?, lastSeenAt: Date?,
        hardwareModel: String?, softwareVersion: String?, lastAttestationAt: Date?, lastAttestationResult: String?,
        certificateNotAfter: Date?, parentId: String? = nil, hub: Bool = false, link: LinkFacts? = nil,
        dataUsage: ServicingDataUsage? = nil
    ) {
        self.link = link
        self.dataUsage = dataUsage
        self.parentId = parentId
        self.hub = hub
        self.id = id
        self.tenantId = tenantId
        self.claimedAt = claimedAt
        self.firstSeenAt = firstSeenAt
        self.lastSeenAt = lastSeenAt
        self.hardwareModel = hardwareModel
        self.softwareVersion = softwareVersion
        self.lastAttestationAt = lastAttestationAt
        self.lastAttestationResult = lastAttestationResult
        self.certificateNotAfter = certificateNotAfter
    }

    private enum CodingKeys: String, CodingKey {
        case id, tenantId, claimedAt, firstSeenAt, lastSeenAt, hardwareModel, softwareVersion, lastAttestationAt
        case lastAttestationResult, certificateNotAfter, parentId, hub, link, dataUsage, developmentSince, deviceDevelopmentMode
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        tenantId = try c.decode(RampartID.self, forKey: .tenantId)
        claimedAt = try c.decodeIfPresent(Date.self, forKey: .claimedAt)
        firstSeenAt = try c.decodeIfPresent(Date.self, forKey: .firstSeenAt)
        lastSeenAt = try c.decodeIfPresent(Date.self, forKey: .lastSeenAt)
        hardwareModel = try c.decodeIfPresent(String.self, forKey: .hardwareModel)
        softwareVersion = try c.decodeIfPresent(String.self, forKey: .softwareVersion)
        lastAttestationAt = try c.decodeIfPresent(Date.self, forKey: .lastAttestationAt)
        lastAttestationResult = try c.decodeIfPresent(String.self, forKey: .lastAttestationResult)
        certificateNotAfter = try c.decodeIfPresent(Date.self, forKey: .certificateNotAfter)
        parentId = try c.decodeIfPresent(String.self, forKey: .parentId)
        // Absent from servers older than the hub role.
        hub = try c.decodeIfPresent(Bool.self, forKey: .hub) ?? false
        link = try c.decodeIfPresent(LinkFacts.self, forKey: .link)
        dataUsage = try c.decodeIfPresent(ServicingDataUsage.self, forKey: .dataUsage)
        developmentSince = try c.decodeIfPresent(Date.self, forKey: .developmentSince)
        deviceDevelopmentMode = try c.decodeIfPresent(Bool.self, forKey: .deviceDevelopmentMode)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(claimedAt, forKey: .claimedAt)
        try c.encode(firstSeenAt, forKey: .firstSeenAt)
        try c.encode(lastSeenAt, forKey: .lastSeenAt)
        try c.encode(hardwareModel, forKey: .hardwareModel)
        try c.encode(softwareVersion, forKey: .softwareVersion)
        try c.encode(lastAttestationAt, forKey: .lastAttestationAt)
        try c.encode(lastAttestationResult, forKey: .lastAttestationResult)
        try c.encode(certificateNotAfter, forKey: .certificateNotAfter)
        try c.encode(parentId, forKey: .parentId)
        try c.encode(hub, forKey: .hub)
        // Absent until the device reports them.
        try c.encodeIfPresent(link, forKey: .link)
        try c.encodeIfPresent(dataUsage, forKey: .dataUsage)
        try c.encode(developmentSince, forKey: .developmentSince)
        try c.encodeIfPresent(deviceDevelopmentMode, forKey: .deviceDevelopmentMode)
    }
}

/// `device set-parent`: the gateway a device connects through; `null` clears it.
public struct SetParentRequest: APIRequest, Codable, Equatable {
    public static let allowedKeys: Set<String> = ["parentId"]
    public var parentId: String?
    public init(parentId: String?) { self.parentId = parentId }
    private enum CodingKeys: String, CodingKey { case parentId }
    public init(from decoder: any Decoder) throws {
        // The key is required, so that a request that forgot it does not clear the parent by accident.
        parentId = try decoder.container(keyedBy: CodingKeys.self).decode(String?.self, forKey: .parentId)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(parentId, forKey: .parentId)
    }
}

/// A gateway's registered children.
public struct ChildList: Codable, Sendable, Equatable {
    public var children: [String]
    public init(children: [String]) { self.children = children }
}

/// `GET /v1/tenants/{id}/devices`.
public struct DeviceList: Codable, Sendable {
    public var devices: [DeviceInfo]
    public init(devices: [DeviceInfo]) { self.devices = devices }
}

/// `POST /v1/tenants/{id}/reference-values`: accept a runtime digest for attestation.
public struct ReferenceValueRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["sha256", "version", "description"]
    public var sha256: String
    public var version: String
    public var description: String?
    public init(sha256: String, version: String, description: String? = nil) {
        self.sha256 = sha256
        self.version = version
        self.description = description
    }
}

/// An accepted or revoked runtime digest.
public struct ReferenceValue: Codable, Sendable, Equatable {
    public var sha256: String
    public var version: String
    public var description: String
    /// `accepted` or `revoked`.
    public var status: String
    public var createdAt: Date
    public init(sha256: String, version: String, description: String, status: String, createdAt: Date) {
        self.sha256 = sha256
        self.version = version
        self.description = description
        self.status = status
        self.createdAt = createdAt
    }
}

/// `GET /v1/tenants/{id}/reference-values`.
public struct ReferenceValueList: Codable, Sendable {
    public var referenceValues: [ReferenceValue]
    public init(referenceValues: [ReferenceValue]) { self.referenceValues = referenceValues }
}

/// One row of the error report, with the columns Azure Sphere's report has, and the app it concerns.
public struct ErrorReportRow: Codable, Sendable, Equatable {
    public var deviceId: String
    public var eventType: String
    public var eventClass: String
    public var eventCount: Int
    public var description: String
    public var startTimestamp: Date
    public var endTimestamp: Date
    /// The app's component ID for events a device reported about one of its apps; absent otherwise.
    public var componentId: String?
    public init(
        deviceId: String, eventType: String, eventClass: String, eventCount: Int, description: String,
        startTimestamp: Date, endTimestamp: Date, componentId: String? = nil
    ) {
        self.deviceId = deviceId
        self.eventType = eventType
        self.eventClass = eventClass
        self.eventCount = eventCount
        self.description = description
        self.startTimestamp = startTimestamp
        self.endTimestamp = endTimestamp
        self.componentId = componentId
    }
}

/// `GET /v1/tenants/{id}/error-report`.
public struct ErrorReport: Codable, Sendable {
    public var events: [ErrorReportRow]
    public init(events: [ErrorReportRow]) { self.events = events }

    /// The CSV header: Azure Sphere's columns in their order, then the component (empty when none).
    public static let csvHeader =
        "Device ID,Event Type,Event Class,Event Count,Description,Start Timestamp,End Timestamp,Component ID"

    /// The report as CSV with a header row, fields quoted where needed (RFC 4180).
    public var csv: String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        // A description comes from a device, and through it from an app: one that starts like a formula
        // would run in a spreadsheet, so it gets a leading apostrophe (OWASP's CSV injection advice).
        func inert(_ text: String) -> String {
            guard let first = text.first, "=+-@\t\r".contains(first) else { return text }
            return "'" + text
        }
        var lines = [Self.csvHeader]
        for row in events {
            lines.append(
                [row.deviceId, row.eventType, row.eventClass, String(row.eventCount), inert(row.description),
                 Timestamp.format(row.startTimestamp), Timestamp.format(row.endTimestamp), row.componentId ?? ""]
                    .map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

/// What `rampart doctor` found about a device.
public struct DeviceDiagnosis: Codable, Sendable {
    /// One thing wrong (or right), in plain words.
    public struct Finding: Codable, Sendable, Equatable {
        /// A stable code, e.g. `notClaimed` or `measurementUnknown:runtime`.
        public var code: String
        public var explanation: String
        public var remedy: String
        public init(code: String, explanation: String, remedy: String) {
            self.code = code
            self.explanation = explanation
            self.remedy = remedy
        }
    }

    public var deviceId: String
    /// Whether the device can get a certificate as things stand.
    public var healthy: Bool
    public var findings: [Finding]
    public init(deviceId: String, healthy: Bool, findings: [Finding]) {
        self.deviceId = deviceId
        self.healthy = healthy
        self.findings = findings
    }
}

/// What a device's local management API reports (`rampart device show-status`).
public struct DeviceStatus: Codable, Sendable, Equatable {
    public var deviceId: String
    public var tenantId: RampartID?
    public var certificateNotAfter: Date?
    /// Whether the stored certificate is valid now; an expired one is never used.
    public var certificateValid: Bool
    public var lastAttestationAt: Date?
    /// `success`, or the refusal or error code.
    public var lastAttestationResult: String?
    public var lastAttestationMessage: String?
    public var nextAttestationAt: Date?
    public var consecutiveFailures: Int
    /// What the update agent last did.
    public var update: UpdateReport?
    public init(
        deviceId: String, tenantId: RampartID? = nil, certificateNotAfter: Date? = nil, certificateValid: Bool = false,
        lastAttestationAt: Date? = nil, lastAttestationResult: String? = nil, lastAttestationMessage: String? = nil,
        nextAttestationAt: Date? = nil, consecutiveFailures: Int = 0
    ) {
        self.deviceId = deviceId
        self.tenantId = tenantId
        self.certificateNotAfter = certificateNotAfter
        self.certificateValid = certificateValid
        self.lastAttestationAt = lastAttestationAt
        self.lastAttestationResult = lastAttestationResult
        self.lastAttestationMessage = lastAttestationMessage
        self.nextAttestationAt = nextAttestationAt
        self.consecutiveFailures = consecutiveFailures
    }
}
