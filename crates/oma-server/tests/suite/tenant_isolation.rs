//! Another tenant's ids answer 404 on every route, as if they did not exist, and nothing the
//! other tenant does changes the owner's data.

use oma_testkit::{TestServer, backends};
use serde_json::json;

use super::routes::{ROUTES, fixture, snapshot};

/// A body that would be valid for the route, so that only ownership can make it fail.
fn body_for(method: &str, template: &str) -> Option<serde_json::Value> {
    if method != "POST" {
        return None;
    }
    Some(match template {
        t if t.ends_with("/events") => {
            json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]})
        }
        t if t.ends_with("/credentials") => {
            json!({"auth": {"type": "static_bearer", "mcp_server_url": "https://other.example.com/mcp", "token": "t"}})
        }
        t if t.ends_with("/memories") => json!({"path": "/other.md", "content": "x"}),
        t if t.ends_with("/resources/{resource}") => json!({"authorization_token": "ghp_x"}),
        t if t.ends_with("/resources") => json!({"type": "file", "file_id": "{file}"}),
        _ => json!({}),
    })
}

#[tokio::test]
async fn every_route_hides_other_tenants_objects() {
    for b in backends() {
        let s = TestServer::start(b).await.unwrap();
        let f = fixture(&s).await;
        let (_, other_key) = s.new_tenant().await.unwrap();
        let before = snapshot(&s, &s.key, &f).await;

        for (method, template) in ROUTES {
            if !template.contains('{') {
                continue;
            }
            let path = f.fill(template);
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = s.req_as(&other_key, m, &path);
            if template.ends_with("/versions") && *method == "POST" {
                let form = reqwest::multipart::Form::new().part(
                    "files[]",
                    reqwest::multipart::Part::bytes(
                        b"---\nname: fx-skill\ndescription: d\n---\n".to_vec(),
                    )
                    .file_name("fx-skill/SKILL.md"),
                );
                req = req.multipart(form);
            } else if let Some(body) = body_for(method, template) {
                let body: serde_json::Value =
                    serde_json::from_str(&f.fill(&body.to_string())).unwrap();
                req = req.json(&body);
            }
            let (status, body) = oma_testkit::send(req).await.unwrap();
            assert_eq!(status, 404, "{method} {template} as another tenant: {body}");
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], "not_found_error");
        }

        // Lists of the other tenant contain none of the owner's ids.
        let other_view = snapshot(&s, &other_key, &f).await;
        let text = serde_json::to_string(&other_view).unwrap();
        for (name, id) in &f.ids {
            let listed_as_data = text.contains(&format!("\"id\":\"{id}\""));
            assert!(!listed_as_data, "{name} {id} visible to another tenant");
        }

        let after = snapshot(&s, &s.key, &f).await;
        assert_eq!(
            before, after,
            "another tenant's requests changed the owner's data"
        );
        s.stop().await;
    }
}
