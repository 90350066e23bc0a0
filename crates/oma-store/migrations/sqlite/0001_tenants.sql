-- Tenants and their API keys. A tenant's id is its name (a slug chosen by the operator).
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Keys are stored as SHA-256 hex of the full key: they are 256-bit random strings, so a fast
-- hash is enough and lets authentication be a single indexed lookup.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT,
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, created_at);
