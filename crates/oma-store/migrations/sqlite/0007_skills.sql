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
