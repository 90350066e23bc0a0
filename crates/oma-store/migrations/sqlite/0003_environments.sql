-- Environments are not versioned: one row per environment holding its API object (`body`,
-- served as is on a GET) beside the columns lists filter and sort on.
CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    archived_at BIGINT,
    body        TEXT NOT NULL
);
CREATE INDEX environments_tenant_created ON environments(tenant_id, created_at, id);
