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
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX events_id ON events(id);
CREATE INDEX events_session_type ON events(session_id, type, seq);
