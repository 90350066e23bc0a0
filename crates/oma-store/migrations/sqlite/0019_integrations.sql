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

CREATE TRIGGER integrations_fence_insert BEFORE INSERT ON integrations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integrations', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integrations_fence_update BEFORE UPDATE ON integrations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integrations', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integrations_fence_delete BEFORE DELETE ON integrations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'integrations', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_conversations_fence_insert BEFORE INSERT ON integration_conversations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_conversations', json_array(NEW.integration_id, NEW.conversation) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_conversations_fence_update BEFORE UPDATE ON integration_conversations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_conversations', json_array(NEW.integration_id, NEW.conversation) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_conversations_fence_delete BEFORE DELETE ON integration_conversations
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'integration_conversations', json_array(OLD.integration_id, OLD.conversation) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_deliveries_fence_insert BEFORE INSERT ON integration_deliveries
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_deliveries', json_array(NEW.integration_id, NEW.delivery_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_deliveries_fence_update BEFORE UPDATE ON integration_deliveries
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_deliveries', json_array(NEW.integration_id, NEW.delivery_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_deliveries_fence_delete BEFORE DELETE ON integration_deliveries
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'integration_deliveries', json_array(OLD.integration_id, OLD.delivery_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_replies_fence_insert BEFORE INSERT ON integration_replies
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_replies', json_array(NEW.event_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_replies_fence_update BEFORE UPDATE ON integration_replies
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'integration_replies', json_array(NEW.event_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER integration_replies_fence_delete BEFORE DELETE ON integration_replies
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'integration_replies', json_array(OLD.event_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;
