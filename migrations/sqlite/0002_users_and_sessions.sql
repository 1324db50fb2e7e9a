-- tollgate schema 0002: users, login sessions and their refresh-token families.
-- Usernames and emails are stored lowercase and unique case-insensitively (COLLATE NOCASE), including
-- deleted users (soft delete), so a name can never be reused to inherit someone's tokens or audit trail.

CREATE TABLE users (
    id                   TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'usr_'),
    username             TEXT    NOT NULL COLLATE NOCASE UNIQUE
                                 CHECK (length(username) BETWEEN 3 AND 64 AND username = lower(username)
                                        AND username NOT GLOB '*[^a-z0-9._-]*'),
    email                TEXT    NOT NULL COLLATE NOCASE UNIQUE
                                 CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email) AND email GLOB '?*@?*.?*'),
    password_hash        TEXT    NOT NULL CHECK (length(password_hash) = 60 AND substr(password_hash, 1, 2) = '$2'),
    role                 TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    status               TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
    status_reason        TEXT    CHECK (status_reason IS NULL OR length(status_reason) <= 1024),
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    failed_logins        INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL,
    last_login_at        INTEGER
) STRICT;

CREATE INDEX users_role_status ON users (role, status);

-- Users are soft-deleted: the row stays for the audit trail and to keep the name taken.
CREATE TRIGGER users_are_never_deleted BEFORE DELETE ON users
BEGIN
    SELECT RAISE(ABORT, 'users are soft-deleted: DELETE refused');
END;

CREATE TRIGGER users_deleted_is_final BEFORE UPDATE OF status ON users
WHEN OLD.status = 'deleted' AND NEW.status <> 'deleted'
BEGIN
    SELECT RAISE(ABORT, 'a deleted user cannot be restored');
END;

-- The backends check this in code with a clear message; the trigger keeps it true for any writer.
CREATE TRIGGER users_keep_an_active_admin BEFORE UPDATE OF role, status ON users
WHEN OLD.role = 'admin' AND OLD.status = 'active' AND (NEW.role <> 'admin' OR NEW.status <> 'active')
     AND NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' AND id <> OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'the last active admin cannot be demoted, suspended or deleted');
END;

-- tokens.user_id (from 0001) cannot get a FOREIGN KEY by ALTER TABLE in SQLite; these triggers do its job
-- and more: a token can only be issued to an existing, active user, and never moved to another user.
CREATE TRIGGER tokens_user_must_be_active BEFORE INSERT ON tokens
WHEN NEW.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND status = 'active')
BEGIN
    SELECT RAISE(ABORT, 'tokens.user_id must name an active user');
END;

CREATE TRIGGER tokens_user_is_fixed BEFORE UPDATE OF user_id ON tokens
WHEN NEW.user_id IS NOT OLD.user_id
BEGIN
    SELECT RAISE(ABORT, 'tokens.user_id cannot change');
END;

CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'ses_'),
    user_id       TEXT    NOT NULL REFERENCES users (id),
    generation    INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    created_at    INTEGER NOT NULL,
    refreshed_at  INTEGER,
    expires_at    INTEGER NOT NULL CHECK (expires_at > created_at),
    revoked_at    INTEGER,
    revoke_reason TEXT    CHECK (revoke_reason IS NULL OR length(revoke_reason) <= 1024),
    ip            TEXT    CHECK (ip IS NULL OR length(ip) <= 64)
) STRICT;

CREATE INDEX sessions_user ON sessions (user_id, id);
CREATE INDEX sessions_live_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- One row per refresh token ever issued, kept (used or not) until its session is cleaned up, so that
-- presenting an old one is recognised as reuse.
CREATE TABLE refresh_tokens (
    hash       BLOB    PRIMARY KEY CHECK (length(hash) = 32),
    key_id     INTEGER NOT NULL CHECK (key_id >= 0),
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL CHECK (generation >= 1),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (expires_at > issued_at),
    used_at    INTEGER,
    UNIQUE (session_id, generation)
) STRICT, WITHOUT ROWID;
