-- OAuth installs of integrations (crate oma-integrations, module oauth): the app's client
-- credentials, the tokens an install grants and when the access token expires, and the
-- single-use `state` values of installs under way.
--
-- `oauth_client_secret` (Slack/Linear client secret; a GitHub App's private key),
-- `refresh_token` and, as before, `token` are sealed (oma_core::seal) under the associated data
-- `"{tenant}/{integration id}/client_secret"`, `".../refresh_token"`, `".../token"`.
-- `oauth_client_id` is the Slack/Linear client id or the GitHub App id; `installation_id` the
-- GitHub App installation the tokens are minted for. `token_expires_at` is in microseconds.
ALTER TABLE integrations ADD COLUMN oauth_client_id TEXT;
ALTER TABLE integrations ADD COLUMN oauth_client_secret TEXT;
ALTER TABLE integrations ADD COLUMN refresh_token TEXT;
ALTER TABLE integrations ADD COLUMN token_expires_at BIGINT;
ALTER TABLE integrations ADD COLUMN installation_id TEXT;

-- Only the SHA-256 of a state is kept: the database never holds a usable one. A state is
-- deleted by the callback that presents it (so it works once) and is refused after
-- `expires_at`.
CREATE TABLE integration_oauth_states (
    state_hash      TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX integration_oauth_states_age ON integration_oauth_states (expires_at);

-- The tenant fence of migration 0018.

CREATE TRIGGER integration_oauth_states_fence_insert BEFORE INSERT ON integration_oauth_states
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_oauth_states', json_array(NEW.state_hash) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_oauth_states_fence_update BEFORE UPDATE ON integration_oauth_states
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_oauth_states', json_array(NEW.state_hash) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_oauth_states_fence_delete BEFORE DELETE ON integration_oauth_states
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'integration_oauth_states', json_array(OLD.state_hash) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;
