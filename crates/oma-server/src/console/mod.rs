//! The web console: a single-page app embedded in the binary at compile time and served at
//! `/` (with its assets under `/console/`). It holds no server-side logic of its own: the page
//! calls the same public `/v1/...` routes as the SDK, with the key the user signed in with
//! (kept in the browser's session storage and sent as `x-api-key`, never in a URL).
//!
//! The assets live in `crates/oma-server/console/` as plain files (no build step), so building
//! the binary needs neither Node nor the network.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset {
        path: "/console/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/app.css"),
    },
    Asset {
        path: "/console/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/icon.svg"),
    },
];

/// Scripts, styles and connections only from this origin; no framing (clickjacking), no
/// inline script (a reflected value can never run).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for asset in ASSETS {
        let tag = etag(asset.body);
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(asset, &tag, &headers) }),
        );
    }
    // Deep links (`/console/sessions/sesn_…`) load the page; the app routes on the path.
    let index = &ASSETS[0];
    let index_tag = etag(index.body);
    router.route(
        "/console/{*page}",
        get(move |headers: HeaderMap| async move { serve(index, &index_tag, &headers) }),
    )
}

fn serve(asset: &Asset, tag: &str, headers: &HeaderMap) -> Response {
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
            asset.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    // Revalidated on every load (cheap: a 304), so a new binary's console shows at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(ETAG, v);
    }
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// A strong validator: the content's SHA-256, shortened.
fn etag(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_the_page_links_them() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap_or_default();
        for asset in &ASSETS[1..] {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            assert!(
                index.contains(asset.path),
                "index.html does not reference {}",
                asset.path
            );
        }
        assert!(
            !index.contains("<script>"),
            "inline scripts are refused by the CSP"
        );
    }

    #[test]
    fn etag_changes_with_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
