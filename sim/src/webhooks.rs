//! Receives the posts a real Teams channel or a company's webhook would: `POST
//! /webhooks/{name}` records the body and headers (in `webhooks` of the state snapshot) and
//! answers 200 `1` like a Teams incoming webhook; a name in `sim.failing_webhooks` answers 500.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::snapshot::ReceivedWebhook;
use crate::Sim;

pub(crate) fn routes(_sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    Router::new().route("/webhooks/{name}", post(receive))
}

async fn receive(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if sim
        .settings
        .failing_webhooks
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&name))
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "webhook receiver failed").into_response();
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    sim.state().webhooks.push(ReceivedWebhook {
        name,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    (StatusCode::OK, "1").into_response()
}
