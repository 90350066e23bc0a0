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
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    tbl        TEXT NOT NULL,
    pk         TEXT NOT NULL
);
CREATE INDEX tenant_changes_tenant ON tenant_changes (tenant_id, id);

-- The fence check. A writer holds the tenant's advisory lock (shared) until it commits, so the
-- mover, which changes a phase under the same lock held exclusively, waits for the writers that
-- started under the old phase: none commits a change the mover would not see. The key columns
-- come as trigger arguments; a logged key is the JSON array of their values.
CREATE FUNCTION oma_tenant_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text;
    p text;
    j jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN t := OLD.tenant_id; ELSE t := NEW.tenant_id; END IF;
    IF t IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock_shared(7043, hashtext(t));
        SELECT phase INTO p FROM tenant_fences WHERE tenant_id = t;
        IF p IN ('fenced', 'moved') THEN
            RAISE EXCEPTION 'oma_tenant_fenced: tenant % is being moved or lives on another shard', t
                USING ERRCODE = 'OM001';
        ELSIF p = 'copying' THEN
            IF TG_OP = 'DELETE' THEN j := to_jsonb(OLD); ELSE j := to_jsonb(NEW); END IF;
            INSERT INTO tenant_changes (tenant_id, tbl, pk)
            SELECT t, TG_TABLE_NAME, CAST(jsonb_agg(j -> a ORDER BY o) AS text)
              FROM unnest(TG_ARGV) WITH ORDINALITY AS k(a, o);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER agent_versions_fence BEFORE INSERT OR UPDATE OR DELETE ON agent_versions
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('agent_id', 'version');
CREATE TRIGGER agents_fence BEFORE INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER context_compactions_fence BEFORE INSERT OR UPDATE OR DELETE ON context_compactions
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id', 'event_id');
CREATE TRIGGER environment_keys_fence BEFORE INSERT OR UPDATE OR DELETE ON environment_keys
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER environments_fence BEFORE INSERT OR UPDATE OR DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER events_fence BEFORE INSERT OR UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id', 'seq');
CREATE TRIGGER files_fence BEFORE INSERT OR UPDATE OR DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER memories_fence BEFORE INSERT OR UPDATE OR DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER memory_stores_fence BEFORE INSERT OR UPDATE OR DELETE ON memory_stores
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER memory_versions_fence BEFORE INSERT OR UPDATE OR DELETE ON memory_versions
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER model_routes_fence BEFORE INSERT OR UPDATE OR DELETE ON model_routes
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER model_streams_fence BEFORE INSERT OR UPDATE OR DELETE ON model_streams
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id', 'span_id');
CREATE TRIGGER ops_events_fence BEFORE INSERT OR UPDATE OR DELETE ON ops_events
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER session_inputs_fence BEFORE INSERT OR UPDATE OR DELETE ON session_inputs
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id', 'seq');
CREATE TRIGGER session_leases_fence BEFORE INSERT OR UPDATE OR DELETE ON session_leases
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id');
CREATE TRIGGER session_resources_fence BEFORE INSERT OR UPDATE OR DELETE ON session_resources
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('session_id', 'id');
CREATE TRIGGER session_threads_fence BEFORE INSERT OR UPDATE OR DELETE ON session_threads
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER sessions_fence BEFORE INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER skill_versions_fence BEFORE INSERT OR UPDATE OR DELETE ON skill_versions
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER skills_fence BEFORE INSERT OR UPDATE OR DELETE ON skills
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER vault_credentials_fence BEFORE INSERT OR UPDATE OR DELETE ON vault_credentials
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER vaults_fence BEFORE INSERT OR UPDATE OR DELETE ON vaults
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER work_items_fence BEFORE INSERT OR UPDATE OR DELETE ON work_items
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('id');
CREATE TRIGGER work_pollers_fence BEFORE INSERT OR UPDATE OR DELETE ON work_pollers
    FOR EACH ROW EXECUTE FUNCTION oma_tenant_fence('tenant_id', 'environment_id', 'worker_id');
