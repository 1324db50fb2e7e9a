-- tollgate schema 0001 (PostgreSQL): API tokens and the append-only, hash-chained audit log.
-- Times are BIGINT microseconds since the Unix epoch (UTC), as on SQLite, so every value a
-- Timestamp can hold round-trips. Token hashes are 32 raw bytes (HMAC-SHA256). Ids are TEXT in the
-- "C" collation: they compare and sort bytewise, as SQLite's BINARY does, whatever the database's
-- default collation, so pages by id come out in the same order on both backends.
--
-- PostgreSQL starts fresh (there is no older tollgate schema to upgrade), so each file creates the
-- final shape of what it introduces: tokens are owned by id from the start (SQLite's 0005 rebuilds
-- them), and later files add the references to tables they create (projects in 0005, agents in 0007).

CREATE TABLE tokens (
    id                   TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'tok_'),
    name                 TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    owner_id             TEXT COLLATE "C" NOT NULL
                                 CHECK (length(owner_id) = 36 AND substr(owner_id, 1, 4) IN ('usr_', 'svc_')),
    owner_name           TEXT    NOT NULL CHECK (length(owner_name) BETWEEN 1 AND 128),
    owner_role           TEXT    CHECK (owner_role IS NULL OR owner_role IN ('admin', 'user', 'viewer')),
    project_id           TEXT COLLATE "C",
    project_name         TEXT    CHECK (project_name IS NULL OR length(project_name) BETWEEN 1 AND 128),
    permission           TEXT    NOT NULL CHECK (permission IN ('read_only', 'standard', 'admin')),
    scopes               JSON    NOT NULL DEFAULT '[]' CHECK (json_typeof(scopes) = 'array'),
    allowed_tools        JSON    NOT NULL DEFAULT '[]' CHECK (json_typeof(allowed_tools) = 'array'),
    ip_allow             JSON    NOT NULL DEFAULT '[]' CHECK (json_typeof(ip_allow) = 'array'),
    imposed              BIGINT  NOT NULL DEFAULT 0 CHECK (imposed BETWEEN 0 AND 15),
    expires_at           BIGINT  CHECK (expires_at IS NULL OR expires_at > created_at),
    description          TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    hash                 BYTEA   NOT NULL CHECK (octet_length(hash) = 32),
    key_id               BIGINT  NOT NULL CHECK (key_id >= 0),
    display_hint         TEXT    NOT NULL CHECK (length(display_hint) BETWEEN 1 AND 64),
    previous_hash        BYTEA   CHECK (previous_hash IS NULL OR octet_length(previous_hash) = 32),
    previous_key_id      BIGINT,
    previous_valid_until BIGINT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    last_used_at         BIGINT,
    revoked_at           BIGINT,
    revoke_reason        TEXT    CHECK (revoke_reason IS NULL OR length(revoke_reason) <= 1024),
    rotated_at           BIGINT,
    CONSTRAINT tokens_previous_secret_check CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL)),
    CONSTRAINT tokens_project_check CHECK ((project_id IS NULL) = (project_name IS NULL))
);

CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash) WHERE previous_hash IS NOT NULL;
CREATE INDEX tokens_owner ON tokens (owner_id, id);
CREATE INDEX tokens_project ON tokens (project_id, id) WHERE project_id IS NOT NULL;

-- `before` and `after` are JSON (not JSONB): the text is kept exactly as written, so an entry read
-- back hashes to the same chain hash whatever the key order or number formatting.
CREATE TABLE audit_log (
    sequence      BIGINT  PRIMARY KEY CHECK (sequence >= 1),
    actor         TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    action        TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target        TEXT    NOT NULL CHECK (length(target) <= 256),
    before        JSON,
    after         JSON,
    reason        TEXT    CHECK (reason IS NULL OR length(reason) <= 1024),
    ip            TEXT,
    at            BIGINT  NOT NULL,
    previous_hash BYTEA   NOT NULL CHECK (octet_length(previous_hash) = 32),
    hash          BYTEA   NOT NULL UNIQUE CHECK (octet_length(hash) = 32)
);

CREATE INDEX audit_log_actor ON audit_log (actor, sequence);
CREATE INDEX audit_log_target ON audit_log (target, sequence);
CREATE INDEX audit_log_at ON audit_log (at);

-- The audit log is append-only in the database itself, whoever connects.
CREATE FUNCTION audit_log_refuses_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER audit_log_refuses_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuses_change();

CREATE TRIGGER audit_log_refuses_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuses_change();

-- TRUNCATE fires no row trigger; SQLite has no TRUNCATE to refuse.
CREATE TRIGGER audit_log_refuses_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuses_change();
