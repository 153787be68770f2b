//! Microsoft identity platform: client-credentials token endpoint, and the
//! bearer check in front of Graph and Exchange routes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use serde_json::json;

use crate::faults::counted;
use crate::wire::{json_response, odata_error};
use crate::Sim;

/// The resource a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Graph,
    Exchange,
}

impl Audience {
    fn from_scope(scope: &str) -> Option<Audience> {
        match scope.trim().to_ascii_lowercase().as_str() {
            "https://graph.microsoft.com/.default" => Some(Audience::Graph),
            "https://outlook.office365.com/.default" => Some(Audience::Exchange),
            _ => None,
        }
    }
}

/// Issued tokens and the `revoke_tokens_after` bookkeeping.
#[derive(Default)]
pub(crate) struct Tokens {
    /// Token → (audience, revoked).
    issued: HashMap<String, (Audience, bool)>,
    /// Requests that passed authentication.
    authenticated: u64,
    /// Tokens invalidated by the revocation (it happens once).
    pub revoked: u64,
    /// Requests rejected because their token was revoked.
    pub rejected: u64,
}

/// Why a bearer token was refused.
enum Refusal {
    Unknown,
    Audience,
    Revoked,
}

impl Tokens {
    /// Every token issued so far stops working.
    pub(crate) fn revoke_all(&mut self) {
        for (_, revoked) in self.issued.values_mut() {
            *revoked = true;
        }
        self.revoked = self.issued.len() as u64;
    }

    /// Check a token for `audience`; with `revoke_after`, the request after
    /// the `revoke_after`-th authenticated one revokes every token issued so far.
    fn admit(
        &mut self,
        token: &str,
        audience: Audience,
        revoke_after: Option<u64>,
    ) -> Result<(), Refusal> {
        let &(issued, revoked) = self.issued.get(token).ok_or(Refusal::Unknown)?;
        if issued != audience {
            return Err(Refusal::Audience);
        }
        if !revoked && revoke_after.is_some_and(|n| self.authenticated >= n) && self.revoked == 0 {
            for (_, revoked) in self.issued.values_mut() {
                *revoked = true;
            }
            self.revoked = self.issued.len() as u64;
        }
        if self.issued.get(token).is_some_and(|(_, revoked)| *revoked) {
            self.rejected += 1;
            return Err(Refusal::Revoked);
        }
        self.authenticated += 1;
        Ok(())
    }
}

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    Router::new().route(
        "/{tenant}/oauth2/v2.0/token",
        counted(sim, "token", post(token)),
    )
}

/// Require a bearer token of `audience` on every route of `router`.
pub(crate) fn protect(
    router: Router<Arc<Sim>>,
    sim: &Arc<Sim>,
    audience: Audience,
) -> Router<Arc<Sim>> {
    router.route_layer(from_fn_with_state((sim.clone(), audience), require_bearer))
}

#[derive(Serialize)]
struct TokenResponse {
    token_type: &'static str,
    expires_in: u32,
    ext_expires_in: u32,
    access_token: String,
}

async fn token(State(sim): State<Arc<Sim>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    match issue(&sim, &tenant, &parse_form(&body)) {
        Ok(access_token) => json_response(
            StatusCode::OK,
            TokenResponse {
                token_type: "Bearer",
                expires_in: 3599,
                ext_expires_in: 3599,
                access_token,
            },
        ),
        Err(error) => error.into_response(),
    }
}

struct TokenError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl TokenError {
    fn bad_request(error: &'static str, code: u32, description: String) -> TokenError {
        TokenError {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            description,
        }
    }

    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
        });
        json_response(self.status, body)
    }
}

fn issue(sim: &Sim, tenant: &str, form: &HashMap<String, String>) -> Result<String, TokenError> {
    if !sim.directory.is_tenant(tenant) {
        let description = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
             signing into the correct cloud."
        );
        return Err(TokenError::bad_request(
            "invalid_request",
            90002,
            description,
        ));
    }
    let field = |name: &str| {
        form.get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                let description =
                    format!("The request body must contain the following parameter: '{name}'.");
                TokenError::bad_request("invalid_request", 900144, description)
            })
    };
    let grant_type = field("grant_type")?;
    if grant_type != "client_credentials" {
        let description = format!("The app requested an unsupported grant type '{grant_type}'.");
        return Err(TokenError::bad_request(
            "unsupported_grant_type",
            70003,
            description,
        ));
    }
    let client_id = field("client_id")?;
    let secret = field("client_secret")?;
    let scope = field("scope")?;
    let audience = Audience::from_scope(scope).ok_or_else(|| {
        let description = format!("The provided value for scope {scope} is not valid.");
        TokenError::bad_request("invalid_scope", 1002012, description)
    })?;
    if sim
        .client_secret()
        .as_deref()
        .is_some_and(|expected| expected != secret)
    {
        return Err(TokenError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code: 7000215,
            description: format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the \
                 client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        });
    }
    let token: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(48)
        .collect();
    sim.tokens().issued.insert(token.clone(), (audience, false));
    Ok(token)
}

/// Parse an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    fn decode(text: &str) -> String {
        let spaced = text.replace('+', " ");
        urlencoding::decode(&spaced).map_or_else(|_| spaced.clone(), Cow::into_owned)
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

async fn require_bearer(
    State((sim, audience)): State<(Arc<Sim>, Audience)>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return unauthorized("Access token is empty.", "Bearer");
    };
    let invalid = r#"Bearer error="invalid_token""#;
    let admitted = sim
        .tokens()
        .admit(token, audience, sim.settings.revoke_tokens_after);
    match admitted {
        Ok(()) => next.run(request).await,
        Err(Refusal::Unknown) => {
            unauthorized("Access token validation failure. Invalid token.", invalid)
        }
        Err(Refusal::Audience) => unauthorized(
            "Access token validation failure. Invalid audience.",
            invalid,
        ),
        Err(Refusal::Revoked) => revoked(audience),
    }
}

/// The answer to a revoked token: Graph's JSON error, Exchange's bare 401.
fn revoked(audience: Audience) -> Response {
    match audience {
        Audience::Graph => unauthorized(
            "Lifetime validation failed, the token is expired.",
            r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="invalid_token""#,
        ),
        Audience::Exchange => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token""#,
                ),
            );
            headers.insert(
                "x-ms-diagnostics",
                HeaderValue::from_static(
                    r#"2000001;reason="The token has expired or was revoked.";error_category="invalid_token""#,
                ),
            );
            response
        }
    }
}

fn unauthorized(message: &str, challenge: &'static str) -> Response {
    let mut response = odata_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let form = parse_form(b"grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&x=a+b");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
        assert_eq!(form["x"], "a b");
    }
}
