-- Tenancy at scale (OPERATIONS "Tenancy and scale"): shards, and moving a tenant between them.
--
-- The router database (the one `database_url` names) keeps which shard holds which tenant:
-- `shard_pool` lists the shards (the router database itself is the shard `main`) and
-- `tenant_shard` assigns tenants to them (a tenant without a row lives on `main`).
-- `tenant_moves` is the journal of moves in progress, so a mover that crashed resumes.
-- These tables exist in every database oma migrates; only the router's are used.
CREATE TABLE shard_pool (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    status        TEXT NOT NULL,
    dedicated_to  TEXT,
    tenant_count  BIGINT NOT NULL DEFAULT 0,
    size_bytes    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE tenant_shard (
    tenant_id    TEXT PRIMARY KEY,
    shard        TEXT NOT NULL,
    assigned_at  BIGINT NOT NULL
);

CREATE TABLE tenant_moves (
    tenant_id    TEXT PRIMARY KEY,
    from_shard   TEXT NOT NULL,
    to_shard     TEXT NOT NULL,
    phase        TEXT NOT NULL,
    rows_copied  BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- On every shard: the write fence of a tenant being moved, enforced by the database itself
-- (the triggers below) so that no node, however stale its routing, writes a tenant's row
-- where the tenant no longer lives.
--   copying  writes go on and each changed row's key is logged in `tenant_changes`, which
--            the mover replays onto the new shard;
--   fenced   writes fail (`oma_tenant_fenced`) while the mover copies the last changes;
--   moved    the tenant lives elsewhere (`moved_to`): writes fail, the node re-routes;
--   purging  only inside the mover's own transaction that deletes the old copy.
CREATE TABLE tenant_fences (
    tenant_id   TEXT PRIMARY KEY,
    phase       TEXT NOT NULL,
    moved_to    TEXT,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE tenant_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    tbl        TEXT NOT NULL,
    pk         TEXT NOT NULL
);
CREATE INDEX tenant_changes_tenant ON tenant_changes (tenant_id, id);

-- One trigger per table and operation (SQLite triggers cannot be shared).

CREATE TRIGGER agent_versions_fence_insert BEFORE INSERT ON agent_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'agent_versions', json_array(NEW.agent_id, NEW.version) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER agent_versions_fence_update BEFORE UPDATE ON agent_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'agent_versions', json_array(NEW.agent_id, NEW.version) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER agent_versions_fence_delete BEFORE DELETE ON agent_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'agent_versions', json_array(OLD.agent_id, OLD.version) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER agents_fence_insert BEFORE INSERT ON agents
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'agents', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER agents_fence_update BEFORE UPDATE ON agents
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'agents', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER agents_fence_delete BEFORE DELETE ON agents
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'agents', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER context_compactions_fence_insert BEFORE INSERT ON context_compactions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'context_compactions', json_array(NEW.session_id, NEW.event_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER context_compactions_fence_update BEFORE UPDATE ON context_compactions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'context_compactions', json_array(NEW.session_id, NEW.event_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER context_compactions_fence_delete BEFORE DELETE ON context_compactions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'context_compactions', json_array(OLD.session_id, OLD.event_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environment_keys_fence_insert BEFORE INSERT ON environment_keys
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'environment_keys', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environment_keys_fence_update BEFORE UPDATE ON environment_keys
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'environment_keys', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environment_keys_fence_delete BEFORE DELETE ON environment_keys
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'environment_keys', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environments_fence_insert BEFORE INSERT ON environments
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'environments', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environments_fence_update BEFORE UPDATE ON environments
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'environments', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER environments_fence_delete BEFORE DELETE ON environments
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'environments', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER events_fence_insert BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'events', json_array(NEW.session_id, NEW.seq) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER events_fence_update BEFORE UPDATE ON events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'events', json_array(NEW.session_id, NEW.seq) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER events_fence_delete BEFORE DELETE ON events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'events', json_array(OLD.session_id, OLD.seq) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER files_fence_insert BEFORE INSERT ON files
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'files', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER files_fence_update BEFORE UPDATE ON files
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'files', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER files_fence_delete BEFORE DELETE ON files
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'files', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memories_fence_insert BEFORE INSERT ON memories
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memories', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memories_fence_update BEFORE UPDATE ON memories
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memories', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memories_fence_delete BEFORE DELETE ON memories
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'memories', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_stores_fence_insert BEFORE INSERT ON memory_stores
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memory_stores', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_stores_fence_update BEFORE UPDATE ON memory_stores
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memory_stores', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_stores_fence_delete BEFORE DELETE ON memory_stores
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'memory_stores', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_versions_fence_insert BEFORE INSERT ON memory_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memory_versions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_versions_fence_update BEFORE UPDATE ON memory_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'memory_versions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER memory_versions_fence_delete BEFORE DELETE ON memory_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'memory_versions', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_routes_fence_insert BEFORE INSERT ON model_routes
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'model_routes', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_routes_fence_update BEFORE UPDATE ON model_routes
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'model_routes', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_routes_fence_delete BEFORE DELETE ON model_routes
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'model_routes', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_streams_fence_insert BEFORE INSERT ON model_streams
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'model_streams', json_array(NEW.session_id, NEW.span_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_streams_fence_update BEFORE UPDATE ON model_streams
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'model_streams', json_array(NEW.session_id, NEW.span_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER model_streams_fence_delete BEFORE DELETE ON model_streams
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'model_streams', json_array(OLD.session_id, OLD.span_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER ops_events_fence_insert BEFORE INSERT ON ops_events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'ops_events', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER ops_events_fence_update BEFORE UPDATE ON ops_events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'ops_events', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER ops_events_fence_delete BEFORE DELETE ON ops_events
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'ops_events', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_inputs_fence_insert BEFORE INSERT ON session_inputs
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_inputs', json_array(NEW.session_id, NEW.seq) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_inputs_fence_update BEFORE UPDATE ON session_inputs
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_inputs', json_array(NEW.session_id, NEW.seq) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_inputs_fence_delete BEFORE DELETE ON session_inputs
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'session_inputs', json_array(OLD.session_id, OLD.seq) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_leases_fence_insert BEFORE INSERT ON session_leases
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_leases', json_array(NEW.session_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_leases_fence_update BEFORE UPDATE ON session_leases
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_leases', json_array(NEW.session_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_leases_fence_delete BEFORE DELETE ON session_leases
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'session_leases', json_array(OLD.session_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_resources_fence_insert BEFORE INSERT ON session_resources
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_resources', json_array(NEW.session_id, NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_resources_fence_update BEFORE UPDATE ON session_resources
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_resources', json_array(NEW.session_id, NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_resources_fence_delete BEFORE DELETE ON session_resources
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'session_resources', json_array(OLD.session_id, OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_threads_fence_insert BEFORE INSERT ON session_threads
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_threads', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_threads_fence_update BEFORE UPDATE ON session_threads
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'session_threads', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER session_threads_fence_delete BEFORE DELETE ON session_threads
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'session_threads', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER sessions_fence_insert BEFORE INSERT ON sessions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'sessions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER sessions_fence_update BEFORE UPDATE ON sessions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'sessions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER sessions_fence_delete BEFORE DELETE ON sessions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'sessions', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skill_versions_fence_insert BEFORE INSERT ON skill_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'skill_versions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skill_versions_fence_update BEFORE UPDATE ON skill_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'skill_versions', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skill_versions_fence_delete BEFORE DELETE ON skill_versions
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'skill_versions', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skills_fence_insert BEFORE INSERT ON skills
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'skills', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skills_fence_update BEFORE UPDATE ON skills
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'skills', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER skills_fence_delete BEFORE DELETE ON skills
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'skills', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vault_credentials_fence_insert BEFORE INSERT ON vault_credentials
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'vault_credentials', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vault_credentials_fence_update BEFORE UPDATE ON vault_credentials
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'vault_credentials', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vault_credentials_fence_delete BEFORE DELETE ON vault_credentials
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'vault_credentials', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vaults_fence_insert BEFORE INSERT ON vaults
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'vaults', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vaults_fence_update BEFORE UPDATE ON vaults
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'vaults', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER vaults_fence_delete BEFORE DELETE ON vaults
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'vaults', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_items_fence_insert BEFORE INSERT ON work_items
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'work_items', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_items_fence_update BEFORE UPDATE ON work_items
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'work_items', json_array(NEW.id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_items_fence_delete BEFORE DELETE ON work_items
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'work_items', json_array(OLD.id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_pollers_fence_insert BEFORE INSERT ON work_pollers
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'work_pollers', json_array(NEW.tenant_id, NEW.environment_id, NEW.worker_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_pollers_fence_update BEFORE UPDATE ON work_pollers
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT NEW.tenant_id, 'work_pollers', json_array(NEW.tenant_id, NEW.environment_id, NEW.worker_id) FROM tenant_fences
     WHERE tenant_id = NEW.tenant_id AND phase = 'copying';
END;

CREATE TRIGGER work_pollers_fence_delete BEFORE DELETE ON work_pollers
WHEN EXISTS (SELECT 1 FROM tenant_fences WHERE tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'oma_tenant_fenced') FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase IN ('fenced', 'moved');
    INSERT INTO tenant_changes (tenant_id, tbl, pk)
    SELECT OLD.tenant_id, 'work_pollers', json_array(OLD.tenant_id, OLD.environment_id, OLD.worker_id) FROM tenant_fences
     WHERE tenant_id = OLD.tenant_id AND phase = 'copying';
END;
