-- Per-tenant model routes (an oma extension): which provider serves a model id. The row keeps
-- its public API object (`body`) apart from the provider key, which is stored only sealed
-- (`api_key`: XChaCha20-Poly1305 under a key derived from the root secret, with
-- "{tenant_id}/{id}" as associated data) and is NULL when the route has no key.
CREATE TABLE model_routes (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    -- The model id agents use; one route per model id and tenant.
    model      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body       TEXT NOT NULL,
    api_key    TEXT
);
CREATE UNIQUE INDEX model_routes_tenant_model ON model_routes(tenant_id, model);
CREATE INDEX model_routes_tenant_created ON model_routes(tenant_id, created_at, id);
