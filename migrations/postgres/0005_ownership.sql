-- tollgate schema 0005 (PostgreSQL): ownership by id. Every token belongs to a user (usr_…) or a
-- service account (svc_…), one namespace of unique names; projects (prj_…) are entities with
-- members. Names stay on tokens for display only.
--
-- SQLite's 0005 also upgrades databases made before ownership by id (owner names become service
-- accounts, project names become projects). A PostgreSQL database has no such past: 0001 and 0003
-- already created tokens, limits, counters and rollups by id, so this file only adds what is new.

-- Service accounts: owners that are not people. Names follow the username rules.
CREATE TABLE service_accounts (
    id            TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'svc_'),
    name          TEXT    NOT NULL
                          CHECK (length(name) BETWEEN 3 AND 64 AND name = lower(name) AND name ~ '^[a-z0-9._-]+$'),
    description   TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    status_reason TEXT    CHECK (status_reason IS NULL OR length(status_reason) <= 1024),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL CHECK (updated_at >= created_at)
);

CREATE UNIQUE INDEX service_accounts_name ON service_accounts (lower(name));

-- One namespace: a name belongs to a user or to a service account, never to both. Both triggers
-- take the same transaction-scoped advisory lock on the name first, so two transactions claiming
-- one name for the two kinds at once are serialized and the second sees the first's row.
CREATE FUNCTION owner_name_lock(name TEXT) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('tollgate owner name ' || lower(name)));
$$;

CREATE FUNCTION service_account_name_is_not_a_username() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM owner_name_lock(NEW.name);
    IF EXISTS (SELECT 1 FROM users WHERE lower(username) = lower(NEW.name)) THEN
        RAISE EXCEPTION 'the name is taken by a user' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER service_account_name_is_not_a_username BEFORE INSERT ON service_accounts
    FOR EACH ROW EXECUTE FUNCTION service_account_name_is_not_a_username();

CREATE FUNCTION service_account_names_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'service account names cannot change' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER service_account_names_are_fixed BEFORE UPDATE OF name ON service_accounts
    FOR EACH ROW WHEN (NEW.name IS DISTINCT FROM OLD.name) EXECUTE FUNCTION service_account_names_are_fixed();

CREATE FUNCTION username_is_not_a_service_account_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM owner_name_lock(NEW.username);
    IF EXISTS (SELECT 1 FROM service_accounts WHERE lower(name) = lower(NEW.username)) THEN
        RAISE EXCEPTION 'the name is taken by a service account' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER username_is_not_a_service_account_name BEFORE INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION username_is_not_a_service_account_name();

CREATE FUNCTION usernames_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usernames cannot change' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER usernames_are_fixed BEFORE UPDATE OF username ON users
    FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username) EXECUTE FUNCTION usernames_are_fixed();

CREATE TABLE projects (
    id          TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'prj_'),
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL CHECK (updated_at >= created_at)
);

CREATE UNIQUE INDEX projects_name ON projects (lower(name));

CREATE TABLE project_members (
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    member_id  TEXT COLLATE "C" NOT NULL
                       CHECK (length(member_id) = 36 AND substr(member_id, 1, 4) IN ('usr_', 'svc_')),
    role       TEXT    NOT NULL CHECK (role IN ('member', 'viewer')),
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (project_id, member_id)
);

CREATE INDEX project_members_member ON project_members (member_id, project_id);

-- A member is an existing user or service account (a foreign key cannot name two tables).
CREATE FUNCTION project_member_must_exist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = NEW.member_id)
       AND NOT EXISTS (SELECT 1 FROM service_accounts WHERE id = NEW.member_id) THEN
        RAISE EXCEPTION 'project_members.member_id must name a user or a service account'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER project_member_must_exist BEFORE INSERT ON project_members
    FOR EACH ROW EXECUTE FUNCTION project_member_must_exist();

-- ── Tokens: bound to projects by id, issued only to active owners. ──
ALTER TABLE tokens ADD CONSTRAINT tokens_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id);

-- A token is issued only to an active owner, and never moves to another one. owner_role is the
-- owning user's role (NULL for a service account), kept current when the role changes, so a token
-- row alone says what the token may do now: the lower of its permission and that role.
-- The owner's row is locked (FOR SHARE) until the insert commits: a suspension running at the same
-- time waits for it, and then revokes the new token with the others (or, first, makes this insert
-- find the owner no longer active).
CREATE FUNCTION tokens_owner_must_be_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner_role IS NOT NULL THEN
        PERFORM 1 FROM users WHERE id = NEW.owner_id AND status = 'active' AND role = NEW.owner_role FOR SHARE;
    ELSE
        PERFORM 1 FROM service_accounts WHERE id = NEW.owner_id AND status = 'active' FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tokens.owner_id must name an active user (owner_role its role) or service account'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER tokens_owner_must_be_active BEFORE INSERT ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_owner_must_be_active();

CREATE FUNCTION tokens_follow_their_owners_role() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tokens SET owner_role = NEW.role WHERE owner_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tokens_follow_their_owners_role AFTER UPDATE OF role ON users
    FOR EACH ROW WHEN (NEW.role IS DISTINCT FROM OLD.role) EXECUTE FUNCTION tokens_follow_their_owners_role();

CREATE FUNCTION tokens_owner_role_is_the_owners() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner_role IS DISTINCT FROM (SELECT role FROM users WHERE id = NEW.owner_id) THEN
        RAISE EXCEPTION 'tokens.owner_role must be the owning user''s role'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER tokens_owner_role_is_the_owners BEFORE UPDATE OF owner_role ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_owner_role_is_the_owners();

-- A token is bound only to a project its owner is a member of (with the member role); the
-- membership is locked until the insert commits, so a removal running at the same time sees the token.
CREATE FUNCTION tokens_project_needs_a_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.project_id IS NOT NULL THEN
        PERFORM 1 FROM project_members
        WHERE project_id = NEW.project_id AND member_id = NEW.owner_id AND role = 'member' FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a token''s owner must be a member of its project'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER tokens_project_needs_a_member BEFORE INSERT ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_project_needs_a_member();

CREATE FUNCTION tokens_owner_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a token''s owner and project cannot change' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER tokens_owner_is_fixed BEFORE UPDATE OF owner_id, project_id ON tokens
    FOR EACH ROW WHEN (NEW.owner_id IS DISTINCT FROM OLD.owner_id OR NEW.project_id IS DISTINCT FROM OLD.project_id)
    EXECUTE FUNCTION tokens_owner_is_fixed();
