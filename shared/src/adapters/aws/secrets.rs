//! Credentials from AWS Secrets Manager: fetched on first use (after the input was validated,
//! never at init), cached for [`SECRET_TTL`], and read again at once when a service rejects
//! them, so a rotated secret needs no redeploy.

use crate::adapters::m365::certificate::Certificate;
use crate::config::{
    AutotaskSettings, ConnectWiseCredentials, HaloSettings, PsaAccounts, Secret, AUTOTASK_ZONE_URL,
};
use crate::error::StepError;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The secret's JSON value: the Microsoft 365 app, and the credentials of each PSA the MSP
/// uses (a PSA no company uses may be left out).
#[derive(Deserialize)]
struct SecretDocument {
    m365_client_id: String,
    /// None when the app signs in with a certificate whose key is in KMS.
    m365_client_secret: Option<String>,
    /// The app's certificates (public; PEM, one or more `CERTIFICATE` blocks, the current
    /// first) whose key is the KMS signing key.
    m365_certificate: Option<String>,
    cw_company: Option<String>,
    cw_public_key: Option<String>,
    cw_private_key: Option<String>,
    cw_client_id: Option<String>,
    halo_client_id: Option<String>,
    halo_client_secret: Option<String>,
    halo_tenant: Option<String>,
    autotask_integration_code: Option<String>,
    autotask_username: Option<String>,
    autotask_secret: Option<String>,
    /// Signs the posts to companies' webhooks (`[company.notify] webhook_url`).
    webhook_secret: Option<String>,
}

pub struct AppSecrets {
    pub m365_client_id: String,
    /// The client secret, when the app has one.
    pub m365_client_secret: Option<Secret>,
    /// The certificates of the KMS signing key (`m365_certificate`), current first.
    pub m365_certificates: Vec<Certificate>,
    pub psa: PsaAccounts,
    pub webhook_secret: Option<Secret>,
}

impl SecretDocument {
    fn psa(self) -> PsaAccounts {
        let connectwise = match (
            self.cw_company,
            self.cw_public_key,
            self.cw_private_key,
            self.cw_client_id,
        ) {
            (Some(company), Some(public_key), Some(private_key), Some(client_id)) => {
                Some(ConnectWiseCredentials {
                    company,
                    public_key,
                    private_key: Secret::new(private_key),
                    client_id,
                })
            }
            _ => None,
        };
        // The URLs come from the functions' configuration (PsaUrls::apply).
        let halo = match (self.halo_client_id, self.halo_client_secret) {
            (Some(client_id), Some(secret)) => Some(HaloSettings {
                auth_url: String::new(),
                api_url: String::new(),
                client_id,
                client_secret: Secret::new(secret),
                tenant: self.halo_tenant,
                ids: Default::default(),
            }),
            _ => None,
        };
        let autotask = match (
            self.autotask_integration_code,
            self.autotask_username,
            self.autotask_secret,
        ) {
            (Some(code), Some(username), Some(secret)) => Some(AutotaskSettings {
                zone_url: AUTOTASK_ZONE_URL.to_string(),
                integration_code: Secret::new(code),
                username,
                secret: Secret::new(secret),
                ids: Default::default(),
            }),
            _ => None,
        };
        PsaAccounts {
            connectwise,
            halo,
            autotask,
        }
    }
}

impl fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSecrets")
            .field("m365_client_id", &self.m365_client_id)
            .finish_non_exhaustive()
    }
}

/// How long a warm container uses the secret it read before reading it again.
pub const SECRET_TTL: Duration = Duration::from_secs(300);

pub struct SecretsProvider {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    cached: Mutex<Option<(Arc<AppSecrets>, Instant)>>,
}

impl SecretsProvider {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> SecretsProvider {
        SecretsProvider::with_ttl(client, secret_id, SECRET_TTL)
    }

    pub fn with_ttl(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        ttl: Duration,
    ) -> SecretsProvider {
        SecretsProvider {
            client,
            secret_id,
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The credentials, read again when the cached ones are older than the TTL.
    pub async fn get(&self) -> Result<Arc<AppSecrets>, StepError> {
        let mut cached = self.cached.lock().await;
        if let Some((secrets, read_at)) = cached.as_ref() {
            if read_at.elapsed() < self.ttl {
                return Ok(secrets.clone());
            }
        }
        let fresh = Arc::new(self.fetch().await?);
        *cached = Some((fresh.clone(), Instant::now()));
        Ok(fresh)
    }

    /// A service rejected the credentials: the next [`Self::get`] reads the secret again.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<AppSecrets, StepError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                // Only the error's kind: a service error never carries the value, but keep it short.
                StepError::Remote(crate::RemoteError::new(
                    "secretsmanager",
                    format!("GetSecretValue {}", self.secret_id),
                    crate::error::ErrorKind::Transport {
                        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                    },
                ))
            })?;
        let text = out.secret_string.ok_or_else(|| {
            StepError::Permanent(format!("secret {} has no string value", self.secret_id))
        })?;
        // serde's message could quote the value: report only where it failed.
        let doc: SecretDocument = serde_json::from_str(&text).map_err(|e| {
            StepError::Permanent(format!(
                "secret {} is not the expected JSON object (m365_client_id, m365_client_secret or m365_certificate, and cw_company, cw_public_key, cw_private_key, cw_client_id; halo_client_id, halo_client_secret, halo_tenant; autotask_integration_code, autotask_username, autotask_secret for the PSAs in use; webhook_secret for companies with a webhook): error at line {} column {}",
                self.secret_id,
                e.line(),
                e.column()
            ))
        })?;
        let webhook_secret = doc.webhook_secret.clone().map(Secret::new);
        let m365_certificates = match &doc.m365_certificate {
            Some(pem) => Certificate::all_from_pem(pem, "m365_certificate")
                .map_err(|e| StepError::Permanent(format!("secret {}: {e}", self.secret_id)))?,
            None => Vec::new(),
        };
        if doc.m365_client_secret.is_none() && m365_certificates.is_empty() {
            return Err(StepError::Permanent(format!(
                "secret {} has neither m365_client_secret nor m365_certificate: the app needs one of them",
                self.secret_id
            )));
        }
        Ok(AppSecrets {
            webhook_secret,
            m365_client_id: doc.m365_client_id.clone(),
            m365_client_secret: doc.m365_client_secret.clone().map(Secret::new),
            m365_certificates,
            psa: doc.psa(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_the_keys_of_the_psas_in_use_only() {
        let doc: SecretDocument = serde_json::from_str(
            r#"{"m365_client_id": "app", "m365_client_secret": "s",
                "autotask_integration_code": "CODE", "autotask_username": "api@msp.example",
                "autotask_secret": "at-secret"}"#,
        )
        .unwrap();
        let psa = doc.psa();
        assert!(psa.connectwise.is_none());
        let autotask = psa.autotask.expect("Autotask keys");
        assert_eq!(autotask.username, "api@msp.example");
        assert_eq!(autotask.secret.expose(), "at-secret");
        assert!(!format!("{autotask:?}").contains("at-secret"));

        let doc: SecretDocument = serde_json::from_str(
            r#"{"m365_client_id": "app", "m365_client_secret": "s", "cw_company": "msp",
                "cw_public_key": "pub", "cw_private_key": "priv", "cw_client_id": "id"}"#,
        )
        .unwrap();
        let psa = doc.psa();
        assert_eq!(psa.connectwise.expect("ConnectWise keys").company, "msp");
        assert!(psa.autotask.is_none());
    }
}
