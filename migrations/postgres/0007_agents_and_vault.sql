-- tollgate schema 0007 (PostgreSQL): AI agents, their credentials, and the provider-key vault.
--
-- An agent (agt_…) belongs to a user or a service account and may work for a project. Its
-- credentials are tokens (`tokens.agent_id` set): they verify on the token path, and each carries
-- its agent's status, kept current by the store, so pausing an agent refuses them at once.
-- A provider key (pk_…) stores only ciphertext: the secret sealed with AES-256-GCM under a random
-- per-key data key, that data key wrapped by the vault master key `master_key_id` (kept in a key
-- file, never here). Deleting a key erases its ciphertext. No migration seeds an agent, a
-- credential or a key.

CREATE TABLE provider_keys (
    id            TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 35 AND substr(id, 1, 3) = 'pk_'),
    provider      TEXT    NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    base_url      TEXT    CHECK (base_url IS NULL OR length(base_url) BETWEEN 9 AND 2048),
    description   TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    owner_id      TEXT COLLATE "C" NOT NULL
                          CHECK (length(owner_id) = 36 AND substr(owner_id, 1, 4) IN ('usr_', 'svc_')),
    owner_name    TEXT    NOT NULL CHECK (length(owner_name) BETWEEN 1 AND 128),
    project_id    TEXT COLLATE "C" REFERENCES projects (id),
    enabled       BOOLEAN NOT NULL DEFAULT true,
    balance       BIGINT,
    metadata      JSON    NOT NULL DEFAULT '{}' CHECK (json_typeof(metadata) = 'object'),
    masked        TEXT    NOT NULL CHECK (length(masked) BETWEEN 1 AND 16),
    ciphertext    BYTEA   CHECK (ciphertext IS NULL OR octet_length(ciphertext) BETWEEN 24 AND 4112),
    nonce         BYTEA   CHECK (nonce IS NULL OR octet_length(nonce) = 12),
    wrapped_key   BYTEA   CHECK (wrapped_key IS NULL OR octet_length(wrapped_key) = 60),
    master_key_id BIGINT  CHECK (master_key_id IS NULL OR master_key_id >= 1),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL CHECK (updated_at >= created_at),
    deleted_at    BIGINT,
    -- A stored key has all four parts of its ciphertext; a deleted one has none.
    CONSTRAINT provider_keys_sealed_check
        CHECK ((deleted_at IS NULL) = (ciphertext IS NOT NULL AND nonce IS NOT NULL AND wrapped_key IS NOT NULL
                                       AND master_key_id IS NOT NULL))
);

CREATE INDEX provider_keys_by_owner ON provider_keys (owner_id, id) WHERE deleted_at IS NULL;
CREATE INDEX provider_keys_by_master_key ON provider_keys (master_key_id) WHERE deleted_at IS NULL;

CREATE TABLE agents (
    id              TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 36 AND substr(id, 1, 4) = 'agt_'),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    owner_id        TEXT COLLATE "C" NOT NULL
                            CHECK (length(owner_id) = 36 AND substr(owner_id, 1, 4) IN ('usr_', 'svc_')),
    owner_name      TEXT    NOT NULL CHECK (length(owner_name) BETWEEN 1 AND 128),
    project_id      TEXT COLLATE "C" REFERENCES projects (id),
    providers       JSON    NOT NULL DEFAULT '[]' CHECK (json_typeof(providers) = 'array'),
    provider_key_id TEXT COLLATE "C" REFERENCES provider_keys (id),
    status          TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
    description     TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    metadata        JSON    NOT NULL DEFAULT '{}' CHECK (json_typeof(metadata) = 'object'),
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL CHECK (updated_at >= created_at),
    deleted_at      BIGINT
);

CREATE INDEX agents_by_owner ON agents (owner_id, id) WHERE deleted_at IS NULL;
CREATE INDEX agents_by_provider_key ON agents (provider_key_id) WHERE provider_key_id IS NOT NULL;

-- Credentials are tokens bound to an agent; an API token has neither column.
ALTER TABLE tokens ADD COLUMN agent_id TEXT COLLATE "C" REFERENCES agents (id);
ALTER TABLE tokens ADD COLUMN agent_status TEXT;
ALTER TABLE tokens ADD CONSTRAINT tokens_agent_binding_check
    CHECK ((agent_status IS NULL) = (agent_id IS NULL)
           AND (agent_status IS NULL OR agent_status IN ('active', 'paused', 'disabled')));

CREATE INDEX tokens_by_agent ON tokens (agent_id, id) WHERE agent_id IS NOT NULL;
