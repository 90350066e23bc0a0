-- Multi-agent threads (semantics §10).
--
-- `events.cross_posted`: 1 for a child thread's event that also shows on the session-level
-- stream (its lifecycle, the calls that wait on the user and the answers to them). The row
-- is stored once, with the child's `thread_id`, so the answer a client sends on the session
-- is routed by that one event id.
ALTER TABLE events ADD COLUMN cross_posted BIGINT NOT NULL DEFAULT 0;

-- `session_threads.delegation`: the coordinator's `send_to_agent` call the thread works on
-- until it reports back, so a host that restarts mid-delegation resumes the same child.
ALTER TABLE session_threads ADD COLUMN delegation TEXT;
