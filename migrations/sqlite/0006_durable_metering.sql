-- tollgate schema 0006: money that survives a crash. Usage events carry an idempotency key, events a
-- batch could not store go to dead letters, cost and token reservations are held in the database
-- (so a crash or another node cannot lose or double them), and request quotas are handed out to
-- each process in leased blocks (so a crash loses at most the unused rest of a block: never an
-- admission more than the maximum).

-- The client's key of each recorded event, per token: a repeat is a duplicate, counted once.
-- Kept as long as the raw events (purged with them, by walking the keys: an index on `at` would
-- double what recording each event costs).
CREATE TABLE usage_event_ids (
    token_id BLOB    NOT NULL CHECK (length(token_id) = 16),
    event_id TEXT    NOT NULL CHECK (length(event_id) BETWEEN 1 AND 128),
    at       INTEGER NOT NULL,
    PRIMARY KEY (token_id, event_id)
) STRICT, WITHOUT ROWID;

-- Events that could not be stored with their batch, with the reason: listed for admins, never retried
-- by themselves (the rest of their batch was stored).
CREATE TABLE usage_dead_letters (
    id        INTEGER PRIMARY KEY,
    token_id  TEXT    NOT NULL CHECK (length(token_id) BETWEEN 1 AND 64),
    event     TEXT    NOT NULL CHECK (json_valid(event)),
    reason    TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 1024),
    failed_at INTEGER NOT NULL
) STRICT;

-- What a gateway holds against tokens and cost limits for a call in flight: each hold is
-- [subject_kind, subject, metric, period, window_start, amount]. While `held`, the counters include
-- the holds; a settle replaces them with the actual usage, a release or the expiry gives them back.
-- Closed reservations stay a day, so a late settle still finds what became of its reservation.
CREATE TABLE quota_reservations (
    id         TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'rsv_'),
    token_id   TEXT    NOT NULL CHECK (length(token_id) = 36),
    holds      TEXT    NOT NULL CHECK (json_valid(holds) AND json_type(holds) = 'array'),
    state      TEXT    NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released', 'expired')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (expires_at > created_at),
    closed_at  INTEGER,
    CHECK ((state = 'held') = (closed_at IS NULL))
) STRICT;

CREATE INDEX quota_reservations_held ON quota_reservations (expires_at) WHERE state = 'held';
CREATE INDEX quota_reservations_closed ON quota_reservations (closed_at) WHERE closed_at IS NOT NULL;

-- The processes that lease request quotas, with when they last said they were alive.
CREATE TABLE quota_holders (
    id           TEXT    PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'hld_'),
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL CHECK (heartbeat_at >= started_at),
    stopped_at   INTEGER
) STRICT;

-- Blocks of request quotas leased to a holder: the counter already includes `granted`; `consumed` is
-- what the holder reported admitting from them. A clean stop returns the rest; after a crash the rest
-- is lost to that window (under-admission, reported), never admitted twice.
CREATE TABLE quota_leases (
    holder       TEXT    NOT NULL REFERENCES quota_holders (id),
    subject_kind TEXT    NOT NULL CHECK (subject_kind IN ('token', 'user', 'service_account', 'project')),
    subject      TEXT    NOT NULL CHECK (length(subject) = 36),
    metric       TEXT    NOT NULL CHECK (metric IN ('requests', 'tokens', 'cost')),
    period       TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL CHECK (window_end > window_start),
    granted      INTEGER NOT NULL CHECK (granted >= 0),
    consumed     INTEGER NOT NULL DEFAULT 0 CHECK (consumed BETWEEN 0 AND granted),
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (holder, subject_kind, subject, metric, period, window_start)
) STRICT, WITHOUT ROWID;

CREATE INDEX quota_leases_counter ON quota_leases (subject_kind, subject, metric, period, window_start);
CREATE INDEX quota_leases_end ON quota_leases (window_end);
