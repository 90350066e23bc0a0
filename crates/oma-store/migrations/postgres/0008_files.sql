-- Files (spec §3.7). `body` is the metadata object as served; the columns beside it are what
-- lists filter and sort on and what downloads check. The bytes live in the blob store under
-- `blob_key` (`files/<tenant>/<file_id>`), written before the row is inserted and deleted
-- after the row is, so a row never points at missing bytes.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    downloadable BIGINT NOT NULL,
    scope_id     TEXT,
    mime_type    TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    blob_key     TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX files_tenant_created ON files(tenant_id, created_at, id);
CREATE INDEX files_tenant_scope ON files(tenant_id, scope_id, created_at, id);
CREATE INDEX files_expiring ON files(expires_at) WHERE expires_at IS NOT NULL;
