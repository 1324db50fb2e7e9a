-- tollgate schema 0001: API tokens and the append-only, hash-chained audit log.
-- Times are INTEGER microseconds since the Unix epoch (UTC). Token hashes are 32 raw bytes (HMAC-SHA256).

CREATE TABLE tokens (
    id                   TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'tok_'),
    name                 TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    owner                TEXT    NOT NULL CHECK (length(owner) BETWEEN 1 AND 128),
    user_id              TEXT    CHECK (user_id IS NULL OR (length(user_id) = 36 AND substr(user_id, 1, 4) = 'usr_')),
    project              TEXT    CHECK (project IS NULL OR length(project) BETWEEN 1 AND 128),
    permission           TEXT    NOT NULL CHECK (permission IN ('read_only', 'standard', 'admin')),
    scopes               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    allowed_tools        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(allowed_tools) AND json_type(allowed_tools) = 'array'),
    ip_allow             TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(ip_allow) AND json_type(ip_allow) = 'array'),
    expires_at           INTEGER CHECK (expires_at IS NULL OR expires_at > created_at),
    description          TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    hash                 BLOB    NOT NULL CHECK (length(hash) = 32),
    key_id               INTEGER NOT NULL CHECK (key_id >= 0),
    display_hint         TEXT    NOT NULL CHECK (length(display_hint) BETWEEN 1 AND 64),
    previous_hash        BLOB    CHECK (previous_hash IS NULL OR length(previous_hash) = 32),
    previous_key_id      INTEGER,
    previous_valid_until INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_used_at         INTEGER,
    revoked_at           INTEGER,
    revoke_reason        TEXT    CHECK (revoke_reason IS NULL OR length(revoke_reason) <= 1024),
    rotated_at           INTEGER,
    CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL))
) STRICT;

CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash) WHERE previous_hash IS NOT NULL;
CREATE INDEX tokens_owner ON tokens (owner, id);
CREATE INDEX tokens_project ON tokens (project, id) WHERE project IS NOT NULL;
CREATE INDEX tokens_user ON tokens (user_id, id) WHERE user_id IS NOT NULL;

CREATE TABLE audit_log (
    sequence      INTEGER PRIMARY KEY CHECK (sequence >= 1),
    actor         TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    action        TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target        TEXT    NOT NULL CHECK (length(target) <= 256),
    before        TEXT    CHECK (before IS NULL OR json_valid(before)),
    after         TEXT    CHECK (after IS NULL OR json_valid(after)),
    reason        TEXT    CHECK (reason IS NULL OR length(reason) <= 1024),
    ip            TEXT,
    at            INTEGER NOT NULL,
    previous_hash BLOB    NOT NULL CHECK (length(previous_hash) = 32),
    hash          BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX audit_log_actor ON audit_log (actor, sequence);
CREATE INDEX audit_log_target ON audit_log (target, sequence);
CREATE INDEX audit_log_at ON audit_log (at);

-- The audit log is append-only in the database itself, whoever connects.
CREATE TRIGGER audit_log_refuses_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_refuses_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
