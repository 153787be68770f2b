//! The one route for callers that cannot sign with SigV4 (a Sentinel playbook, a PSA webhook):
//! each caller has its own secret in Secrets Manager and signs the timestamp and the body
//! with HMAC-SHA256. A request with no valid, fresh, first-seen signature is refused before
//! its body is read as a request.
//!
//! Headers: `X-Revoke365-Caller: sentinel`, `X-Revoke365-Timestamp: 1768469400` (Unix
//! seconds), `X-Revoke365-Signature: sha256=<hex of HMAC-SHA256(secret, "{timestamp}.{body}")>`.

use crate::config::Secret;
use crate::model::RunId;
use crate::ports::RunStore;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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
    /// An unknown caller gets the same answer as a wrong signature.
    #[error("the signature does not match")]
    BadSignature,
    #[error("this signed request was already received")]
    Replayed,
    #[error("the signature could not be checked; retry")]
    Unavailable,
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

/// What the headers of one signed request say.
pub struct Signed<'a> {
    pub caller: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Checks the signature (in constant time) and the timestamp against `now`; returns the
/// caller's name.
pub fn verify<'a>(
    secrets: &HashMap<String, Secret>,
    signed: &Signed<'a>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, SignatureError> {
    let timestamp: i64 = signed
        .timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    let secret = secrets
        .get(signed.caller)
        .ok_or(SignatureError::BadSignature)?;
    let given = signed
        .signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::BadSignature)?;
    let mut mac = mac(secret.expose(), timestamp);
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::BadSignature)?;
    Ok(signed.caller)
}

/// Records the signature as seen: a second request with it is a replay. The record lasts
/// the idempotency window, longer than a timestamp stays fresh.
pub async fn first_use(store: &dyn RunStore, signature: &str) -> Result<(), SignatureError> {
    let key = hex::encode(Sha256::digest(format!("webhook:{}", signature.trim())));
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

/// The callers' secrets, read from Secrets Manager on each signed request (a rotated or added
/// caller needs no redeploy). The value is a JSON object: caller name -> secret.
pub struct WebhookSecrets {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl WebhookSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> WebhookSecrets {
        WebhookSecrets { client, secret_id }
    }

    pub async fn load(&self) -> Result<HashMap<String, Secret>, SignatureError> {
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
        let signed = Signed {
            caller: "sentinel",
            timestamp: "1000",
            signature: &sig,
        };
        assert_eq!(
            verify(&secrets(), &signed, b"{}", 1010).unwrap(),
            "sentinel"
        );
        assert!(matches!(
            verify(&secrets(), &signed, b"{ }", 1010),
            Err(SignatureError::BadSignature)
        ));
        assert!(matches!(
            verify(&secrets(), &signed, b"{}", 1000 + MAX_SKEW_SECS + 1),
            Err(SignatureError::Stale)
        ));
    }
}
