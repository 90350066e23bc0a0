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
