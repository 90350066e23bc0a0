-- Session ownership across nodes (DESIGN principle 2).
--
-- One row per session that a host has ever owned. `epoch` grows by one at every claim and is
-- the fencing token: a step commits only while its host's (node, epoch) is the row's and the
-- lease has not expired, so a stale owner's append fails. A released lease keeps its row
-- (expires_at = 0) so that epochs never repeat. Times are microseconds of the database clock.
CREATE TABLE session_leases (
    session_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX session_leases_node ON session_leases (node_id, expires_at);

-- The nodes serving this database: identity, address and liveness (`/health`, `oma doctor`).
CREATE TABLE cluster_nodes (
    node_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
