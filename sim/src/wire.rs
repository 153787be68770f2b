//! Small helpers shared by the services' handlers.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::Sim;

pub(crate) fn json_response(status: StatusCode, body: impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// `{"error":{"code","message"}}`: Graph's error shape, also used for the
/// throttling answers of every Microsoft route.
pub(crate) fn odata_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// 429/503 with `Retry-After`.
pub(crate) fn throttled(status: StatusCode, code: &str, retry_after_secs: u64) -> Response {
    let message =
        format!("Too many requests or service busy. Retry after {retry_after_secs} seconds.");
    let mut response = odata_error(status, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after_secs.into());
    response
}

/// Absolute base URL for `@odata.nextLink`s: from the `Host` header the
/// client used, else the address the simulator is bound to.
pub(crate) fn base_url(headers: &HeaderMap, sim: &Sim) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => sim.base_url.clone(),
    }
}

/// Apply an OData `$select` (comma-separated, case-insensitive) to an object;
/// annotations (`@odata.type`, ...) are always kept.
pub(crate) fn select(value: Value, select: Option<&str>) -> Value {
    let (Some(select), Value::Object(map)) = (select, &value) else {
        return value;
    };
    let wanted: Vec<&str> = select
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return value;
    }
    let kept = map
        .iter()
        .filter(|(key, _)| {
            key.starts_with('@') || wanted.iter().any(|w| w.eq_ignore_ascii_case(key))
        })
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// Offset encoded in a `$skiptoken` (the simulator's tokens are offsets).
pub(crate) fn skip_offset(token: Option<&String>) -> Result<usize, String> {
    token.map_or(Ok(0), |t| {
        t.parse().map_err(|_| format!("Invalid $skiptoken '{t}'."))
    })
}

/// Build `{base}{path}?{params}` with the given query parameters, skipping
/// absent ones.
pub(crate) fn link(base: &str, path: &str, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", urlencoding::encode(v))))
        .collect();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_listed_fields_and_annotations() {
        let value = json!({"@odata.type": "t", "id": 1, "displayName": "A", "mail": "a@x"});
        let selected = select(value, Some("ID, mail"));
        assert_eq!(
            selected,
            json!({"@odata.type": "t", "id": 1, "mail": "a@x"})
        );
    }

    #[test]
    fn link_encodes_values() {
        let url = link(
            "http://h",
            "/p",
            &[
                ("$skiptoken", Some("3")),
                ("$select", Some("a,b")),
                ("x", None),
            ],
        );
        assert_eq!(url, "http://h/p?$skiptoken=3&$select=a%2Cb");
    }
}
