//! The one route for callers that cannot sign with SigV4 (a Sentinel playbook, a PSA webhook):
//! each caller has its own secret in Secrets Manager and signs the timestamp and the body
//! with HMAC-SHA256. A request with no valid, fresh, first-seen signature is refused before
//! its body is read as a request; one whose headers are malformed or stale is refused before
//! any secret is read.
//!
//! Headers: `X-Revoke365-Caller: sentinel`, `X-Revoke365-Timestamp: 1768469400` (Unix
//! seconds), `X-Revoke365-Signature: sha256=<hex of HMAC-SHA256(secret, "{timestamp}.{body}")>`.

use crate::config::Secret;
use crate::model::RunId;
use crate::ports::RunStore;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const CALLER_HEADER: &str = "x-revoke365-caller";
pub const TIMESTAMP_HEADER: &str = "x-revoke365-timestamp";
pub const SIGNATURE_HEADER: &str = "x-revoke365-signature";
/// How far a timestamp may be from now, either way.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("X-Revoke365-Timestamp must be Unix seconds")]
    BadTimestamp,
    #[error("the timestamp is more than {MAX_SKEW_SECS} seconds from now")]
    Stale,
    #[error("X-Revoke365-Signature must be 'sha256=' and the 64 hex digits of the HMAC")]
    BadFormat,
    /// An unknown caller gets the same answer as a wrong signature.
    #[error("the signature does not match")]
    BadSignature,
    #[error("this signed request was already received")]
    Replayed,
    #[error("the signature could not be checked; retry")]
    Unavailable,
}

impl SignatureError {
    /// The header at fault, when the headers alone show it.
    pub fn header(&self) -> Option<&'static str> {
        match self {
            SignatureError::Missing(name) => Some(name),
            SignatureError::BadTimestamp | SignatureError::Stale => Some(TIMESTAMP_HEADER),
            SignatureError::BadFormat => Some(SIGNATURE_HEADER),
            _ => None,
        }
    }
}

/// `sha256=<hex>` of `"{timestamp}.{body}"` under `secret`: what a caller sends.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret, timestamp);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &str, timestamp: i64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac
}

/// The longest caller name: anything longer names no caller.
const MAX_CALLER: usize = 64;

/// The headers of one signed request, checked for form and freshness: what can be refused
/// before any secret is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<'a> {
    pub caller: &'a str,
    pub timestamp: i64,
    /// `sha256=` and the HMAC in lowercase hex, whatever case the caller sent: one signature
    /// has one form, so the replay ledger and the idempotency key see it once.
    pub signature: String,
}

impl<'a> Signed<'a> {
    /// Reads the three headers' values against `now`: a timestamp that is not Unix seconds or
    /// is more than [`MAX_SKEW_SECS`] away, or a signature not of the form `sha256=<64 hex>`,
    /// is refused here.
    pub fn parse(
        caller: &'a str,
        timestamp: &str,
        signature: &str,
        now: i64,
    ) -> Result<Signed<'a>, SignatureError> {
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if now.abs_diff(timestamp) > MAX_SKEW_SECS as u64 {
            return Err(SignatureError::Stale);
        }
        let caller = caller.trim();
        if caller.is_empty() || caller.len() > MAX_CALLER {
            return Err(SignatureError::BadSignature);
        }
        Ok(Signed {
            caller,
            timestamp,
            signature: normalized_signature(signature)?,
        })
    }
}

/// `sha256=` (any case) and exactly 64 hex digits (any case), as `sha256=<lowercase hex>`.
fn normalized_signature(raw: &str) -> Result<String, SignatureError> {
    let raw = raw.trim();
    let (prefix, hex) = raw.split_at_checked(7).ok_or(SignatureError::BadFormat)?;
    if !prefix.eq_ignore_ascii_case("sha256=")
        || hex.len() != 64
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(SignatureError::BadFormat);
    }
    Ok(format!("sha256={}", hex.to_ascii_lowercase()))
}

/// Checks the signature (in constant time) over `body`; returns the caller's name.
pub fn verify<'a>(
    secrets: &HashMap<String, Secret>,
    signed: &Signed<'a>,
    body: &[u8],
) -> Result<&'a str, SignatureError> {
    let secret = secrets
        .get(signed.caller)
        .ok_or(SignatureError::BadSignature)?;
    let given = signed
        .signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::BadFormat)?;
    let mut mac = mac(secret.expose(), signed.timestamp);
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(signed.caller)
}

/// Records the signature as seen: a second request with it (in any case of its hex) is a
/// replay. The record lasts the idempotency window, longer than a timestamp stays fresh.
pub async fn first_use(store: &dyn RunStore, signed: &Signed<'_>) -> Result<(), SignatureError> {
    let key = hex::encode(Sha256::digest(format!("webhook:{}", signed.signature)));
    let marker = RunId("webhook-signature".into());
    match store.reserve_idempotency_key(&key, &marker, "").await {
        Ok(crate::ports::KeyHolder::Reserved) => Ok(()),
        Ok(crate::ports::KeyHolder::Held { .. }) => Err(SignatureError::Replayed),
        Err(e) => {
            tracing::error!(error = %e, "the replay record could not be written");
            Err(SignatureError::Unavailable)
        }
    }
}

/// How long the callers' secrets are kept once read: a caller added in Secrets Manager can
/// sign within this long, with no redeploy.
pub const SECRETS_TTL: Duration = Duration::from_secs(300);
/// A signature that does not match under secrets older than this reads them again (a rotated
/// or new caller), at most once per this long, so a flood of bad signatures costs no more than
/// that many reads.
pub const SECRETS_REFRESH_AFTER: Duration = Duration::from_secs(30);

type Secrets = Arc<HashMap<String, Secret>>;

/// The callers' secrets, read from Secrets Manager and kept for [`SECRETS_TTL`]. The value is
/// a JSON object: caller name -> secret. Clones share the kept secrets.
#[derive(Clone)]
pub struct WebhookSecrets {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    refresh_after: Duration,
    cached: Arc<Mutex<Option<(Instant, Secrets)>>>,
}

impl WebhookSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> WebhookSecrets {
        WebhookSecrets::with_ttl(client, secret_id, SECRETS_TTL, SECRETS_REFRESH_AFTER)
    }

    /// Kept `ttl`, and read again on a mismatch once older than `refresh_after`.
    pub fn with_ttl(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        ttl: Duration,
        refresh_after: Duration,
    ) -> WebhookSecrets {
        WebhookSecrets {
            client,
            secret_id,
            ttl,
            refresh_after,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Checks `signed` over `body` against the callers' secrets (kept, or read when older than
    /// the TTL, [`SECRETS_TTL`] as deployed); a mismatch under secrets older than
    /// [`SECRETS_REFRESH_AFTER`] is checked once more against a fresh read. Returns the
    /// caller's name.
    pub async fn verify<'a>(
        &self,
        signed: &Signed<'a>,
        body: &[u8],
    ) -> Result<&'a str, SignatureError> {
        let (read_at, secrets) = self.secrets(self.ttl).await?;
        match verify(&secrets, signed, body) {
            Err(SignatureError::BadSignature) if read_at.elapsed() > self.refresh_after => {
                let (_, fresh) = self.secrets(self.refresh_after).await?;
                verify(&fresh, signed, body)
            }
            checked => checked,
        }
    }

    /// The kept secrets when younger than `max_age`, else a fresh read (then kept).
    async fn secrets(&self, max_age: Duration) -> Result<(Instant, Secrets), SignatureError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, secrets)) = cached.as_ref() {
            if read_at.elapsed() <= max_age {
                return Ok((*read_at, secrets.clone()));
            }
        }
        let fresh = (Instant::now(), Arc::new(self.load().await?));
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    async fn load(&self) -> Result<HashMap<String, Secret>, SignatureError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                tracing::error!(secret_id = %self.secret_id, error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&e), "webhook secrets could not be read");
                SignatureError::Unavailable
            })?;
        let raw: HashMap<String, String> =
            serde_json::from_str(out.secret_string().unwrap_or("{}")).map_err(|_| {
                tracing::error!(secret_id = %self.secret_id, "webhook secrets are not a JSON object of caller -> secret");
                SignatureError::Unavailable
            })?;
        Ok(raw.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> HashMap<String, Secret> {
        HashMap::from([("sentinel".to_string(), Secret::new("s3cret"))])
    }

    #[test]
    fn a_good_signature_names_its_caller_and_a_changed_body_does_not() {
        let sig = sign("s3cret", 1000, b"{}");
        let signed = Signed::parse("sentinel", "1000", &sig, 1010).unwrap();
        assert_eq!(verify(&secrets(), &signed, b"{}").unwrap(), "sentinel");
        assert!(matches!(
            verify(&secrets(), &signed, b"{ }"),
            Err(SignatureError::BadSignature)
        ));
        assert!(matches!(
            Signed::parse("sentinel", "1000", &sig, 1000 + MAX_SKEW_SECS + 1),
            Err(SignatureError::Stale)
        ));
    }

    #[test]
    fn a_signature_has_one_form_whatever_its_case_and_a_malformed_one_is_refused() {
        let sig = sign("s3cret", 1000, b"{}");
        let upper = format!("SHA256={}", sig["sha256=".len()..].to_ascii_uppercase());
        let signed = Signed::parse("sentinel", "1000", &upper, 1000).unwrap();
        assert_eq!(signed.signature, sig);
        assert_eq!(verify(&secrets(), &signed, b"{}").unwrap(), "sentinel");
        for bad in [
            "sha256=abc".to_string(),
            format!("{sig}00"),
            format!("md5={}", &sig[7..]),
            format!("sha256={}", "g".repeat(64)),
            "sha256=é".to_string(),
            String::new(),
        ] {
            assert!(
                matches!(
                    Signed::parse("sentinel", "1000", &bad, 1000),
                    Err(SignatureError::BadFormat)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Signed::parse("sentinel", "soon", &sig, 1000),
            Err(SignatureError::BadTimestamp)
        ));
    }
}
