//! Every response carries `request-id` (`req_…`); error envelopes repeat it in the body.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served, or a fresh one outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| oma_core::ids::new_id(oma_core::ids::REQUEST))
}

pub async fn layer(req: Request, next: Next) -> Response {
    let id = oma_core::ids::new_id(oma_core::ids::REQUEST);
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}
