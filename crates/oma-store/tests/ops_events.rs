//! Operational events in the store, on SQLite always and on PostgreSQL when
//! `OMA_TEST_DATABASE_URL` is set: batch inserts, filters (kind, window, tenant, session,
//! attributes), newest-first pages, group-by counts, and names that are not names refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use oma_core::ids;
use oma_store::Store;
use oma_store::ops_events::{OpsEvent, OpsFilter, OpsPage};
use serde_json::{Map, Value, json};

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

fn event(
    at: i64,
    kind: &str,
    tenant: &str,
    session: &str,
    outcome: &str,
    fields: Value,
) -> OpsEvent {
    let fields: Map<String, Value> = serde_json::from_value(fields).unwrap();
    OpsEvent {
        id: ids::new_id("opev"),
        at,
        kind: kind.into(),
        tenant_id: Some(tenant.into()),
        session_id: Some(session.into()),
        outcome: outcome.into(),
        duration_ms: Some(at % 100),
        fields,
    }
}

#[tokio::test]
async fn insert_query_and_group() {
    for (_dir, store) in stores().await {
        // Tenants unique per run keep a shared PostgreSQL database apart between runs.
        let t = ids::new_id("tops");
        let other = ids::new_id("tops");
        let base = 1_800_000_000_000_000_i64;
        let mut batch = Vec::new();
        // 250 tool calls (more than one INSERT chunk): bash errs every 5th, read never.
        for i in 0..250 {
            let (tool, outcome) = match i % 5 {
                0 => ("bash", "error"),
                1 | 2 => ("bash", "ok"),
                _ => ("read", "ok"),
            };
            batch.push(event(
                base + i,
                "tool_call",
                &t,
                "sesn_a",
                outcome,
                json!({"tool": tool}),
            ));
        }
        batch.push(event(
            base + 500,
            "model_request",
            &t,
            "sesn_b",
            "ok",
            json!({"provider": "anthropic", "input_tokens": 12}),
        ));
        batch.push(event(
            base + 10,
            "tool_call",
            &other,
            "sesn_c",
            "error",
            json!({"tool": "bash"}),
        ));
        store.insert_ops_events(&batch).await.unwrap();

        let mine = OpsFilter {
            kinds: vec!["tool_call".into()],
            tenant: Some(t.clone()),
            ..OpsFilter::default()
        };
        let groups = store
            .group_ops_events(&mine, &["tool".into(), "outcome".into()], 100)
            .await
            .unwrap();
        // Largest first (the order among equal counts is the database's).
        assert!(groups.windows(2).all(|w| w[0].count >= w[1].count));
        let flat: Vec<(Vec<Option<String>>, i64)> =
            groups.iter().map(|g| (g.values.clone(), g.count)).collect();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            flat.tap_sorted(),
            vec![
                (vec![s("read"), s("ok")], 100),
                (vec![s("bash"), s("ok")], 100),
                (vec![s("bash"), s("error")], 50),
            ]
            .tap_sorted(),
            "{groups:?}"
        );
        assert!(groups.iter().all(|g| g.avg_duration_ms.is_some()));

        // Attribute and column filters; a window; the total without keys.
        let errors = OpsFilter {
            equals: vec![
                ("tool".into(), "bash".into()),
                ("outcome".into(), "error".into()),
            ],
            ..mine.clone()
        };
        let total = store.group_ops_events(&errors, &[], 10).await.unwrap();
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].count, 50);
        let window = OpsFilter {
            since: Some(base + 100),
            until: Some(base + 200),
            ..mine.clone()
        };
        assert_eq!(
            store.group_ops_events(&window, &[], 10).await.unwrap()[0].count,
            100
        );
        // A numeric attribute compares as text on both backends.
        let tokens = OpsFilter {
            tenant: Some(t.clone()),
            equals: vec![("input_tokens".into(), "12".into())],
            ..OpsFilter::default()
        };
        assert_eq!(
            store.group_ops_events(&tokens, &[], 10).await.unwrap()[0].count,
            1
        );
        let by_session = OpsFilter {
            session: Some("sesn_b".into()),
            tenant: Some(t.clone()),
            ..OpsFilter::default()
        };
        let (rows, more) = store
            .query_ops_events(
                &by_session,
                &OpsPage {
                    limit: 10,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert!(!more);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, "model_request");
        assert_eq!(rows[0].fields["provider"], "anthropic");
        assert_eq!(rows[0].fields["input_tokens"], 12);

        // Pages: newest first, no row twice, every row once.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (rows, more) = store
                .query_ops_events(
                    &errors,
                    &OpsPage {
                        limit: 7,
                        after: after.clone(),
                    },
                )
                .await
                .unwrap();
            seen.extend(rows.iter().map(|r| r.at));
            let last = rows.last().unwrap();
            after = Some((last.at, last.id.clone()));
            if !more {
                break;
            }
        }
        assert_eq!(seen.len(), 50);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

        // A name that is not a name never reaches SQL.
        let bad = OpsFilter {
            equals: vec![("tool') OR 1=1 --".into(), "x".into())],
            ..OpsFilter::default()
        };
        assert!(store.group_ops_events(&bad, &[], 10).await.is_err());
        assert!(
            store
                .group_ops_events(&mine, &["a;b".into()], 10)
                .await
                .is_err()
        );
    }
}

trait TapSorted {
    fn tap_sorted(self) -> Self;
}

impl TapSorted for Vec<(Vec<Option<String>>, i64)> {
    /// Largest groups first; ties in a fixed order so the comparison is stable.
    fn tap_sorted(mut self) -> Self {
        self.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self
    }
}
