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
