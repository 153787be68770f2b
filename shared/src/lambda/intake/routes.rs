//! The API's routes, declared once: [`routes`] gives each route key the template gives the
//! intake function (`METHOD /path`), who signs its requests, and its handler. The axum router
//! is built from that list, and so is [`route_keys`], which a test holds equal to the
//! template's routes.
//!
//! A request is routed by `requestContext.routeKey` — what API Gateway matched, not the raw
//! path — with its path parameters as API Gateway decoded them (`pathParameters`) and its query
//! parameters as it parsed them (`queryStringParameters`). Before any I/O: an unknown route key
//! is a 404; an IAM route whose request carries no IAM identity is a 403; then each handler's
//! extractors check the request's form (400 naming the field) before the ones that read the
//! store and authorize the caller ([`super::caller`]).

use super::answer::{error_body, response};
use super::caller::Caller;
use super::form::UndecodableBody;
use super::{access, alerts, audit, restore, runs, signed, Deps, IntakeDeps};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_extractor;
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use std::sync::Arc;
use tracing::{info_span, Instrument};

/// Who signs a route's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// SigV4, checked by API Gateway's IAM authorizer: the request carries the IAM identity.
    Iam,
    /// A shared secret's HMAC, checked by the route itself ([`signed`]).
    Hmac,
}

/// One route: its key, its method and path (the key's two halves), who signs it, its handler.
struct Declared {
    key: &'static str,
    method: Method,
    path: &'static str,
    signer: Signer,
    handler: MethodRouter<Deps>,
}

fn route<H, T>(key: &'static str, signer: Signer, handler: H) -> Declared
where
    H: Handler<T, Deps>,
    T: 'static,
{
    let (method, path) = key.split_once(' ').expect("a route key is `METHOD /path`");
    let method = Method::from_bytes(method.as_bytes()).expect("a route key's method");
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Declared {
        key,
        method,
        path,
        signer,
        handler: on(filter, handler),
    }
}

/// Every route of the API.
fn routes() -> Vec<Declared> {
    use Signer::{Hmac, Iam};
    vec![
        route("POST /revocations", Iam, runs::post_revocation),
        route(
            "POST /hooks/revocations",
            Hmac,
            signed::post_signed_revocation,
        ),
        route("POST /alerts/sentinel", Iam, alerts::post_sentinel_alert),
        route("GET /revocations", Iam, runs::list_revocations),
        route("GET /revocations/{run_id}", Iam, runs::get_revocation),
        route("GET /revocations/{run_id}/audit", Iam, audit::get_audit),
        route(
            "POST /revocations/{run_id}/restore",
            Iam,
            restore::post_restore,
        ),
        route(
            "POST /revocations/{run_id}/cancel",
            Iam,
            runs::cancel_revocation,
        ),
        route("POST /backups/restore", Iam, restore::post_backup_restore),
        route("GET /access", Iam, access::get_access),
    ]
}

/// The route keys the intake function answers (the template routes each of them to it).
pub fn route_keys() -> impl Iterator<Item = &'static str> {
    routes().into_iter().map(|r| r.key)
}

/// The router of `declared`: every IAM route's request must carry the IAM identity before its
/// handler's extractors run.
fn router(declared: Vec<Declared>) -> Router<Deps> {
    declared
        .into_iter()
        .fold(Router::new(), |router, r| match r.signer {
            Signer::Iam => router.route(r.path, r.handler.route_layer(from_extractor::<Caller>())),
            Signer::Hmac => router.route(r.path, r.handler),
        })
        .fallback(|| async { unknown_route("(unmatched)") })
}

fn unknown_route(key: &str) -> Response {
    let keys: Vec<&str> = route_keys().collect();
    response(
        404,
        error_body(
            "not_found",
            &format!("no route {key:?}; the routes are {}", keys.join(", ")),
            None,
        ),
    )
}

/// An API Gateway HTTP API request, answered by the router.
pub async fn handle_http(
    deps: &IntakeDeps,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let key: String = (request.request_context.route_key.as_deref())
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    let span = info_span!("http", route = %key);
    async {
        let declared = routes();
        let Some(route) = declared.iter().find(|r| r.key == key) else {
            return event_response(unknown_route(&key)).await;
        };
        let request = http_request(request, &route.method, route.path);
        // The router's state is a clone of the deps: their clients and what they keep are
        // shared, and a request's handlers cannot outlive it.
        let router = router(declared).with_state(Arc::new(deps.clone()));
        let answer = match router.oneshot(request).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        };
        event_response(answer).await
    }
    .instrument(span)
    .await
}

/// The event as the request axum routes: at the path of the route API Gateway matched (its
/// parameters stay in `pathParameters`), with the method of its key, no query string (the
/// parameters are `queryStringParameters`), and the body decoded — a body marked base64 that
/// is not is left empty and marked [`UndecodableBody`], for the routes that read it to refuse.
/// What lambda_http would read from the URL's parts (host, scheme, stage) is left out, so that
/// no header a caller sends makes the URL.
fn http_request(
    mut event: ApiGatewayV2httpRequest,
    method: &Method,
    path: &str,
) -> axum::http::Request<Body> {
    let body = event.body.take();
    let base64 = std::mem::take(&mut event.is_base64_encoded);
    let headers = std::mem::take(&mut event.headers);
    event.raw_path = Some(path.to_string());
    event.raw_query_string = None;
    event.cookies = None;
    event.request_context.stage = None;
    event.request_context.domain_name = None;
    event.request_context.http.method = method.clone();
    let mut request = axum::http::Request::from(LambdaRequest::ApiGatewayV2(event));
    *request.headers_mut() = headers;
    *request.body_mut() = match (body, base64) {
        (None, _) => Body::Empty,
        (Some(text), false) => Body::Text(text),
        (Some(text), true) => match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => Body::Binary(bytes),
            Err(_) => {
                request.extensions_mut().insert(UndecodableBody);
                Body::Empty
            }
        },
    };
    request
}

/// The router's answer as API Gateway takes it (every answer is JSON text).
async fn event_response(answer: Response) -> ApiGatewayV2httpResponse {
    let (parts, body) = answer.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = parts.status.as_u16().into();
    r.headers = parts.headers;
    r.body = Some(Body::Text(String::from_utf8_lossy(&body).into_owned()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key is `METHOD /path` of a method axum routes, and no two keys are one route.
    #[test]
    fn the_declared_routes_make_one_router() {
        let declared = routes();
        let mut keys: Vec<&str> = declared.iter().map(|r| r.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), declared.len());
        let _ = router(declared);
    }
}
