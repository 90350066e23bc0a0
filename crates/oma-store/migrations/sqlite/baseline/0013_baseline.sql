-- The squashed baseline: the schema of migrations 0001..0013 in one file. `oma migrate up`
-- creates a NEW database from this file instead of replaying 0001..0013 (it is recorded in
-- `_sqlx_migrations` as version -13); a database that applied those files one by one records it
-- with `oma migrate stamp-baseline`. Both end with the same schema (a test compares them), so
-- the two columns added later by ALTER TABLE (`sessions.input_seq`, `events.blob_key`) stay the
-- last columns of their tables here. Later migrations (0014+) apply on top of either.

-- ==== 0001_tenants ========================================================================
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

-- ==== 0002_agents =========================================================================
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

-- ==== 0003_environments ===================================================================
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

-- ==== 0004_sessions =======================================================================
-- Sessions, their resources and their threads (spec §3.3).
--
-- `sessions.body` is the session object as created or last updated; the columns beside it are
-- what lists filter and sort on and the live state other writers change without rewriting the
-- body (`status`, `archived_at`, `updated_at`, and `last_seq`, which the event log advances on
-- every append). Reads overlay those columns and the current resources onto the body.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    status         TEXT NOT NULL,
    archived_at    BIGINT,
    last_seq       BIGINT NOT NULL DEFAULT 0,
    agent_id       TEXT NOT NULL,
    agent_version  BIGINT NOT NULL,
    environment_id TEXT NOT NULL,
    deployment_id  TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    body           TEXT NOT NULL,
    -- From 0010: the input queue's last `seq` (see session_inputs).
    input_seq      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_tenant_created ON sessions(tenant_id, created_at, id);
CREATE INDEX sessions_tenant_agent ON sessions(tenant_id, agent_id, agent_version, created_at);

-- One row per mounted resource, in the order it was attached (`position`). `ref_id` is the
-- attached file or memory store; memory store attachments use the store id as their own id
-- (the API shape has no resource id for them). `secret` is the sealed GitHub token
-- (XChaCha20-Poly1305, "{tenant_id}/{id}" as associated data); it is never returned.
CREATE TABLE session_resources (
    session_id  TEXT NOT NULL,
    id          TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    position    BIGINT NOT NULL,
    ref_id      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    secret      TEXT,
    body        TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX session_resources_ref ON session_resources(tenant_id, kind, ref_id);

-- Execution threads: the primary thread (no parent) plus child threads.
CREATE TABLE session_threads (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    parent_thread_id TEXT,
    status           TEXT NOT NULL,
    archived_at      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX session_threads_session ON session_threads(tenant_id, session_id, created_at, id);

-- ==== 0005_vaults =========================================================================
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

-- ==== 0006_memory =========================================================================
-- Memory stores, their memories and the memories' version history (spec §3.5).
--
-- `memory_stores.body` is the store's API object, served as is. `write_seq` exists only to be
-- bumped by every memory write: that UPDATE takes the store row's lock first, so writers of one
-- store are serialised (path uniqueness across the tree, the per-store cap, preconditions)
-- while other stores are unaffected.
CREATE TABLE memory_stores (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    archived_at BIGINT,
    write_seq   BIGINT NOT NULL DEFAULT 0,
    body        TEXT NOT NULL
);
CREATE INDEX memory_stores_tenant_created ON memory_stores(tenant_id, created_at, id);

-- The live memories. Content lives in the version the row points at (`version_id`); the
-- digest and size are copied here so listings never read content. Paths compare bytewise
-- (SQLite's default BINARY collation), which prefix range scans rely on.
CREATE TABLE memories (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    memory_store_id    TEXT NOT NULL,
    path               TEXT NOT NULL,
    version_id         TEXT NOT NULL,
    content_sha256     TEXT NOT NULL,
    content_size_bytes BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX memories_store_path ON memories(tenant_id, memory_store_id, path);

-- Every change to a memory, kept after the memory is deleted. `content`, `path`, the digest and
-- the size are NULL once redacted (and content, digest and size for `deleted` versions).
-- Actors are (`type` literal, id) pairs.
CREATE TABLE memory_versions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    memory_store_id    TEXT NOT NULL,
    memory_id          TEXT NOT NULL,
    operation          TEXT NOT NULL,
    path               TEXT,
    content            TEXT,
    content_sha256     TEXT,
    content_size_bytes BIGINT,
    created_at         BIGINT NOT NULL,
    created_by_type    TEXT,
    created_by_id      TEXT,
    redacted_at        BIGINT,
    redacted_by_type   TEXT,
    redacted_by_id     TEXT
);
CREATE INDEX memory_versions_store_created ON memory_versions(tenant_id, memory_store_id, created_at, id);
CREATE INDEX memory_versions_memory ON memory_versions(tenant_id, memory_id, created_at, id);

-- ==== 0007_skills =========================================================================
-- Skills and their versions (spec §3.6).
--
-- A skill row is built into its object on read (its `latest_version_id` and `updated_at` move
-- whenever a version is created or deleted, so there is no stored body to keep in step).
-- `skill_versions` rows are immutable: `body` is the version object as served and `files` its
-- manifest, a JSON array of {path, size_bytes, mime_type, blob} in upload order. The bytes
-- live in the blob store, one blob per file, under `skills/<tenant>/<skill_id>/<version_id>/<n>`;
-- blobs are written before the row and deleted after it.
CREATE TABLE skills (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    source            TEXT NOT NULL,
    latest_version_id TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX skills_tenant_created ON skills(tenant_id, created_at, id);

CREATE TABLE skill_versions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    skill_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    files       TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX skill_versions_skill ON skill_versions(tenant_id, skill_id, created_at, id);

-- ==== 0008_files ==========================================================================
-- Files (spec §3.7). `body` is the metadata object as served; the columns beside it are what
-- lists filter and sort on and what downloads check. The bytes live in the blob store under
-- `blob_key` (`files/<tenant>/<file_id>`), written before the row is inserted and deleted
-- after the row is, so a row never points at missing bytes.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    downloadable BIGINT NOT NULL,
    scope_id     TEXT,
    mime_type    TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    blob_key     TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX files_tenant_created ON files(tenant_id, created_at, id);
CREATE INDEX files_tenant_scope ON files(tenant_id, scope_id, created_at, id);
CREATE INDEX files_expiring ON files(expires_at) WHERE expires_at IS NOT NULL;

-- ==== 0009_events =========================================================================
-- The event log: one row per event, `seq` contiguous per session from 1, assigned on append
-- from `sessions.last_seq` in the same transaction. `body` is the event's API object.
CREATE TABLE events (
    session_id   TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    thread_id    TEXT,
    processed_at BIGINT,
    body         TEXT NOT NULL,
    -- From 0011: large events spill to the blob store; `blob_key` names the blob holding the
    -- full event object and `body` then keeps only a small stub. NULL for events stored inline.
    blob_key     TEXT,
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX events_id ON events(id);
CREATE INDEX events_session_type ON events(session_id, type, seq);

-- ==== 0010_runtime ========================================================================
-- The session runtime's durable state beside the event log.
--
-- `session_inputs` is each session's input queue: client events wait here (in arrival order,
-- `seq` from `sessions.input_seq`) until the session's host consumes them, which appends
-- their echo to the event log and deletes them in one transaction.
CREATE TABLE session_inputs (
    session_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- The text a model has streamed so far in a request that has not ended, so that a crash
-- mid-stream keeps the partial message. One row per open model request, removed when the
-- request's end is appended.
CREATE TABLE model_streams (
    session_id  TEXT NOT NULL,
    span_id     TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    partial     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, span_id)
);

-- ==== 0012_model_routes ===================================================================
-- Per-tenant model routes (an oma extension): which provider serves a model id. The row keeps
-- its public API object (`body`) apart from the provider key, which is stored only sealed
-- (`api_key`: XChaCha20-Poly1305 under a key derived from the root secret, with
-- "{tenant_id}/{id}" as associated data) and is NULL when the route has no key.
CREATE TABLE model_routes (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    -- The model id agents use; one route per model id and tenant.
    model      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body       TEXT NOT NULL,
    api_key    TEXT
);
CREATE UNIQUE INDEX model_routes_tenant_model ON model_routes(tenant_id, model);
CREATE INDEX model_routes_tenant_created ON model_routes(tenant_id, created_at, id);

-- ==== 0013_context_compactions ============================================================
-- Context compaction: when a session's model context nears the window, older events are
-- summarised by a model call. The summary replaces events up to `upto_seq` in the context the
-- model sees (the log itself keeps every event). One row per `agent.thread_context_compacted`.
CREATE TABLE context_compactions (
    session_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    upto_seq    BIGINT NOT NULL,
    summary     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, event_id)
);
