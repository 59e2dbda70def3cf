import Foundation
import Logging
import SQLKit

/// Versioned, forward-only schema migrations, written once for SQLite and PostgreSQL.
///
/// Each migration runs inside the caller's transaction with its version recorded in `rampart_schema`, so a
/// crash half-way leaves the schema where it was. Never edit a shipped migration: add a new one.
enum Migrations {
    struct Migration {
        let version: Int
        let name: String
        let statements: [String]
        /// Statements that differ between the dialects (triggers), run after `statements`.
        var sqlite: [String] = []
        var postgres: [String] = []

        func statements(for dialect: String) -> [String] {
            statements + (dialect == "sqlite" ? sqlite : postgres)
        }
    }

    /// The tables whose rows decide what attestation accepts for a tenant: its runtime allow list, package
    /// signing keys, device groups (their OS feed), images, deployments and runtime releases. Any change to
    /// them bumps `tenants.appraisal_version`, so appraisal can cache its reading of them per version. On
    /// PostgreSQL the bump locks the tenant's row until commit: two transactions that change these tables
    /// and lock other rows in opposite orders can deadlock, and one is then refused with a retryable 503.
    static let appraisalTables = ["reference_values", "signing_keys", "device_groups", "images", "deployments", "runtime_releases"]

    static let all: [Migration] = [
        Migration(
            version: 1, name: "tenants, users, roles, invitations, login challenges, tenant CAs, audit",
            statements: [
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, public_key TEXT NOT NULL,
                    server_admin BIGINT NOT NULL, created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE tenant_roles (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), user_id TEXT NOT NULL REFERENCES users(id),
                    role TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, user_id))
                """,
                """
                CREATE TABLE invitations (
                    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, email TEXT, tenant_id TEXT REFERENCES tenants(id),
                    role TEXT, server_admin BIGINT NOT NULL, created_by TEXT, created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL, used_at BIGINT, used_by TEXT)
                """,
                "CREATE INDEX invitations_tenant_email ON invitations (tenant_id, email)",
                """
                CREATE TABLE login_challenges (
                    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), nonce TEXT NOT NULL,
                    expires_at BIGINT NOT NULL, used_at BIGINT)
                """,
                """
                CREATE TABLE ca_certificates (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    thumbprint TEXT NOT NULL UNIQUE, subject TEXT NOT NULL, certificate_der TEXT NOT NULL,
                    sealed_key TEXT NOT NULL, status TEXT NOT NULL, not_before BIGINT NOT NULL,
                    not_after BIGINT NOT NULL, created_at BIGINT NOT NULL, activates_at BIGINT NOT NULL,
                    revoked_at BIGINT)
                """,
                "CREATE INDEX ca_certificates_tenant ON ca_certificates (tenant_id)",
                """
                CREATE TABLE audit_events (
                    id TEXT PRIMARY KEY, time BIGINT NOT NULL, actor TEXT NOT NULL, tenant_id TEXT,
                    action TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL)
                """,
                "CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, time)",
            ]),
        Migration(
            version: 2, name: "devices, attestation nonces, reference values, error events",
            statements: [
                """
                CREATE TABLE devices (
                    id TEXT PRIMARY KEY, tenant_id TEXT REFERENCES tenants(id), claimed_at BIGINT,
                    first_seen_at BIGINT, last_seen_at BIGINT, hwmodel TEXT, swname TEXT, swversion TEXT,
                    last_attestation_at BIGINT, last_result TEXT, certificate_not_after BIGINT, measurements TEXT)
                """,
                "CREATE INDEX devices_tenant ON devices (tenant_id)",
                """
                CREATE TABLE attestation_nonces (
                    nonce TEXT PRIMARY KEY, device_id TEXT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)
                """,
                "CREATE INDEX attestation_nonces_expiry ON attestation_nonces (expires_at)",
                """
                CREATE TABLE reference_values (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), sha256 TEXT NOT NULL,
                    version TEXT NOT NULL, description TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT,
                    UNIQUE (tenant_id, sha256))
                """,
                """
                CREATE TABLE error_events (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), device_id TEXT NOT NULL,
                    event_type TEXT NOT NULL, event_class TEXT NOT NULL, description TEXT NOT NULL,
                    event_count BIGINT NOT NULL, first_at BIGINT NOT NULL, last_at BIGINT NOT NULL,
                    UNIQUE (tenant_id, device_id, event_type, event_class, description))
                """,
                "CREATE INDEX error_events_tenant_last ON error_events (tenant_id, last_at)",
            ]),
        Migration(
            version: 3, name: "TUF repositories, products, device groups, images, deployments",
            statements: [
                """
                CREATE TABLE tuf_keys (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), role TEXT NOT NULL,
                    key_id TEXT NOT NULL, public_key TEXT NOT NULL, sealed_private TEXT, created_at BIGINT NOT NULL,
                    retired_at BIGINT)
                """,
                "CREATE INDEX tuf_keys_tenant ON tuf_keys (tenant_id, role)",
                """
                CREATE TABLE tuf_metadata (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id), role TEXT NOT NULL, version BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL, content TEXT NOT NULL, created_at BIGINT NOT NULL,
                    PRIMARY KEY (tenant_id, role, version))
                """,
                """
                CREATE TABLE products (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
                    description TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                    UNIQUE (tenant_id, name))
                """,
                """
                CREATE TABLE device_groups (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    product_id TEXT NOT NULL REFERENCES products(id), name TEXT NOT NULL, description TEXT NOT NULL,
                    update_policy TEXT NOT NULL, os_feed TEXT NOT NULL, maintenance_window TEXT,
                    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, UNIQUE (product_id, name))
                """,
                "CREATE INDEX device_groups_tenant ON device_groups (tenant_id)",
                "ALTER TABLE devices ADD COLUMN device_group_id TEXT",
                """
                CREATE TABLE signing_keys (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), key_id TEXT NOT NULL,
                    public_key TEXT NOT NULL, description TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT,
                    UNIQUE (tenant_id, key_id))
                """,
                """
                CREATE TABLE images (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), component_id TEXT NOT NULL,
                    name TEXT NOT NULL, kind TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,
                    length BIGINT NOT NULL, manifest TEXT NOT NULL, signing_key_id TEXT NOT NULL,
                    created_at BIGINT NOT NULL, UNIQUE (tenant_id, sha256))
                """,
                "CREATE TABLE image_blobs (sha256 TEXT PRIMARY KEY, content TEXT NOT NULL)",
                """
                CREATE TABLE deployments (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    device_group_id TEXT NOT NULL REFERENCES device_groups(id), image_ids TEXT NOT NULL,
                    created_by TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX deployments_group ON deployments (device_group_id, created_at)",
                """
                CREATE TABLE runtime_releases (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), feed TEXT NOT NULL,
                    image_id TEXT NOT NULL REFERENCES images(id), created_at BIGINT NOT NULL)
                """,
            ]),
        Migration(
            version: 4, name: "update check requests and device update reports",
            statements: [
                "CREATE TABLE update_requests (device_id TEXT PRIMARY KEY, requested_at BIGINT NOT NULL)",
                "ALTER TABLE devices ADD COLUMN update_report TEXT",
            ]),
        Migration(
            version: 5, name: "device parents (gateways and their children)",
            statements: [
                "ALTER TABLE devices ADD COLUMN parent_id TEXT",
                "CREATE INDEX devices_parent ON devices (parent_id)",
            ]),
        Migration(
            version: 6, name: "hubs, stored telemetry, cloud-to-device messages",
            statements: [
                "ALTER TABLE devices ADD COLUMN hub BIGINT NOT NULL DEFAULT 0",
                // sequence counts per device, so a reader's cursor never skips a row that commits late.
                """
                CREATE TABLE device_messages (
                    tenant_id TEXT NOT NULL, device_id TEXT NOT NULL, sequence BIGINT NOT NULL,
                    module_id TEXT, gateway_id TEXT NOT NULL, source_key TEXT NOT NULL,
                    enqueued_at BIGINT NOT NULL, received_at BIGINT NOT NULL,
                    properties TEXT NOT NULL, system_properties TEXT NOT NULL, payload TEXT NOT NULL,
                    PRIMARY KEY (tenant_id, device_id, sequence))
                """,
                "CREATE UNIQUE INDEX device_messages_source ON device_messages (tenant_id, gateway_id, source_key)",
                // The last sequence given out per device, kept when retention deletes the messages themselves,
                // so that numbering never starts again under a reader's cursor.
                """
                CREATE TABLE device_message_sequences (
                    tenant_id TEXT NOT NULL, device_id TEXT NOT NULL, last_sequence BIGINT NOT NULL,
                    PRIMARY KEY (tenant_id, device_id))
                """,
                "CREATE INDEX device_messages_received ON device_messages (received_at)",
                """
                CREATE TABLE cloud_messages (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, device_id TEXT NOT NULL,
                    properties TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL, delivered_at BIGINT, delivered_by TEXT)
                """,
                "CREATE INDEX cloud_messages_device ON cloud_messages (tenant_id, device_id, created_at)",
                "CREATE INDEX cloud_messages_pending ON cloud_messages (tenant_id, delivered_at, created_at)",
                "CREATE INDEX cloud_messages_created ON cloud_messages (created_at)",
            ]),
        Migration(
            version: 7, name: "error events uploaded by devices: component, upload key, time received",
            statements: [
                // Rebuilt, because neither backend can drop v2's table-level UNIQUE in a way both understand, and
                // uploaded events must not fold on it: two uploads of one error (each its own key) are two rows,
                // and components are told apart. Server-recorded rows (upload_key NULL) still fold on it.
                """
                CREATE TABLE error_events_v7 (
                    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), device_id TEXT NOT NULL,
                    event_type TEXT NOT NULL, event_class TEXT NOT NULL, component_id TEXT, description TEXT NOT NULL,
                    event_count BIGINT NOT NULL, first_at BIGINT NOT NULL, last_at BIGINT NOT NULL,
                    upload_key TEXT, received_at BIGINT NOT NULL)
                """,
                """
                INSERT INTO error_events_v7 (id, tenant_id, device_id, event_type, event_class, description, event_count,
                                             first_at, last_at, received_at)
                SELECT id, tenant_id, device_id, event_type, event_class, description, event_count, first_at, last_at,
                       last_at
                FROM error_events
                """,
                "DROP TABLE error_events",
                "ALTER TABLE error_events_v7 RENAME TO error_events",
                """
                CREATE UNIQUE INDEX error_events_recorded ON error_events
                    (tenant_id, device_id, event_type, event_class, description) WHERE upload_key IS NULL
                """,
                // NULL keys (server-recorded rows) never collide with each other on either backend.
                "CREATE UNIQUE INDEX error_events_upload ON error_events (device_id, upload_key)",
                "CREATE INDEX error_events_tenant_last ON error_events (tenant_id, last_at)",
                "CREATE INDEX error_events_received ON error_events (received_at)",
            ]),
        Migration(
            version: 8, name: "device groups' monthly servicing data budget",
            statements: [
                // Megabytes (10^6 bytes) per device and month; NULL for no budget.
                "ALTER TABLE device_groups ADD COLUMN data_budget_mb BIGINT",
            ]),
        Migration(
            version: 9, name: "tenants' appraisal version, bumped by triggers on what attestation appraises against",
            statements: ["ALTER TABLE tenants ADD COLUMN appraisal_version BIGINT NOT NULL DEFAULT 0"],
            sqlite: appraisalTables.flatMap { table in
                [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")].map { operation, row in
                    """
                    CREATE TRIGGER \(table)_appraisal_\(operation.lowercased()) AFTER \(operation) ON \(table) BEGIN
                        UPDATE tenants SET appraisal_version = appraisal_version + 1 WHERE id = \(row).tenant_id;
                    END
                    """
                }
            },
            postgres: [
                """
                CREATE FUNCTION rampart_appraisal_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP = 'DELETE' THEN
                        UPDATE tenants SET appraisal_version = appraisal_version + 1 WHERE id = OLD.tenant_id;
                    ELSE
                        UPDATE tenants SET appraisal_version = appraisal_version + 1 WHERE id = NEW.tenant_id;
                    END IF;
                    RETURN NULL;
                END
                $$
                """
            ] + appraisalTables.map { table in
                """
                CREATE TRIGGER \(table)_appraisal AFTER INSERT OR UPDATE OR DELETE ON \(table)
                FOR EACH ROW EXECUTE FUNCTION rampart_appraisal_changed()
                """
            }),
        Migration(
            version: 10, name: "devices' development mode",
            statements: [
                // When 'device enable-development' put the device in development mode (milliseconds); NULL when
                // it is not. Attestation then accepts app images that no deployment lists (sideloaded apps).
                "ALTER TABLE devices ADD COLUMN development_since BIGINT",
            ]),
    ]

    static func currentVersion(on db: any SQLDatabase) async throws -> Int {
        try await db.raw(
            "CREATE TABLE IF NOT EXISTS rampart_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        ).run()
        let row = try await db.raw("SELECT MAX(version) AS version FROM rampart_schema").first()
        return Int(try row?.decode(column: "version", as: Int64?.self) ?? 0)
    }

    /// Applies every migration after the database's version, up to `last` (tests stop early to write rows in
    /// an older shape).
    static func apply(on db: any SQLDatabase, logger: Logger, upTo last: Int = .max) async throws {
        let current = try await currentVersion(on: db)
        for migration in all where migration.version > current && migration.version <= last {
            logger.info("Applying schema migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            for statement in migration.statements(for: db.dialect.name) {
                try await db.raw(SQLQueryString(statement)).run()
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try await db.raw(
                "INSERT INTO rampart_schema (version, name, applied_at) VALUES (\(bind: Int64(migration.version)), \(bind: migration.name), \(bind: now))"
            ).run()
        }
    }

    /// The newest version this build knows.
    static var latestVersion: Int { all.map(\.version).max() ?? 0 }
}
