-- Integrations (Slack, GitHub, Linear; crate oma-integrations): an agent published into a
-- service, the conversations it takes part in (one conversation = one session), the webhook
-- deliveries already handled (a retried delivery never starts a second turn: its row is written
-- in the transaction that queues the turn), and the replies still owed when a turn ends (so a
-- reply survives a restart).
--
-- `secret` and `token` are sealed (oma_core::seal) under the associated data
-- `"{tenant}/{integration id}/secret"` and `".../token"`; they are never returned or logged.
CREATE TABLE integrations (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    api_base        TEXT NOT NULL,
    allow_scopes    TEXT NOT NULL,
    app_handle      TEXT,
    secret          TEXT NOT NULL,
    token           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX integrations_tenant ON integrations (tenant_id, created_at);

CREATE TABLE integration_conversations (
    tenant_id       TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    conversation    TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (integration_id, conversation)
);

CREATE TABLE integration_deliveries (
    tenant_id       TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    delivery_id     TEXT NOT NULL,
    session_id      TEXT,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (integration_id, delivery_id)
);
CREATE INDEX integration_deliveries_age ON integration_deliveries (received_at);

CREATE TABLE integration_replies (
    event_id        TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    target          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX integration_replies_integration ON integration_replies (integration_id);

-- The tenant fence of migration 0018 on each of them.
CREATE TRIGGER integrations_fence BEFORE INSERT OR UPDATE OR DELETE ON integrations
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER integration_conversations_fence BEFORE INSERT OR UPDATE OR DELETE ON integration_conversations
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('integration_id', 'conversation');
CREATE TRIGGER integration_deliveries_fence BEFORE INSERT OR UPDATE OR DELETE ON integration_deliveries
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('integration_id', 'delivery_id');
CREATE TRIGGER integration_replies_fence BEFORE INSERT OR UPDATE OR DELETE ON integration_replies
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('event_id');
