-- tollgate schema 0010: request traces. One row per traced call, attributed to its token's owner,
-- project and agent as the token was when the trace was stored. Payloads are kept only when capture
-- is on, already cut to the byte budget and redacted; `payload_bytes` is what the row holds, so
-- retention by total size needs no scan of the payloads themselves.

CREATE TABLE traces (
    id               TEXT    PRIMARY KEY CHECK (length(id) = 36),
    token_id         TEXT    NOT NULL CHECK (length(token_id) = 36),
    agent_id         TEXT    CHECK (agent_id IS NULL OR length(agent_id) = 36),
    owner_id         TEXT    CHECK (owner_id IS NULL OR length(owner_id) = 36),
    project_id       TEXT    CHECK (project_id IS NULL OR length(project_id) = 36),
    at               INTEGER NOT NULL,
    endpoint         TEXT    CHECK (endpoint IS NULL OR length(endpoint) BETWEEN 1 AND 256),
    provider         TEXT    CHECK (provider IS NULL OR length(provider) BETWEEN 1 AND 64),
    model            TEXT    CHECK (model IS NULL OR length(model) BETWEEN 1 AND 128),
    status           INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    latency_ms       INTEGER CHECK (latency_ms IS NULL OR latency_ms >= 0),
    input_tokens     INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens    INTEGER NOT NULL CHECK (output_tokens >= 0),
    cost_micros      INTEGER NOT NULL CHECK (cost_micros >= 0),
    request_payload  TEXT,
    response_payload TEXT,
    payload_bytes    INTEGER NOT NULL CHECK (payload_bytes >= 0),
    truncated        INTEGER NOT NULL CHECK (truncated IN (0, 1))
) STRICT;

CREATE INDEX traces_by_token ON traces (token_id, id);
CREATE INDEX traces_by_owner ON traces (owner_id, id) WHERE owner_id IS NOT NULL;
CREATE INDEX traces_by_agent ON traces (agent_id, id) WHERE agent_id IS NOT NULL;
CREATE INDEX traces_by_time ON traces (at);
