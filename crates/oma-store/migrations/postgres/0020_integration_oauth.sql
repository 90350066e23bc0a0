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
CREATE TRIGGER integration_oauth_states_fence BEFORE INSERT OR UPDATE OR DELETE ON integration_oauth_states
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('state_hash');
