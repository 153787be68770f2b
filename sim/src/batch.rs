//! JSON batching (`$batch`) for Graph and the Exchange admin API: each inner
//! request is dispatched through the simulator's own router (so it is
//! authenticated, counted and subject to faults like any other request), the
//! inner requests run concurrently, answers come back in request order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::wire::json_response;
use crate::Sim;

#[derive(Deserialize)]
pub(crate) struct BatchRequest {
    pub requests: Vec<InnerRequest>,
}

#[derive(Deserialize)]
pub(crate) struct InnerRequest {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Serialize)]
struct InnerResponse {
    id: String,
    status: u16,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

/// Run every inner request; `path_of` turns an inner `url` into a path of the router.
pub(crate) async fn run(
    sim: Arc<Sim>,
    outer: &HeaderMap,
    batch: BatchRequest,
    path_of: impl Fn(&str) -> String,
) -> Response {
    let router = crate::router(sim);
    let mut tasks = JoinSet::new();
    let mut responses = Vec::new();
    for (index, inner) in batch.requests.into_iter().enumerate() {
        match build(outer, &inner, &path_of(&inner.url)) {
            Ok(request) => {
                let router = router.clone();
                tasks.spawn(async move {
                    (index, answer(inner.id, router.oneshot(request).await).await)
                });
            }
            Err(message) => {
                let body = json!({"error": {"code": "BadRequest", "message": message}});
                let failed = InnerResponse {
                    id: inner.id,
                    status: 400,
                    headers: BTreeMap::new(),
                    body: Some(body),
                };
                responses.push((index, failed));
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => responses.push(done),
            Err(error) => tracing::error!(%error, "batch step panicked"),
        }
    }
    responses.sort_by_key(|(index, _)| *index);
    let responses: Vec<InnerResponse> = responses.into_iter().map(|(_, r)| r).collect();
    json_response(StatusCode::OK, json!({ "responses": responses }))
}

fn build(outer: &HeaderMap, inner: &InnerRequest, path: &str) -> Result<Request, String> {
    let method = Method::from_bytes(inner.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("Invalid method '{}'.", inner.method))?;
    let mut request = Request::builder().method(method).uri(path);
    for name in [header::AUTHORIZATION, header::HOST] {
        if let Some(value) = outer.get(&name) {
            request = request.header(name, value);
        }
    }
    for (name, value) in &inner.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("Invalid header '{name}'."))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("Invalid value of header '{name}'."))?;
        request = request.header(name, value);
    }
    let body = match &inner.body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(body).unwrap_or_default())
        }
        None => Body::empty(),
    };
    request
        .body(body)
        .map_err(|e| format!("Invalid request '{}': {e}", inner.url))
}

async fn answer(id: String, response: Result<Response, std::convert::Infallible>) -> InnerResponse {
    let Ok(response) = response;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH)
        .filter_map(|(name, value)| {
            Some((title_case(name.as_str()), value.to_str().ok()?.to_string()))
        })
        .collect();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    });
    InnerResponse {
        id,
        status,
        headers,
        body,
    }
}

/// `retry-after` → `Retry-After`, as the services spell headers in batch answers.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}
