-- Vaults and their credentials. A credential row keeps its public API object (`body`) apart
-- from its secrets, which are stored only sealed (`secrets`: XChaCha20-Poly1305 under a key
-- derived from the root secret, with "{tenant_id}/{id}" as associated data). Archiving a
-- credential purges `secrets` (NULL) and keeps the record for audit.
CREATE TABLE vaults (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    archived_at BIGINT,
    body        TEXT NOT NULL
);
CREATE INDEX vaults_tenant_created ON vaults(tenant_id, created_at, id);

CREATE TABLE vault_credentials (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    vault_id       TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    archived_at    BIGINT,
    -- What must be unique among a vault's active credentials: `mcp:<normalised server URL>`
    -- or `env:<variable name>`.
    credential_key TEXT NOT NULL,
    body           TEXT NOT NULL,
    secrets        TEXT
);
CREATE INDEX vault_credentials_vault_created ON vault_credentials(tenant_id, vault_id, created_at, id);
CREATE UNIQUE INDEX vault_credentials_active_key ON vault_credentials(vault_id, credential_key)
    WHERE archived_at IS NULL;
