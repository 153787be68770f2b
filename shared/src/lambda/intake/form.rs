//! What a request says, read and checked on its form alone — no I/O: the body as JSON, the
//! run id of the path, the query parameters, the `Idempotency-Key`. Each refusal is a 400
//! naming the field.

use super::answer::{error_body, invalid, response};
use crate::model::{unprintable, validate_company_id, InvalidRequest, RunId};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::RequestExt;
use serde_json::Value;

/// Marks a request whose body said it was base64 and was not: every route that reads the
/// body refuses it (`body`), after the checks that come before the body's.
#[derive(Debug, Clone, Copy)]
pub(super) struct UndecodableBody;

/// The request's body as sent (decoded from base64 when marked so).
async fn raw_body(request: Request) -> Result<Vec<u8>, InvalidRequest> {
    if request.extensions().get::<UndecodableBody>().is_some() {
        return Err(InvalidRequest::new("body", "is marked base64 but is not"));
    }
    // No limit of ours: API Gateway's payload limit is the limit, and a large body is refused
    // by what it holds (naming the field), not by its size.
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|_| InvalidRequest::new("body", "could not be read"))?;
    Ok(bytes.to_vec())
}

pub(super) fn json_body(bytes: &[u8]) -> Result<Value, InvalidRequest> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| InvalidRequest::new("body", "is not UTF-8"))?;
    serde_json::from_str(text)
        .map_err(|e| InvalidRequest::new("body", format!("is not valid JSON: {e}")))
}

/// The body as JSON.
pub(super) struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let raw = raw_body(request).await.map_err(invalid)?;
        json_body(&raw).map(JsonBody).map_err(invalid)
    }
}

/// The body as JSON, or `null` when there is none (only whitespace).
pub(super) struct OptionalJsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let raw = raw_body(request).await.map_err(invalid)?;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(Value::Null));
        }
        json_body(&raw).map(OptionalJsonBody).map_err(invalid)
    }
}

/// The run id of the path (`pathParameters.run_id`, as API Gateway decoded it): a run id names
/// keys and files, so one that is not a run id is refused.
pub(super) struct RunIdParam(pub RunId);

impl RunIdParam {
    pub(super) fn of(parts: &Parts) -> Result<RunId, InvalidRequest> {
        match parts.path_parameters_ref().and_then(|p| p.first("run_id")) {
            Some(raw) => RunId::parse(raw),
            None => Err(InvalidRequest::new("run_id", "is required in the path")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RunIdParam {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        RunIdParam::of(parts).map(RunIdParam).map_err(invalid)
    }
}

/// The query parameters as API Gateway parsed them (`queryStringParameters`).
pub(super) fn query(parts: &Parts) -> QueryMap {
    parts
        .query_string_parameters_ref()
        .cloned()
        .unwrap_or_default()
}

/// `?page=` of `GET /revocations/{id}`: a number from 1 (absent: 1).
pub(super) struct ResultPage(pub usize);

impl<S: Send + Sync> FromRequestParts<S> for ResultPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match query(parts).first("page") {
            None => Ok(ResultPage(1)),
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(ResultPage)
                .ok_or_else(|| invalid(InvalidRequest::new("page", "must be a number from 1"))),
        }
    }
}

/// `?verify=` of `GET /revocations/{id}/audit`: 1 (or true) checks the hash chains.
pub(super) struct Verify(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Verify {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match query(parts).first("verify") {
            None | Some("0") | Some("false") => Ok(Verify(false)),
            Some("1") | Some("true") => Ok(Verify(true)),
            Some(_) => Err(response(
                400,
                error_body(
                    "invalid_request",
                    "verify must be 1 (check the hash chains) or 0",
                    Some("verify"),
                ),
            )),
        }
    }
}

/// The most characters of an `Idempotency-Key`: keys of any length API Gateway passes (its
/// headers total 10 KB) are taken, stored as hashes; a direct invocation's flood is not.
const MAX_IDEMPOTENCY_KEY: usize = 8192;

/// The caller's `Idempotency-Key`, if any: at most [`MAX_IDEMPOTENCY_KEY`] printable characters.
pub(super) struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let bad = |why: String| invalid(InvalidRequest::new("Idempotency-Key", why));
        let text = value
            .to_str()
            .map_err(|_| bad("must be printable ASCII".into()))?
            .trim();
        match unprintable(text, MAX_IDEMPOTENCY_KEY) {
            Some(why) => Err(bad(why)),
            None if text.is_empty() => Ok(IdempotencyKey(None)),
            None => Ok(IdempotencyKey(Some(text.to_string()))),
        }
    }
}

/// `company_id` as a query parameter: a company id as the org settings hold them.
pub(super) fn company_param(value: &str) -> Result<String, InvalidRequest> {
    validate_company_id(value)?;
    Ok(value.to_string())
}

/// The longest query parameter value: the longest a route takes (`next`, the opaque token of
/// the page before) is far shorter.
const MAX_PARAM: usize = 2048;

/// Every query parameter's value, whatever its name, before it is read: at most [`MAX_PARAM`]
/// printable characters (so no parameter's error gives back a flood).
pub(super) fn bounded_param<'a>(key: &str, value: &'a str) -> Result<&'a str, InvalidRequest> {
    match unprintable(value, MAX_PARAM) {
        None => Ok(value),
        Some(why) => Err(InvalidRequest::new(param_name(key), why)),
    }
}

/// A parameter's name as an error gives it back: cut short, control characters out.
pub(super) fn param_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}
