//! Client-credentials tokens from the Microsoft identity platform, cached per
//! (login, tenant, client id, scope) until shortly before they expire. The app proves itself
//! with a client secret or with certificate credentials (a signed client assertion,
//! `assertion.rs`), trying the next certificate of a rotation when one is refused.

use super::assertion;
use super::certificate::AssertionSigner;
use crate::adapters::http::{Call, HttpCore, Reply};
use crate::adapters::token_cache::{CachedToken, TokenKey};
use crate::config::{AppCredentials, ClientCredential, Secret};
use crate::error::{ErrorKind, RemoteError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_SCOPE: &str = "https://outlook.office365.com/.default";

/// Tokens are renewed this long before they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
    error_description: Option<String>,
}

impl HttpCore {
    /// A bearer token for `scope`, from the cache or fetched once for all concurrent callers.
    pub async fn token(
        &self,
        login_url: &str,
        creds: &AppCredentials,
        scope: &str,
    ) -> Result<Secret, RemoteError> {
        let key = token_key(login_url, creds, scope);
        self.tokens
            .get(key, None, |_| fetch_token(self, login_url, creds, scope))
            .await
    }

    /// A new token after `stale` was refused (revoked or expired early): fetched once, however
    /// many callers saw the refusal.
    pub async fn renew_token(
        &self,
        login_url: &str,
        creds: &AppCredentials,
        scope: &str,
        stale: &Secret,
    ) -> Result<Secret, RemoteError> {
        let key = token_key(login_url, creds, scope);
        self.tokens
            .get(key, Some(stale), |_| {
                fetch_token(self, login_url, creds, scope)
            })
            .await
    }
}

fn token_key(login_url: &str, creds: &AppCredentials, scope: &str) -> TokenKey {
    TokenKey {
        login: login_url.trim_end_matches('/').to_string(),
        tenant: creds.tenant_id.clone(),
        client_id: creds.client_id.clone(),
        scope: scope.to_string(),
    }
}

async fn fetch_token(
    core: &HttpCore,
    login_url: &str,
    creds: &AppCredentials,
    scope: &str,
) -> Result<CachedToken, RemoteError> {
    let url = format!(
        "{login_url}/{}/oauth2/v2.0/token",
        urlencoding::encode(&creds.tenant_id)
    );
    let call = Call::new(
        "login",
        format!("token for {scope} in tenant {}", creds.tenant_id),
        None,
    );
    match &creds.credential {
        ClientCredential::Secret(secret) => {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", creds.client_id.as_str()),
                ("client_secret", secret.expose()),
                ("scope", scope),
            ];
            post_token(core, &call, &url, &form, secret).await
        }
        ClientCredential::Certificates(signers) => {
            certificate_token(core, &call, &url, creds, signers, scope).await
        }
    }
}

/// A token for a client assertion signed with each certificate in turn. A certificate Entra
/// does not know (yet) is refused with AADSTS700027: right after a rotation the new key may
/// not have reached every server, so the round is tried [`ROTATION_ROUNDS`] times, waiting the
/// retry policy's backoff between rounds, before the refusal stands.
async fn certificate_token(
    core: &HttpCore,
    call: &Call,
    url: &str,
    creds: &AppCredentials,
    signers: &[Arc<dyn AssertionSigner>],
    scope: &str,
) -> Result<CachedToken, RemoteError> {
    let mut refused = Vec::new();
    for round in 1..=ROTATION_ROUNDS {
        refused.clear();
        for signer in signers {
            let certificate = signer.certificate();
            let named = format!(
                "certificate {} (SHA-256 thumbprint {})",
                signer.describe(),
                certificate.sha256_thumbprint()
            );
            match assertion_token(core, call, url, creds, signer.as_ref(), &named, scope).await {
                Ok(token) => return Ok(token),
                Err(e) if is_key_refusal(&e) => {
                    tracing::warn!(round, certificate = %named, error = %e, "certificate refused");
                    refused.push(with_certificate(e, &named));
                }
                Err(e) => return Err(with_certificate(e, &named)),
            }
        }
        if round < ROTATION_ROUNDS {
            tokio::time::sleep(core.settings().retry.delay(round, None)).await;
        }
    }
    // Every certificate's refusal, the current one's first.
    let mut refusals = refused.into_iter();
    let Some(mut first) = refusals.next() else {
        return Err(call.auth("no certificate configured"));
    };
    for next in refusals {
        if let (ErrorKind::Auth { message }, ErrorKind::Auth { message: other }) =
            (&mut first.kind, next.kind)
        {
            message.push_str("; then ");
            message.push_str(&other);
        }
    }
    Err(first)
}

/// A token for an assertion signed by `signer`. An assertion is used once (its `jti`): the
/// request is sent again as it is only when the endpoint surely did not act on it (429, 503
/// with `Retry-After`, a refused connection); after an answer that may have followed a token
/// (lost, 5xx) the next try carries a new assertion, within the retry policy's attempts.
async fn assertion_token(
    core: &HttpCore,
    call: &Call,
    url: &str,
    creds: &AppCredentials,
    signer: &dyn AssertionSigner,
    named: &str,
    scope: &str,
) -> Result<CachedToken, RemoteError> {
    let once = call.clone().once();
    let policy = core.settings().retry;
    let mut attempt = 1;
    loop {
        let assertion = assertion::client_assertion(signer, url, &creds.client_id)
            .await
            .map_err(|e| call.auth(format!("{named}: {e}")))?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_assertion_type", assertion::ASSERTION_TYPE),
            ("client_assertion", assertion.expose()),
            ("scope", scope),
        ];
        match post_token(core, &once, url, &form, &assertion).await {
            // What may have reached the endpoint (no answer, a 5xx); what surely did not
            // (throttled, unreachable) the core has already retried with this assertion.
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::Transport { .. }
                        | ErrorKind::Api {
                            transient: true,
                            ..
                        }
                ) && policy.allows_another(attempt) =>
            {
                tracing::debug!(attempt, error = %e, "token request failed; a new assertion next");
                tokio::time::sleep(policy.delay(attempt, None)).await;
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

/// Rounds of every configured certificate before AADSTS700027 stands.
const ROTATION_ROUNDS: u32 = 3;

/// AADSTS700027 (the certificate is not registered on the app, or the signature does not
/// verify with it) and AADSTS50012 (its older form): what a rotation that has not yet reached
/// Entra looks like.
fn is_key_refusal(e: &RemoteError) -> bool {
    matches!(&e.kind, ErrorKind::Auth { message }
        if ["AADSTS700027", "AADSTS50012"].iter().any(|code| message.contains(code)))
}

fn with_certificate(mut e: RemoteError, named: &str) -> RemoteError {
    if let ErrorKind::Auth { message } = &mut e.kind {
        *message = format!("{message} [{named}]");
    }
    e
}

/// One token request; `secret` (a client secret or an assertion) never reaches the error.
async fn post_token(
    core: &HttpCore,
    call: &Call,
    url: &str,
    form: &[(&str, &str)],
    secret: &Secret,
) -> Result<CachedToken, RemoteError> {
    let fetched_at = Instant::now();
    let reply = core
        .send(call, |client| client.post(url).form(form))
        .await
        .map_err(|e| redact_error(e, secret))?;
    if !reply.is_success() {
        return Err(token_error(call, &reply, secret));
    }
    let answer: TokenAnswer = reply.json(call)?;
    Ok(CachedToken {
        token: Secret::new(answer.access_token),
        renew_at: fetched_at + renew_after(answer.expires_in),
    })
}

/// How long a token with this `expires_in` is used before asking again.
fn renew_after(expires_in: u64) -> Duration {
    let lifetime = Duration::from_secs(expires_in);
    if lifetime > EXPIRY_MARGIN * 2 {
        lifetime - EXPIRY_MARGIN
    } else {
        lifetime / 2
    }
}

/// AAD's `error: error_description`; rejections (4xx) are `Auth`, outages stay retryable.
fn token_error(call: &Call, reply: &Reply, secret: &Secret) -> RemoteError {
    let parsed: Option<TokenError> = serde_json::from_str(&reply.body).ok();
    let (code, description) = parsed
        .map(|e| (e.error, e.error_description))
        .unwrap_or_default();
    let message = match (&code, description) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(code), None) => code.clone(),
        (None, Some(description)) => description,
        (None, None) => format!("HTTP {}: {}", reply.status.as_u16(), reply.body_snippet()),
    };
    let message = redact(&message, secret);
    if reply.status.is_client_error() {
        call.auth(message)
    } else {
        call.api(reply.status, code, message)
    }
}

fn redact_error(mut e: RemoteError, secret: &Secret) -> RemoteError {
    e.operation = redact(&e.operation, secret);
    e
}

/// Belt and braces: an error text never carries the secret, whatever the server echoed.
fn redact(text: &str, secret: &Secret) -> String {
    let value = secret.expose();
    if value.is_empty() {
        text.to_string()
    } else {
        text.replace(value, "***")
    }
}

/// The application roles an access token carries (its `roles` claim), read without checking
/// the signature: this is a self-diagnosis, never an authorization decision. `None` when the
/// token is not a JWT with a readable payload; an app-only token without any role has no
/// `roles` claim at all, which reads as none.
pub fn roles_of(token: &Secret) -> Option<Vec<String>> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    let mut parts = token.expose().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(claims.roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> Secret {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!(
            "{}.{}.c2ln",
            b64(r#"{"typ":"JWT","alg":"RS256"}"#),
            b64(claims)
        ))
    }

    #[test]
    fn roles_are_read_from_the_token_payload() {
        let token =
            jwt(r#"{"aud":"https://graph.microsoft.com","roles":["Mail.Send","User.Read.All"]}"#);
        assert_eq!(
            roles_of(&token),
            Some(vec!["Mail.Send".to_string(), "User.Read.All".to_string()])
        );
        // No roles granted: Entra leaves the claim out.
        assert_eq!(roles_of(&jwt(r#"{"aud":"x"}"#)), Some(vec![]));
        assert_eq!(roles_of(&Secret::new("opaque-token")), None);
        assert_eq!(roles_of(&Secret::new("a.!!!.c")), None);
    }

    #[test]
    fn tokens_are_renewed_five_minutes_before_expiry() {
        assert_eq!(renew_after(3599), Duration::from_secs(3299));
        assert_eq!(renew_after(120), Duration::from_secs(60));
    }

    #[test]
    fn rejections_are_auth_errors_with_the_aad_code_and_never_the_secret() {
        let secret = Secret::new("s3cr3t-value");
        let call = Call::new("login", "token for scope in tenant t", None);
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: s3cr3t-value"}"#;
        let err = token_error(&call, &Reply::with(401, body), &secret);
        let text = err.to_string();
        assert!(
            matches!(err.kind, crate::error::ErrorKind::Auth { .. }) && err.service == "login",
            "{err:?}"
        );
        assert!(text.contains("invalid_client: AADSTS7000215"), "{text}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!format!("{err:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn outages_of_the_token_endpoint_stay_retryable() {
        let err = token_error(
            &Call::new("login", "token", None),
            &Reply::with(500, "oops"),
            &Secret::new("x"),
        );
        assert!(err.is_transient(), "{err:?}");
    }
}
