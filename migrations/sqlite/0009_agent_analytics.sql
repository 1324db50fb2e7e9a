-- tollgate schema 0009: usage attributed to agents. An agent's credential is a token with
-- `agent_id` set; each hourly rollup row now keeps that agent too (as it keeps the token's owner and
-- project), so spending by agent is read from rollups without joining tokens.

ALTER TABLE usage_rollups ADD COLUMN agent_id TEXT CHECK (agent_id IS NULL OR length(agent_id) = 36);

UPDATE usage_rollups
SET agent_id = (SELECT t.agent_id FROM tokens t WHERE t.id = usage_rollups.token_id)
WHERE agent_id IS NULL;

CREATE INDEX usage_rollups_agent ON usage_rollups (agent_id, hour) WHERE agent_id IS NOT NULL;
