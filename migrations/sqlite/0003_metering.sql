-- tollgate schema 0003: metering — raw usage events, hourly rollups, quota limits and their counters,
-- per-token rate limits and model price overrides.
-- Times are INTEGER microseconds since the Unix epoch (UTC); money is INTEGER microdollars.

-- What an event was for: provider, model and endpoint ('' for none), stored once and referenced by id.
CREATE TABLE usage_series (
    id       INTEGER PRIMARY KEY,
    provider TEXT    NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    model    TEXT    NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    endpoint TEXT    NOT NULL DEFAULT '' CHECK (length(endpoint) <= 256),
    UNIQUE (provider, model, endpoint)
) STRICT;

-- Raw events, appended by the write-behind queue in blocks: one row per token and series per batch
-- (at most 1,024 events), the events as a JSON array of
--   [at, input_tokens, output_tokens, requests, cost_micros, failed, latency_ms, ip]
-- (`failed` 1 for an error outcome, `latency_ms` and `ip` null when unknown). One row per block instead of
-- per event is what lets one SQLite writer take hundreds of thousands of events a second; the
-- `usage_events` view below gives one row per event back. No secondary index on purpose: reports
-- read the rollups, and retention deletes whole blocks by `last_at` (a block straddling the cutoff
-- is rewritten without its old events).
CREATE TABLE usage_event_blocks (
    id       INTEGER PRIMARY KEY,
    token_id BLOB    NOT NULL CHECK (length(token_id) = 16),
    series   INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    last_at  INTEGER NOT NULL CHECK (last_at >= first_at),
    events   INTEGER NOT NULL CHECK (events BETWEEN 1 AND 1024),
    data     TEXT    NOT NULL CHECK (json_valid(data) AND json_array_length(data) = events)
) STRICT;

-- One row per raw event, as people read them (ids and names as text).
CREATE VIEW usage_events AS
SELECT b.id AS block, e.key AS position, 'tok_' || lower(hex(b.token_id)) AS token_id,
       e.value ->> 0 AS at, s.provider, s.model, nullif(s.endpoint, '') AS endpoint,
       e.value ->> 1 AS input_tokens, e.value ->> 2 AS output_tokens, e.value ->> 3 AS requests,
       e.value ->> 4 AS cost_micros, CASE e.value ->> 5 WHEN 1 THEN 'error' ELSE 'success' END AS outcome,
       e.value ->> 6 AS latency_ms, e.value ->> 7 AS ip
FROM usage_event_blocks b JOIN usage_series s ON s.id = b.series, json_each(b.data) e;

-- Hourly sums per token × provider × model, maintained in the same transaction as the raw events.
-- owner, user_id and project are copied from the token when the row is first written, so reports
-- group by them without a join and keep working after the token is deleted.
-- lat_0 … lat_16 count latencies per bucket: ≤ 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
-- 10000, 20000, 50000, 100000 ms, and slower (LATENCY_BUCKET_BOUNDS_MS in tollgate-types).
CREATE TABLE usage_rollups (
    hour          INTEGER NOT NULL CHECK (hour % 3600000000 = 0),
    token_id      TEXT    NOT NULL CHECK (length(token_id) = 36),
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    owner         TEXT,
    user_id       TEXT,
    project       TEXT,
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

CREATE INDEX usage_rollups_token ON usage_rollups (token_id, hour);
CREATE INDEX usage_rollups_owner ON usage_rollups (owner, hour) WHERE owner IS NOT NULL;
CREATE INDEX usage_rollups_user ON usage_rollups (user_id, hour) WHERE user_id IS NOT NULL;
CREATE INDEX usage_rollups_project ON usage_rollups (project, hour) WHERE project IS NOT NULL;

-- Quota limits: at most one per subject × metric × period.
CREATE TABLE quota_limits (
    subject_kind       TEXT    NOT NULL CHECK (subject_kind IN ('token', 'user', 'owner', 'project')),
    subject            TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 128),
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

-- Quota counters. The window's start is part of the key, so a new window starts a new counter and
-- nothing has to reset the old one; ended windows are purged by window_end.
CREATE TABLE quota_counters (
    subject_kind TEXT    NOT NULL CHECK (subject_kind IN ('token', 'user', 'owner', 'project')),
    subject      TEXT    NOT NULL,
    metric       TEXT    NOT NULL CHECK (metric IN ('requests', 'tokens', 'cost')),
    period       TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL CHECK (window_end > window_start),
    used         INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject, metric, period, window_start)
) STRICT, WITHOUT ROWID;

CREATE INDEX quota_counters_end ON quota_counters (window_end);

-- Per-token rate limits (GCRA: a sustained rate and a burst), deleted with their token.
CREATE TABLE token_rate_limits (
    token_id            TEXT    PRIMARY KEY REFERENCES tokens (id) ON DELETE CASCADE,
    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute BETWEEN 1 AND 1000000000),
    burst               INTEGER NOT NULL CHECK (burst BETWEEN 1 AND 1000000000),
    updated_at          INTEGER NOT NULL
) STRICT;

-- Price overrides per model; the defaults ship inside tollgate (prices.toml).
CREATE TABLE model_prices (
    provider                  TEXT    NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    model                     TEXT    NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    input_per_million_micros  INTEGER NOT NULL CHECK (input_per_million_micros BETWEEN 0 AND 1000000000000),
    output_per_million_micros INTEGER NOT NULL CHECK (output_per_million_micros BETWEEN 0 AND 1000000000000),
    updated_at                INTEGER NOT NULL,
    PRIMARY KEY (provider, model)
) STRICT, WITHOUT ROWID;
