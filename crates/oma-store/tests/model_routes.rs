//! Model routes in the store, on SQLite always and on PostgreSQL when `OMA_TEST_DATABASE_URL`
//! is set: CRUD, one route per model id and tenant, the key sealed at rest and opened only by
//! `resolve_model_route`, and tenants kept apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use oma_core::model_routes::{
    ApiKey, CreateModelRouteParams, ModelRoute, ModelRouteSpec, UpdateModelRouteParams, api_key_aad,
};
use oma_core::seal::Sealer;
use oma_core::{ErrorKind, ids};
use oma_store::{ListQuery, Store, StoreError};
use serde_json::{Value, json};

const NEEDLE: &str = "sk-plaintext-needle-5e1f";
const NEEDLE2: &str = "sk-plaintext-needle-77aa";

/// SQLite always; PostgreSQL too when `OMA_TEST_DATABASE_URL` is set. Tenants are unique per
/// run, so a shared database is fine.
async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("oma.db").display());
    let mut out = vec![(Some(dir), Store::connect(&url).await.unwrap())];
    match std::env::var("OMA_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => out.push((None, Store::connect(&u).await.unwrap())),
        _ => eprintln!("note: OMA_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant"),
    }
    for (_, s) in &out {
        s.migrate_up().await.unwrap();
    }
    out
}

fn tenant() -> String {
    ids::new_id("tmroute")
}

fn sealer() -> Sealer {
    Sealer::from_root_secret(&[9u8; 32]).unwrap()
}

fn spec(v: Value) -> (ModelRouteSpec, Option<ApiKey>) {
    ModelRouteSpec::create(serde_json::from_value::<CreateModelRouteParams>(v).unwrap()).unwrap()
}

fn patch(v: Value) -> UpdateModelRouteParams {
    serde_json::from_value(v).unwrap()
}

fn parse(body: &str) -> ModelRoute {
    serde_json::from_str(body).unwrap()
}

fn kind(e: &StoreError) -> Option<ErrorKind> {
    match e {
        StoreError::Domain(d) => Some(d.kind),
        _ => None,
    }
}

async fn create(store: &Store, t: &str, s: &Sealer, v: Value) -> Result<ModelRoute, StoreError> {
    let (sp, key) = spec(v);
    store
        .create_model_route(t, &sp, key.as_ref(), s)
        .await
        .map(|b| parse(&b))
}

#[tokio::test]
async fn crud_uniqueness_and_pagination() {
    for (_dir, store) in stores().await {
        let s = sealer();
        let t = tenant();
        let r = create(
            &store,
            &t,
            &s,
            json!({"model": "gpt-4.1", "provider": "openai",
                "base_url": "https://api.openai.com/v1/", "api_key": NEEDLE}),
        )
        .await
        .unwrap();
        assert!(r.id.starts_with("mroute_"));
        assert_eq!(r.kind, "model_route");
        assert_eq!(r.base_url, "https://api.openai.com/v1");
        assert_eq!(r.upstream_model, "gpt-4.1");
        assert!(r.has_api_key);
        assert_eq!(parse(&store.get_model_route(&t, &r.id).await.unwrap()), r);

        // One route per model id and tenant; another tenant may use the same id.
        let dup = create(
            &store,
            &t,
            &s,
            json!({"model": "gpt-4.1", "provider": "anthropic", "base_url": "http://h"}),
        )
        .await
        .unwrap_err();
        assert_eq!(kind(&dup), Some(ErrorKind::Conflict), "{dup:?}");
        let t2 = tenant();
        create(
            &store,
            &t2,
            &s,
            json!({"model": "gpt-4.1", "provider": "openai", "base_url": "http://h"}),
        )
        .await
        .unwrap();

        // Updates: a no-op keeps the object; renaming onto a taken model id is a conflict.
        let same = store
            .update_model_route(&t, &r.id, patch(json!({})), &s)
            .await
            .unwrap();
        assert_eq!(parse(&same), r);
        let same = store
            .update_model_route(&t, &r.id, patch(json!({"api_key": NEEDLE})), &s)
            .await
            .unwrap();
        assert_eq!(parse(&same), r, "the same key again changes nothing");
        let other = create(
            &store,
            &t,
            &s,
            json!({"model": "llama", "provider": "openai", "base_url": "http://127.0.0.1:11434/v1"}),
        )
        .await
        .unwrap();
        assert!(!other.has_api_key);
        let err = store
            .update_model_route(&t, &other.id, patch(json!({"model": "gpt-4.1"})), &s)
            .await
            .unwrap_err();
        assert_eq!(kind(&err), Some(ErrorKind::Conflict), "{err:?}");
        let renamed = parse(
            &store
                .update_model_route(
                    &t,
                    &other.id,
                    patch(json!({"model": "llama-3", "upstream_model": "llama3:70b",
                        "metadata": {"k": "v"}})),
                    &s,
                )
                .await
                .unwrap(),
        );
        assert_eq!(renamed.model, "llama-3");
        assert_eq!(renamed.upstream_model, "llama3:70b");
        assert_eq!(renamed.created_at, other.created_at);
        assert!(renamed.updated_at > other.updated_at);
        // The old model id is free again.
        create(
            &store,
            &t,
            &s,
            json!({"model": "llama", "provider": "openai", "base_url": "http://h"}),
        )
        .await
        .unwrap();

        // Pagination: three routes, one per page, newest first, no repeats.
        let mut seen = Vec::new();
        let mut q = ListQuery::new(1, true, None);
        loop {
            let page = store.list_model_routes(&t, &q).await.unwrap();
            seen.extend(page.items.iter().map(|b| parse(b).id));
            match page.next {
                Some(c) => q = ListQuery::new(1, true, Some(c)),
                None => break,
            }
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[2], r.id, "oldest last");
        let asc = store
            .list_model_routes(&t, &ListQuery::new(10, false, None))
            .await
            .unwrap();
        assert_eq!(parse(&asc.items[0]).id, r.id);

        // Delete, then everything about it is 404.
        store.delete_model_route(&t, &r.id).await.unwrap();
        for e in [
            store.get_model_route(&t, &r.id).await.unwrap_err(),
            store.delete_model_route(&t, &r.id).await.unwrap_err(),
            store
                .update_model_route(&t, &r.id, patch(json!({})), &s)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(kind(&e), Some(ErrorKind::NotFound), "{e:?}");
        }
        assert!(
            store
                .resolve_model_route(&t, "gpt-4.1", &s)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn keys_are_sealed_and_open_only_for_the_runtime() {
    for (dir, store) in stores().await {
        let s = sealer();
        let t = tenant();
        let r = create(
            &store,
            &t,
            &s,
            json!({"model": "my-model", "provider": "anthropic",
                "base_url": "https://gw.example", "upstream_model": "claude-x", "api_key": NEEDLE}),
        )
        .await
        .unwrap();
        let body = store.get_model_route(&t, &r.id).await.unwrap();
        assert!(!body.contains(NEEDLE));

        let resolved = store
            .resolve_model_route(&t, "my-model", &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.id, r.id);
        assert_eq!(resolved.provider, "anthropic");
        assert_eq!(resolved.base_url, "https://gw.example");
        assert_eq!(resolved.upstream_model, "claude-x");
        assert_eq!(resolved.api_key.as_deref(), Some(NEEDLE));
        assert!(!format!("{resolved:?}").contains(NEEDLE), "Debug redacts");
        let first_updated = resolved.updated_at;

        // The sealed value is bound to tenant and id.
        let sealed: String = sqlx::query_scalar("SELECT api_key FROM model_routes WHERE id = $1")
            .bind(&r.id)
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(s.open(&api_key_aad(&t, "mroute_other"), &sealed).is_err());
        assert!(s.open(&api_key_aad("other", &r.id), &sealed).is_err());
        // A different root secret cannot open it: resolving fails loudly instead of
        // returning a route without its key.
        let wrong = Sealer::from_root_secret(&[1u8; 32]).unwrap();
        assert!(
            store
                .resolve_model_route(&t, "my-model", &wrong)
                .await
                .is_err()
        );

        // Another tenant sees nothing.
        let t2 = tenant();
        assert!(
            store
                .resolve_model_route(&t2, "my-model", &s)
                .await
                .unwrap()
                .is_none()
        );
        for e in [
            store.get_model_route(&t2, &r.id).await.unwrap_err(),
            store
                .update_model_route(&t2, &r.id, patch(json!({"api_key": null})), &s)
                .await
                .unwrap_err(),
            store.delete_model_route(&t2, &r.id).await.unwrap_err(),
        ] {
            assert_eq!(kind(&e), Some(ErrorKind::NotFound), "{e:?}");
        }
        let listed = store
            .list_model_routes(&t2, &ListQuery::new(100, true, None))
            .await
            .unwrap();
        assert!(listed.items.is_empty());

        // Replace the key: re-sealed, and updated_at moves so the runtime rebuilds.
        let rotated = parse(
            &store
                .update_model_route(&t, &r.id, patch(json!({"api_key": NEEDLE2})), &s)
                .await
                .unwrap(),
        );
        assert!(rotated.has_api_key);
        let resolved = store
            .resolve_model_route(&t, "my-model", &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.api_key.as_deref(), Some(NEEDLE2));
        assert!(resolved.updated_at > first_updated);
        // A metadata-only update keeps the key.
        store
            .update_model_route(&t, &r.id, patch(json!({"metadata": {"a": "b"}})), &s)
            .await
            .unwrap();
        let resolved = store
            .resolve_model_route(&t, "my-model", &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.api_key.as_deref(), Some(NEEDLE2));
        // null removes it.
        let cleared = parse(
            &store
                .update_model_route(&t, &r.id, patch(json!({"api_key": null})), &s)
                .await
                .unwrap(),
        );
        assert!(!cleared.has_api_key);
        let resolved = store
            .resolve_model_route(&t, "my-model", &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.api_key, None);
        let left: Option<String> =
            sqlx::query_scalar("SELECT api_key FROM model_routes WHERE id = $1")
                .bind(&r.id)
                .fetch_one(store.reader())
                .await
                .unwrap();
        assert_eq!(left, None);

        // Put a key back, so the file scan below has sealed bytes to look through.
        store
            .update_model_route(&t, &r.id, patch(json!({"api_key": NEEDLE})), &s)
            .await
            .unwrap();
        store.close().await;
        if let Some(dir) = dir {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                let hay = String::from_utf8_lossy(&bytes);
                assert!(
                    !hay.contains("sk-plaintext-needle"),
                    "plaintext reached the database files"
                );
            }
        }
    }
}
