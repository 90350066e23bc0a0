-- Operational events: the analytics dataset operators query (`oma events query`, the admin
-- API). Written in batches by the ops recorder from where things happen (tool calls, model
-- requests, session transitions, silent catches, egress, integrations, sandboxes). `fields`
-- holds the kind's typed attributes as a JSON object; `at` is microseconds since the epoch.
-- Not tenant-scoped on purpose: some events (egress, sandbox) belong to the deployment.
CREATE TABLE ops_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    tenant_id   TEXT,
    session_id  TEXT,
    outcome     TEXT NOT NULL,
    duration_ms BIGINT,
    fields      TEXT NOT NULL
);
CREATE INDEX ops_events_kind_at ON ops_events(kind, at);
CREATE INDEX ops_events_at ON ops_events(at);
