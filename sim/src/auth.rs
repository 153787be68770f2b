//! Microsoft identity platform: client-credentials token endpoint (tokens are
//! JWTs whose `roles` claim lists the app's application roles), and the bearer
//! check in front of Graph and Exchange routes, which also refuses a request
//! whose token lacks the role the route needs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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

    fn resource(self) -> &'static str {
        match self {
            Audience::Graph => "https://graph.microsoft.com",
            Audience::Exchange => "https://outlook.office365.com",
        }
    }

    /// The application roles the simulated app holds for this resource.
    fn roles(self) -> &'static [&'static str] {
        match self {
            Audience::Graph => GRAPH_ROLES,
            Audience::Exchange => EXCHANGE_ROLES,
        }
    }
}

/// The Graph application roles the simulated app is granted (unless `sim.missing_roles`
/// leaves some out).
pub(crate) const GRAPH_ROLES: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Calendars.ReadWrite",
    "Mail.Send",
    "MailboxSettings.Read",
    "SecurityAlert.Read.All",
    "IdentityRiskyUser.Read.All",
    // The identity actions of contain runs (`identity.rs`).
    "User.RevokeSessions.All",
    "User.EnableDisableAccount.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Application.Read.All",
    "IdentityRiskyUser.ReadWrite.All",
];

/// The Exchange Online application role.
pub(crate) const EXCHANGE_ROLES: &[&str] = &["Exchange.ManageAsApp"];

/// Is `role` one the simulator grants (case-insensitive)?
pub(crate) fn is_role(role: &str) -> bool {
    GRAPH_ROLES
        .iter()
        .chain(EXCHANGE_ROLES)
        .any(|r| r.eq_ignore_ascii_case(role))
}

/// The role a request needs: Graph by route, Exchange always `Exchange.ManageAsApp`.
/// `$batch` needs none itself: each of its steps is checked.
fn role_needed(audience: Audience, method: &Method, path: &str) -> Option<&'static str> {
    if audience == Audience::Exchange {
        return Some("Exchange.ManageAsApp");
    }
    if let Some(role) = crate::identity::role_needed(method, path) {
        return Some(role);
    }
    let path = path.trim_end_matches('/');
    if path.ends_with("/$batch") {
        None
    } else if path.ends_with("/sendMail") {
        Some("Mail.Send")
    } else if path.ends_with("/security/alerts_v2") {
        Some("SecurityAlert.Read.All")
    } else if path.ends_with("/identityProtection/riskyUsers") {
        Some("IdentityRiskyUser.Read.All")
    } else if path.ends_with("/mailboxSettings") {
        Some("MailboxSettings.Read")
    } else if path.contains("/calendar/") || path.contains("/calendars") {
        Some("Calendars.ReadWrite")
    } else if path.contains("/transitiveMemberOf") {
        Some("GroupMember.Read.All")
    } else {
        Some("User.Read.All")
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

async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The URL the client addressed: what a client assertion's `aud` must be.
    let mut token_urls = vec![format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url)];
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        token_urls.push(format!("http://{host}/{tenant}/oauth2/v2.0/token"));
    }
    match issue(&sim, &tenant, &parse_form(&body), &token_urls) {
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

pub(crate) struct TokenError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
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

fn issue(
    sim: &Sim,
    tenant: &str,
    form: &HashMap<String, String>,
    token_urls: &[String],
) -> Result<String, TokenError> {
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
    if sim
        .consent_pending
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        let description = format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        );
        return Err(TokenError::bad_request(
            "unauthorized_client",
            700016,
            description,
        ));
    }
    let assertion = form.get("client_assertion").filter(|v| !v.is_empty());
    let secret = match assertion {
        Some(_) => "",
        None => field("client_secret")?,
    };
    let scope = field("scope")?;
    let audience = Audience::from_scope(scope).ok_or_else(|| {
        let description = format!("The provided value for scope {scope} is not valid.");
        TokenError::bad_request("invalid_scope", 1002012, description)
    })?;
    if let Some(assertion) = assertion {
        crate::assertion::check_request(sim, form, assertion, client_id, token_urls)?;
    } else if sim.options.refuse_client_secrets {
        // Certificate credentials only (an app-management policy): no secret is valid.
        return Err(TokenError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code: 7000215,
            description: format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'. (This app has no client secret: its credentials are certificates.)"
            ),
        });
    } else if sim
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
    if sim.settings.m365_credentials_rejected {
        return Err(TokenError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code: 7000222,
            description: format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the \
                 Azure portal to create new keys for your app."
            ),
        });
    }
    let token = jwt(sim, tenant, client_id, audience);
    sim.tokens().issued.insert(token.clone(), (audience, false));
    Ok(token)
}

/// An app-only access token shaped like Entra's: `header.claims.signature`, base64url. The
/// signature is random bytes (nobody checks it); `roles` lists the granted application roles
/// and, as in Entra, is left out when there are none.
fn jwt(sim: &Sim, tenant: &str, client_id: &str, audience: Audience) -> String {
    let now = chrono::Utc::now().timestamp();
    let roles: Vec<&str> = granted_roles(sim, audience);
    let mut claims = json!({
        "aud": audience.resource(),
        "iss": format!("https://sts.windows.net/{}/", sim.directory.tenant_id),
        "iat": now, "nbf": now, "exp": now + 3599,
        "appid": client_id, "idtyp": "app", "tid": sim.directory.tenant_id,
        "ver": "1.0", "requested_tenant": tenant,
        "uti": std::iter::repeat_with(fastrand::alphanumeric).take(22).collect::<String>(),
    });
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    let signature: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(64)
        .collect();
    let part = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        part(br#"{"typ":"JWT","alg":"RS256","kid":"revoke365-sim"}"#),
        part(claims.to_string().as_bytes()),
        part(&signature)
    )
}

/// The roles of `audience` the app holds: all the simulator knows, less `sim.missing_roles`.
fn granted_roles(sim: &Sim, audience: Audience) -> Vec<&'static str> {
    audience
        .roles()
        .iter()
        .copied()
        .filter(|r| {
            !sim.settings
                .missing_roles
                .iter()
                .any(|m| m.eq_ignore_ascii_case(r))
        })
        .collect()
}

/// Parse an `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
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
        Ok(()) => match role_needed(audience, request.method(), request.uri().path())
            .filter(|role| !granted_roles(&sim, audience).contains(role))
        {
            None => next.run(request).await,
            Some(role) => lacks_role(audience, role, request.uri().path()),
        },
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

/// The answer to a token without the role a route needs: Graph's 403 (directory routes
/// `Authorization_RequestDenied`, mailbox routes `ErrorAccessDenied`); Exchange's bare 401
/// with the reason in `x-ms-diagnostics`.
fn lacks_role(audience: Audience, role: &str, path: &str) -> Response {
    match audience {
        Audience::Graph
            if role == "User.Read.All"
                || role == "GroupMember.Read.All"
                || crate::identity::ROLES.contains(&role) =>
        {
            odata_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        }
        Audience::Graph => odata_error(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        Audience::Exchange => {
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            let reason = format!(
                r#"2000008;reason="The token has no role {role}: the app may not call {path}.";error_category="invalid_grant""#
            );
            if let Ok(value) = HeaderValue::from_str(&reason) {
                response.headers_mut().insert("x-ms-diagnostics", value);
            }
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
