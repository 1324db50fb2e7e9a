-- tollgate schema 0002 (PostgreSQL): users, login sessions and their refresh-token families.
-- Usernames and emails are stored lowercase and unique case-insensitively (unique indexes on
-- lower(…), SQLite's COLLATE NOCASE UNIQUE), including deleted users (soft delete), so a name can
-- never be reused to inherit someone's tokens or audit trail.

CREATE TABLE users (
    id                   TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'usr_'),
    username             TEXT    NOT NULL
                                 CHECK (length(username) BETWEEN 3 AND 64 AND username = lower(username)
                                        AND username ~ '^[a-z0-9._-]+$'),
    email                TEXT    NOT NULL
                                 CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)
                                        AND email ~ '^.+@.+\..+$'),
    password_hash        TEXT    NOT NULL CHECK (length(password_hash) = 60 AND substr(password_hash, 1, 2) = '$2'),
    role                 TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    status               TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
    status_reason        TEXT    CHECK (status_reason IS NULL OR length(status_reason) <= 1024),
    must_change_password BOOLEAN NOT NULL DEFAULT false,
    failed_logins        BIGINT  NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until         BIGINT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    password_changed_at  BIGINT  NOT NULL,
    last_login_at        BIGINT
);

CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_role_status ON users (role, status);

-- Users are soft-deleted: the row stays for the audit trail and to keep the name taken.
CREATE FUNCTION users_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'users are soft-deleted: DELETE refused' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER users_are_never_deleted BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_refuse_delete();

CREATE FUNCTION users_refuse_restore() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a deleted user cannot be restored' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER users_deleted_is_final BEFORE UPDATE OF status ON users
    FOR EACH ROW WHEN (OLD.status = 'deleted' AND NEW.status <> 'deleted')
    EXECUTE FUNCTION users_refuse_restore();

-- The backend checks this in code, under row locks on every active admin, with a clear message; the
-- trigger keeps it true for any other writer.
CREATE FUNCTION users_keep_an_active_admin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' AND id <> OLD.id) THEN
        RAISE EXCEPTION 'the last active admin cannot be demoted, suspended or deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_keep_an_active_admin BEFORE UPDATE OF role, status ON users
    FOR EACH ROW WHEN (OLD.role = 'admin' AND OLD.status = 'active' AND (NEW.role <> 'admin' OR NEW.status <> 'active'))
    EXECUTE FUNCTION users_keep_an_active_admin();

CREATE TABLE sessions (
    id            TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'ses_'),
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    generation    BIGINT  NOT NULL DEFAULT 1 CHECK (generation >= 1),
    created_at    BIGINT  NOT NULL,
    refreshed_at  BIGINT,
    expires_at    BIGINT  NOT NULL CHECK (expires_at > created_at),
    revoked_at    BIGINT,
    revoke_reason TEXT    CHECK (revoke_reason IS NULL OR length(revoke_reason) <= 1024),
    ip            TEXT    CHECK (ip IS NULL OR length(ip) <= 64)
);

CREATE INDEX sessions_user ON sessions (user_id, id);
CREATE INDEX sessions_live_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- One row per refresh token ever issued, kept (used or not) until its session is cleaned up, so that
-- presenting an old one is recognised as reuse.
CREATE TABLE refresh_tokens (
    hash       BYTEA   PRIMARY KEY CHECK (octet_length(hash) = 32),
    key_id     BIGINT  NOT NULL CHECK (key_id >= 0),
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation BIGINT  NOT NULL CHECK (generation >= 1),
    issued_at  BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL CHECK (expires_at > issued_at),
    used_at    BIGINT,
    UNIQUE (session_id, generation)
);
