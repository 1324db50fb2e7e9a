-- tollgate schema 0008: agent budgets as a ledger. Each agent has an account (allocated, reserved,
-- spent); a lease reserves a slice of it, reports move cost from reserved to spent, closing a lease
-- returns its remainder. A lease may delegate part of its grant to a child agent's lease, which
-- spends the same account and gives what it does not spend back to its parent lease. Every movement writes one ledger row in the same transaction, so the
-- account always equals the sum of its ledger rows; `tollgate budget verify` checks it.

CREATE TABLE budget_accounts (
    agent_id          TEXT    PRIMARY KEY REFERENCES agents (id),
    allocated         INTEGER NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    reserved          INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    spent             INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    paused_for_budget INTEGER NOT NULL DEFAULT 0 CHECK (paused_for_budget IN (0, 1)),
    updated_at        INTEGER NOT NULL,
    CHECK (spent + reserved <= allocated)
) STRICT;

CREATE TABLE budget_leases (
    id             TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'bls_'),
    agent_id       TEXT    NOT NULL REFERENCES agents (id),
    account_id     TEXT    NOT NULL REFERENCES budget_accounts (agent_id),
    parent_id      TEXT    REFERENCES budget_leases (id),
    credential_id  TEXT    NOT NULL CHECK (length(credential_id) = 36 AND substr(credential_id, 1, 4) = 'tok_'),
    provider       TEXT    NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    granted        INTEGER NOT NULL CHECK (granted > 0),
    reported       INTEGER NOT NULL DEFAULT 0 CHECK (reported >= 0),
    delegated      INTEGER NOT NULL DEFAULT 0 CHECK (delegated >= 0),
    returned       INTEGER NOT NULL DEFAULT 0 CHECK (returned >= 0),
    state          TEXT    NOT NULL DEFAULT 'open'
                           CHECK (state IN ('open', 'returned', 'refreshed', 'expired', 'revoked')),
    refreshed_from TEXT    REFERENCES budget_leases (id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL CHECK (expires_at > created_at),
    closed_at      INTEGER,
    CHECK (reported + delegated <= granted),
    CHECK ((state = 'open') = (closed_at IS NULL)),
    CHECK (state != 'open' OR returned = 0),
    CHECK (state = 'open' OR returned = granted - reported - delegated),
    CHECK (parent_id IS NOT NULL OR account_id = agent_id)
) STRICT;

CREATE INDEX budget_leases_by_agent ON budget_leases (agent_id, id);
CREATE INDEX budget_leases_open ON budget_leases (expires_at) WHERE state = 'open';
CREATE INDEX budget_leases_by_parent ON budget_leases (parent_id) WHERE parent_id IS NOT NULL;

-- What each report cost, by the caller's key: a repeat is a duplicate.
CREATE TABLE budget_reports (
    lease_id   TEXT    NOT NULL REFERENCES budget_leases (id),
    request_id TEXT    NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    cost       INTEGER NOT NULL CHECK (cost >= 0),
    at         INTEGER NOT NULL,
    PRIMARY KEY (lease_id, request_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE budget_ledger (
    sequence        INTEGER PRIMARY KEY,
    agent_id        TEXT    NOT NULL REFERENCES agents (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('allocate', 'open', 'report', 'release', 'delegate')),
    lease_id        TEXT    REFERENCES budget_leases (id),
    allocated_delta INTEGER NOT NULL,
    reserved_delta  INTEGER NOT NULL,
    spent_delta     INTEGER NOT NULL,
    allocated_after INTEGER NOT NULL CHECK (allocated_after >= 0),
    actor           TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    reason          TEXT    CHECK (reason IS NULL OR length(reason) <= 1024),
    request_id      TEXT,
    at              INTEGER NOT NULL,
    CHECK ((kind = 'allocate') = (lease_id IS NULL))
) STRICT;

CREATE INDEX budget_ledger_by_agent ON budget_ledger (agent_id, sequence);

-- The ledger is append-only.
CREATE TRIGGER budget_ledger_is_append_only_update BEFORE UPDATE ON budget_ledger
BEGIN
    SELECT RAISE(ABORT, 'the budget ledger is append-only');
END;

CREATE TRIGGER budget_ledger_is_append_only_delete BEFORE DELETE ON budget_ledger
BEGIN
    SELECT RAISE(ABORT, 'the budget ledger is append-only');
END;

CREATE TABLE budget_requests (
    id                   TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'brq_'),
    agent_id             TEXT    NOT NULL REFERENCES agents (id),
    requester            TEXT    NOT NULL CHECK (length(requester) BETWEEN 1 AND 64),
    requester_owner      TEXT    CHECK (requester_owner IS NULL OR length(requester_owner) = 36),
    requested_allocation INTEGER NOT NULL CHECK (requested_allocation >= 0),
    justification        TEXT    NOT NULL CHECK (length(justification) BETWEEN 1 AND 1024),
    state                TEXT    NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
    decided_by           TEXT    CHECK (decided_by IS NULL OR length(decided_by) BETWEEN 1 AND 64),
    decision_reason      TEXT    CHECK (decision_reason IS NULL OR length(decision_reason) <= 1024),
    created_at           INTEGER NOT NULL,
    decided_at           INTEGER,
    CHECK ((state = 'pending') = (decided_at IS NULL))
) STRICT;

CREATE INDEX budget_requests_by_agent ON budget_requests (agent_id, id);
