-- Self-hosted environments (spec §3.2.2): the work queue and the credentials its workers use.
--
-- `environment_keys`: the standing credential of an environment's workers, stored hashed like
-- API keys (`key_hash` = SHA-256 hex). A revoked key keeps its row (`revoked_at`).
CREATE TABLE environment_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    name            TEXT,
    key_hash        TEXT NOT NULL UNIQUE,
    key_prefix      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX environment_keys_env ON environment_keys(tenant_id, environment_id);

-- `work_items`: one row per unit of work (today always a session). `state` is the API's
-- state machine (queued → starting → active → stopping → stopped); a queued row with
-- `polled_at` set is "pending" (offered to a worker, not acknowledged yet). The lease runs
-- from the ack and each heartbeat until `lease_expires_at`; an expired lease puts the item
-- back in the queue. `token_hash` is the hash of the sessions token issued with the newest
-- poll (the `secret`), so a token handed to an earlier worker stops working.
CREATE TABLE work_items (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    environment_id      TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    state               TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    polled_at           BIGINT,
    acknowledged_at     BIGINT,
    started_at          BIGINT,
    last_heartbeat_at   BIGINT,
    lease_ttl_seconds   BIGINT,
    lease_expires_at    BIGINT,
    stop_requested_at   BIGINT,
    stopped_at          BIGINT,
    metadata            TEXT NOT NULL,
    token_hash          TEXT,
    worker_id           TEXT
);
CREATE INDEX work_items_queue ON work_items(tenant_id, environment_id, state, created_at);
CREATE INDEX work_items_session ON work_items(tenant_id, session_id, state);

-- Which workers polled an environment, and when (for `workers_polling` in the stats).
CREATE TABLE work_pollers (
    tenant_id       TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    worker_id       TEXT NOT NULL,
    last_poll_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, environment_id, worker_id)
);
