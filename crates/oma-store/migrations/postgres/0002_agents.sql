-- Agents are versioned: `agents` holds the current version's API object (served as is on a
-- plain GET), `agent_versions` every version's configuration.
CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    archived_at BIGINT,
    body        TEXT NOT NULL
);
CREATE INDEX agents_tenant_created ON agents(tenant_id, created_at, id);

CREATE TABLE agent_versions (
    agent_id    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    config      TEXT NOT NULL,
    PRIMARY KEY (agent_id, version)
);
