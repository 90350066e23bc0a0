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
    body           TEXT NOT NULL
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
