-- tollgate schema 0005: ownership by id. Every token belongs to a user (usr_…) or a service account
-- (svc_…), one namespace of unique names; projects (prj_…) are entities with members; limits and
-- usage rollups name their subjects by id. Names stay on tokens for display only.
--
-- Upgrading a database made before: a token linked to a user, or whose owner name is a username
-- (any case), belongs to that user; every other owner name becomes a service account (named after
-- it when it is a valid name, else `owner-<hex>` with the old name in its description); every project
-- name becomes a project whose members are the owners of its tokens. Limits, counters and rollups
-- of names move to those ids. The audit log is not touched: its chain still verifies.

-- Service accounts: owners that are not people. Names follow the username rules.
CREATE TABLE service_accounts (
    id            TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'svc_'),
    name          TEXT    NOT NULL COLLATE NOCASE UNIQUE
                          CHECK (length(name) BETWEEN 3 AND 64 AND name = lower(name)
                                 AND name NOT GLOB '*[^a-z0-9._-]*'),
    description   TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    status_reason TEXT    CHECK (status_reason IS NULL OR length(status_reason) <= 1024),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL CHECK (updated_at >= created_at)
) STRICT;

-- One namespace: a name belongs to a user or to a service account, never to both.
CREATE TRIGGER service_account_name_is_not_a_username BEFORE INSERT ON service_accounts
WHEN EXISTS (SELECT 1 FROM users WHERE username = NEW.name)
BEGIN
    SELECT RAISE(ABORT, 'the name is taken by a user');
END;

CREATE TRIGGER service_account_names_are_fixed BEFORE UPDATE OF name ON service_accounts
WHEN NEW.name IS NOT OLD.name
BEGIN
    SELECT RAISE(ABORT, 'service account names cannot change');
END;

CREATE TRIGGER username_is_not_a_service_account_name BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM service_accounts WHERE name = NEW.username)
BEGIN
    SELECT RAISE(ABORT, 'the name is taken by a service account');
END;

CREATE TRIGGER usernames_are_fixed BEFORE UPDATE OF username ON users
WHEN NEW.username IS NOT OLD.username
BEGIN
    SELECT RAISE(ABORT, 'usernames cannot change');
END;

CREATE TABLE projects (
    id          TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'prj_'),
    name        TEXT    NOT NULL COLLATE NOCASE UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    description TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL CHECK (updated_at >= created_at)
) STRICT;

CREATE TABLE project_members (
    project_id TEXT    NOT NULL REFERENCES projects (id),
    member_id  TEXT    NOT NULL CHECK (length(member_id) = 36 AND substr(member_id, 1, 4) IN ('usr_', 'svc_')),
    role       TEXT    NOT NULL CHECK (role IN ('member', 'viewer')),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX project_members_member ON project_members (member_id, project_id);

-- A member is an existing user or service account (a foreign key cannot name two tables).
CREATE TRIGGER project_member_must_exist BEFORE INSERT ON project_members
WHEN NOT EXISTS (SELECT 1 FROM users WHERE id = NEW.member_id)
     AND NOT EXISTS (SELECT 1 FROM service_accounts WHERE id = NEW.member_id)
BEGIN
    SELECT RAISE(ABORT, 'project_members.member_id must name a user or a service account');
END;

-- ── The upgrade: owner names and project names of the old schema become ids. ──
-- Working tables, dropped at the end.

-- Every owner name in use without a user link, exactly as stored.
CREATE TABLE _upgrade_owner_names (
    name      TEXT PRIMARY KEY,
    candidate TEXT NOT NULL,
    valid     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO _upgrade_owner_names (name, candidate, valid)
SELECT name, lower(trim(name)), 0 FROM (
    SELECT owner AS name FROM tokens WHERE user_id IS NULL
    UNION SELECT subject FROM quota_limits WHERE subject_kind = 'owner'
    UNION SELECT subject FROM quota_counters WHERE subject_kind = 'owner'
    UNION SELECT owner FROM usage_rollups WHERE owner IS NOT NULL AND user_id IS NULL
);

UPDATE _upgrade_owner_names SET valid = 1
WHERE length(candidate) BETWEEN 3 AND 64 AND candidate NOT GLOB '*[^a-z0-9._-]*'
  AND NOT (length(candidate) = 36 AND substr(candidate, 1, 4) IN ('usr_', 'svc_'));

-- Where each name goes: a user, or a service account made below.
CREATE TABLE _upgrade_owners (
    name       TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    owner_name TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO _upgrade_owners (name, owner_id, owner_name)
SELECT n.name, u.id, u.username FROM _upgrade_owner_names n JOIN users u ON u.username = n.candidate;

-- One service account per remaining valid name (names differing in case are one account), and one
-- per name that is not a valid account name. Ids are time-ordered like every other id: the hex of
-- the creation time in milliseconds, a 7, then random hex.
CREATE TABLE _upgrade_accounts (
    name        TEXT    PRIMARY KEY COLLATE NOCASE,
    id          TEXT    NOT NULL,
    source      TEXT,
    description TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO _upgrade_accounts (name, id, source, description, created_at)
SELECT n.candidate, '', NULL, 'made from an owner name by the upgrade to ownership by id',
       coalesce((SELECT min(t.created_at) FROM tokens t WHERE t.owner = n.name),
                CAST(unixepoch('subsec') * 1000000 AS INTEGER))
FROM _upgrade_owner_names n
WHERE n.valid = 1 AND NOT EXISTS (SELECT 1 FROM _upgrade_owners o WHERE o.name = n.name)
ORDER BY n.name;

INSERT INTO _upgrade_accounts (name, id, source, description, created_at)
SELECT 'owner-' || lower(hex(randomblob(6))), '', n.name,
       substr('made by the upgrade to ownership by id from the owner name ' || json_quote(n.name), 1, 1024),
       coalesce((SELECT min(t.created_at) FROM tokens t WHERE t.owner = n.name),
                CAST(unixepoch('subsec') * 1000000 AS INTEGER))
FROM _upgrade_owner_names n
WHERE n.valid = 0 AND NOT EXISTS (SELECT 1 FROM _upgrade_owners o WHERE o.name = n.name);

UPDATE _upgrade_accounts
SET id = 'svc_' || printf('%012x', created_at / 1000) || '7' || substr(lower(hex(randomblob(10))), 1, 19);

INSERT INTO service_accounts (id, name, description, status, created_at, updated_at)
SELECT id, name, description, 'active', created_at, created_at FROM _upgrade_accounts;

INSERT INTO _upgrade_owners (name, owner_id, owner_name)
SELECT n.name, a.id, a.name FROM _upgrade_owner_names n JOIN _upgrade_accounts a ON a.name = n.candidate
WHERE n.valid = 1 AND a.source IS NULL AND NOT EXISTS (SELECT 1 FROM _upgrade_owners o WHERE o.name = n.name);

INSERT INTO _upgrade_owners (name, owner_id, owner_name)
SELECT a.source, a.id, a.name FROM _upgrade_accounts a WHERE a.source IS NOT NULL;

-- One project per project name (names differing in case are one project).
CREATE TABLE _upgrade_projects (
    name       TEXT    PRIMARY KEY COLLATE NOCASE,
    id         TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO _upgrade_projects (name, id, created_at)
SELECT name, '', coalesce((SELECT min(t.created_at) FROM tokens t WHERE t.project = names.name),
                          CAST(unixepoch('subsec') * 1000000 AS INTEGER))
FROM (
    SELECT project AS name FROM tokens WHERE project IS NOT NULL
    UNION SELECT subject FROM quota_limits WHERE subject_kind = 'project'
    UNION SELECT subject FROM quota_counters WHERE subject_kind = 'project'
    UNION SELECT project FROM usage_rollups WHERE project IS NOT NULL
) AS names
ORDER BY name;

UPDATE _upgrade_projects
SET id = 'prj_' || printf('%012x', created_at / 1000) || '7' || substr(lower(hex(randomblob(10))), 1, 19);

INSERT INTO projects (id, name, description, created_at, updated_at)
SELECT id, name, 'made from a project name by the upgrade to ownership by id', created_at, created_at
FROM _upgrade_projects;

-- ── Tokens, by owner id and project id. ──
CREATE TABLE tokens_rebuilt (
    id                   TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'tok_'),
    name                 TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    owner_id             TEXT    NOT NULL CHECK (length(owner_id) = 36 AND substr(owner_id, 1, 4) IN ('usr_', 'svc_')),
    owner_name           TEXT    NOT NULL CHECK (length(owner_name) BETWEEN 1 AND 128),
    owner_role           TEXT    CHECK (owner_role IS NULL OR owner_role IN ('admin', 'user', 'viewer')),
    project_id           TEXT    REFERENCES projects (id),
    project_name         TEXT    CHECK (project_name IS NULL OR length(project_name) BETWEEN 1 AND 128),
    permission           TEXT    NOT NULL CHECK (permission IN ('read_only', 'standard', 'admin')),
    scopes               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    allowed_tools        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(allowed_tools) AND json_type(allowed_tools) = 'array'),
    ip_allow             TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(ip_allow) AND json_type(ip_allow) = 'array'),
    imposed              INTEGER NOT NULL DEFAULT 0 CHECK (imposed BETWEEN 0 AND 15),
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
    CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL)),
    CHECK ((project_id IS NULL) = (project_name IS NULL))
) STRICT;

INSERT INTO tokens_rebuilt (id, name, owner_id, owner_name, owner_role, project_id, project_name, permission, scopes,
    allowed_tools, ip_allow, imposed, expires_at, description, hash, key_id, display_hint, previous_hash,
    previous_key_id, previous_valid_until, created_at, updated_at, last_used_at, revoked_at, revoke_reason, rotated_at)
SELECT t.id, t.name,
       coalesce(t.user_id, o.owner_id),
       coalesce((SELECT username FROM users WHERE id = t.user_id), o.owner_name),
       (SELECT role FROM users WHERE id = coalesce(t.user_id, o.owner_id)),
       p.id, p.name, t.permission, t.scopes, t.allowed_tools, t.ip_allow, 0, t.expires_at, t.description, t.hash,
       t.key_id, t.display_hint, t.previous_hash, t.previous_key_id, t.previous_valid_until, t.created_at,
       t.updated_at, t.last_used_at, t.revoked_at, t.revoke_reason, t.rotated_at
FROM tokens t
LEFT JOIN _upgrade_owners o ON t.user_id IS NULL AND o.name = t.owner
LEFT JOIN _upgrade_projects p ON p.name = t.project;

-- Members of each upgraded project: the owners of its tokens.
INSERT OR IGNORE INTO project_members (project_id, member_id, role, updated_at)
SELECT project_id, owner_id, 'member', min(created_at) FROM tokens_rebuilt
WHERE project_id IS NOT NULL GROUP BY project_id, owner_id;

DROP TABLE tokens;
ALTER TABLE tokens_rebuilt RENAME TO tokens;

CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash) WHERE previous_hash IS NOT NULL;
CREATE INDEX tokens_owner ON tokens (owner_id, id);
CREATE INDEX tokens_project ON tokens (project_id, id) WHERE project_id IS NOT NULL;

-- A token is issued only to an active owner, and never moves to another one. owner_role is the
-- owning user's role (NULL for a service account), kept current when the role changes, so a token
-- row alone says what the token may do now: the lower of its permission and that role.
CREATE TRIGGER tokens_owner_must_be_active BEFORE INSERT ON tokens
WHEN NOT EXISTS (SELECT 1 FROM users WHERE id = NEW.owner_id AND status = 'active' AND role = NEW.owner_role)
     AND NOT EXISTS (SELECT 1 FROM service_accounts WHERE id = NEW.owner_id AND status = 'active'
                     AND NEW.owner_role IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'tokens.owner_id must name an active user (owner_role its role) or service account');
END;

CREATE TRIGGER tokens_follow_their_owners_role AFTER UPDATE OF role ON users
WHEN NEW.role IS NOT OLD.role
BEGIN
    UPDATE tokens SET owner_role = NEW.role WHERE owner_id = NEW.id;
END;

CREATE TRIGGER tokens_owner_role_is_the_owners BEFORE UPDATE OF owner_role ON tokens
WHEN NEW.owner_role IS NOT (SELECT role FROM users WHERE id = NEW.owner_id)
BEGIN
    SELECT RAISE(ABORT, 'tokens.owner_role must be the owning user''s role');
END;

-- A token is bound only to a project its owner is a member of (with the member role).
CREATE TRIGGER tokens_project_needs_a_member BEFORE INSERT ON tokens
WHEN NEW.project_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM project_members WHERE project_id = NEW.project_id AND member_id = NEW.owner_id AND role = 'member')
BEGIN
    SELECT RAISE(ABORT, 'a token''s owner must be a member of its project');
END;

CREATE TRIGGER tokens_owner_is_fixed BEFORE UPDATE OF owner_id, project_id ON tokens
WHEN NEW.owner_id IS NOT OLD.owner_id OR NEW.project_id IS NOT OLD.project_id
BEGIN
    SELECT RAISE(ABORT, 'a token''s owner and project cannot change');
END;

-- ── Limits and their counters, by id. ──
CREATE TABLE quota_limits_rebuilt (
    subject_kind       TEXT    NOT NULL CHECK (subject_kind IN ('token', 'user', 'service_account', 'project')),
    subject            TEXT    NOT NULL CHECK (length(subject) = 36),
    metric             TEXT    NOT NULL CHECK (metric IN ('requests', 'tokens', 'cost')),
    period             TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    maximum            INTEGER NOT NULL CHECK (maximum BETWEEN 0 AND 1000000000000000000),
    shadow             INTEGER NOT NULL CHECK (shadow IN (0, 1)),
    shadow_hits        INTEGER NOT NULL DEFAULT 0 CHECK (shadow_hits >= 0),
    last_shadow_hit_at INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL CHECK (updated_at >= created_at),
    PRIMARY KEY (subject_kind, subject, metric, period)
) STRICT, WITHOUT ROWID;

-- Limits already by id first; a name's limit that lands on the same key as one of them gives way.
INSERT INTO quota_limits_rebuilt
SELECT subject_kind, subject, metric, period, maximum, shadow, shadow_hits, last_shadow_hit_at, created_at, updated_at
FROM quota_limits WHERE subject_kind IN ('token', 'user');

INSERT OR IGNORE INTO quota_limits_rebuilt
SELECT CASE substr(o.owner_id, 1, 4) WHEN 'usr_' THEN 'user' ELSE 'service_account' END, o.owner_id,
       l.metric, l.period, l.maximum, l.shadow, l.shadow_hits, l.last_shadow_hit_at, l.created_at, l.updated_at
FROM quota_limits l JOIN _upgrade_owners o ON o.name = l.subject WHERE l.subject_kind = 'owner';

INSERT OR IGNORE INTO quota_limits_rebuilt
SELECT 'project', p.id, l.metric, l.period, l.maximum, l.shadow, l.shadow_hits, l.last_shadow_hit_at, l.created_at,
       l.updated_at
FROM quota_limits l JOIN _upgrade_projects p ON p.name = l.subject WHERE l.subject_kind = 'project';

DROP TABLE quota_limits;
ALTER TABLE quota_limits_rebuilt RENAME TO quota_limits;

CREATE TABLE quota_counters_rebuilt (
    subject_kind TEXT    NOT NULL CHECK (subject_kind IN ('token', 'user', 'service_account', 'project')),
    subject      TEXT    NOT NULL CHECK (length(subject) = 36),
    metric       TEXT    NOT NULL CHECK (metric IN ('requests', 'tokens', 'cost')),
    period       TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL CHECK (window_end > window_start),
    used         INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject, metric, period, window_start)
) STRICT, WITHOUT ROWID;

-- Counters that land on one key keep the larger count: a quota is never handed more than it had.
INSERT INTO quota_counters_rebuilt
SELECT subject_kind, subject, metric, period, window_start, window_end, used
FROM quota_counters WHERE subject_kind IN ('token', 'user');

INSERT INTO quota_counters_rebuilt
SELECT CASE substr(o.owner_id, 1, 4) WHEN 'usr_' THEN 'user' ELSE 'service_account' END, o.owner_id,
       c.metric, c.period, c.window_start, c.window_end, c.used
FROM quota_counters c JOIN _upgrade_owners o ON o.name = c.subject WHERE c.subject_kind = 'owner' AND true
ON CONFLICT (subject_kind, subject, metric, period, window_start) DO UPDATE SET used = max(used, excluded.used);

INSERT INTO quota_counters_rebuilt
SELECT 'project', p.id, c.metric, c.period, c.window_start, c.window_end, c.used
FROM quota_counters c JOIN _upgrade_projects p ON p.name = c.subject WHERE c.subject_kind = 'project' AND true
ON CONFLICT (subject_kind, subject, metric, period, window_start) DO UPDATE SET used = max(used, excluded.used);

DROP TABLE quota_counters;
ALTER TABLE quota_counters_rebuilt RENAME TO quota_counters;

CREATE INDEX quota_counters_end ON quota_counters (window_end);

-- ── Hourly rollups, attributed by id. ──
CREATE TABLE usage_rollups_rebuilt (
    hour          INTEGER NOT NULL CHECK (hour % 3600000000 = 0),
    token_id      TEXT    NOT NULL CHECK (length(token_id) = 36),
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    owner_id      TEXT    CHECK (owner_id IS NULL OR length(owner_id) = 36),
    project_id    TEXT    CHECK (project_id IS NULL OR length(project_id) = 36),
    events        INTEGER NOT NULL CHECK (events >= 0),
    requests      INTEGER NOT NULL CHECK (requests >= 0),
    input_tokens  INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    cost_micros   INTEGER NOT NULL CHECK (cost_micros >= 0),
    errors        INTEGER NOT NULL CHECK (errors >= 0 AND errors <= events),
    lat_0  INTEGER NOT NULL DEFAULT 0, lat_1  INTEGER NOT NULL DEFAULT 0, lat_2  INTEGER NOT NULL DEFAULT 0,
    lat_3  INTEGER NOT NULL DEFAULT 0, lat_4  INTEGER NOT NULL DEFAULT 0, lat_5  INTEGER NOT NULL DEFAULT 0,
    lat_6  INTEGER NOT NULL DEFAULT 0, lat_7  INTEGER NOT NULL DEFAULT 0, lat_8  INTEGER NOT NULL DEFAULT 0,
    lat_9  INTEGER NOT NULL DEFAULT 0, lat_10 INTEGER NOT NULL DEFAULT 0, lat_11 INTEGER NOT NULL DEFAULT 0,
    lat_12 INTEGER NOT NULL DEFAULT 0, lat_13 INTEGER NOT NULL DEFAULT 0, lat_14 INTEGER NOT NULL DEFAULT 0,
    lat_15 INTEGER NOT NULL DEFAULT 0, lat_16 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, token_id, provider, model)
) STRICT, WITHOUT ROWID;

INSERT INTO usage_rollups_rebuilt
SELECT r.hour, r.token_id, r.provider, r.model, coalesce(r.user_id, o.owner_id), p.id, r.events, r.requests,
       r.input_tokens, r.output_tokens, r.cost_micros, r.errors, r.lat_0, r.lat_1, r.lat_2, r.lat_3, r.lat_4,
       r.lat_5, r.lat_6, r.lat_7, r.lat_8, r.lat_9, r.lat_10, r.lat_11, r.lat_12, r.lat_13, r.lat_14, r.lat_15,
       r.lat_16
FROM usage_rollups r
LEFT JOIN _upgrade_owners o ON r.user_id IS NULL AND o.name = r.owner
LEFT JOIN _upgrade_projects p ON p.name = r.project;

DROP TABLE usage_rollups;
ALTER TABLE usage_rollups_rebuilt RENAME TO usage_rollups;

CREATE INDEX usage_rollups_token ON usage_rollups (token_id, hour);
CREATE INDEX usage_rollups_owner ON usage_rollups (owner_id, hour) WHERE owner_id IS NOT NULL;
CREATE INDEX usage_rollups_project ON usage_rollups (project_id, hour) WHERE project_id IS NOT NULL;

DROP TABLE _upgrade_owner_names;
DROP TABLE _upgrade_owners;
DROP TABLE _upgrade_accounts;
DROP TABLE _upgrade_projects;
