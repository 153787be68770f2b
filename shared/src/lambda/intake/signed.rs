//! `POST /hooks/revocations`: the route for callers that sign with a shared secret instead
//! of SigV4 (see [`crate::lambda::webhook`]). The signature, its freshness and its first use
//! are checked before the body is read as a request; the caller's principal is
//! `hmac:<caller>`.

use super::answer::{accepted_response, error_body, intake_failure, invalid, response};
use super::form::{json_body, UndecodableBody};
use super::runs::checked_intake;
use super::Deps;
use crate::authorize::principal;
use crate::lambda::webhook::{self, SignatureError, Signed};
use axum::extract::{FromRequest, Request, State};
use axum::response::Response;
use tracing::warn;

/// A request whose signature is its caller's, fresh, and seen for the first time.
pub(super) struct SignedRequest {
    /// The caller that signed it (its secret's name).
    caller: String,
    /// The signature in its one form: the request's idempotency key.
    signature: String,
    body: Vec<u8>,
}

impl FromRequest<Deps> for SignedRequest {
    type Rejection = Response;

    async fn from_request(request: Request, deps: &Deps) -> Result<Self, Self::Rejection> {
        let claimed: Option<String> = (request.headers().get(webhook::CALLER_HEADER))
            .and_then(|c| c.to_str().ok())
            .map(|c| c.chars().take(64).collect());
        signed_request(request, deps).await.map_err(|e| {
            warn!(caller = ?claimed, reason = %e, "signed request refused");
            let status = match e {
                SignatureError::Unavailable => 503,
                SignatureError::Replayed => 409,
                _ => 401,
            };
            response(
                status,
                error_body("unauthorized", &e.to_string(), e.header()),
            )
        })
    }
}

/// The headers' form and the timestamp's freshness are checked first (no secret read for a
/// malformed or stale request), then the signature against the kept secrets, then its first
/// use.
async fn signed_request(request: Request, deps: &Deps) -> Result<SignedRequest, SignatureError> {
    let undecodable = request.extensions().get::<UndecodableBody>().is_some();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await;
    let get = |name: &'static str| {
        (parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::Missing(name))
    };
    let signed = Signed::parse(
        get(webhook::CALLER_HEADER)?,
        get(webhook::TIMESTAMP_HEADER)?,
        get(webhook::SIGNATURE_HEADER)?,
        chrono::Utc::now().timestamp(),
    )?;
    let body = match body {
        Ok(body) if !undecodable => body.to_vec(),
        _ => return Err(SignatureError::BadSignature),
    };
    let caller = deps.webhook.verify(&signed, &body).await?;
    webhook::first_use(&deps.store, &signed).await?;
    Ok(SignedRequest {
        caller: caller.to_string(),
        signature: signed.signature,
        body,
    })
}

pub(super) async fn post_signed_revocation(
    State(deps): State<Deps>,
    signed: SignedRequest,
) -> Response {
    let body = match json_body(&signed.body) {
        Ok(body) => body,
        Err(e) => return invalid(e),
    };
    let principal = principal::hmac_caller(&signed.caller);
    // The signature (in its one form) is the idempotency key: the same signed request is one
    // run.
    match checked_intake(&deps, Some(&principal), &body, Some(&signed.signature)).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}
