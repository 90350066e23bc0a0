-- The session runtime's durable state beside the event log.
--
-- `session_inputs` is each session's input queue: client events wait here (in arrival order,
-- `seq` from `sessions.input_seq`) until the session's host consumes them, which appends
-- their echo to the event log and deletes them in one transaction.
ALTER TABLE sessions ADD COLUMN input_seq BIGINT NOT NULL DEFAULT 0;

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
