//! Credentials from AWS Secrets Manager: fetched on first use (after the input was validated,
//! never at init), then cached for the life of the warm container.

use crate::config::{ConnectWiseCredentials, Secret};
use crate::error::StepError;
use serde::Deserialize;
use std::fmt;
use tokio::sync::OnceCell;

/// The secret's JSON value.
#[derive(Deserialize)]
struct SecretDocument {
    m365_client_id: String,
    m365_client_secret: String,
    cw_company: String,
    cw_public_key: String,
    cw_private_key: String,
    cw_client_id: String,
}

pub struct AppSecrets {
    pub m365_client_id: String,
    pub m365_client_secret: Secret,
    pub connectwise: ConnectWiseCredentials,
}

impl fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSecrets")
            .field("m365_client_id", &self.m365_client_id)
            .finish_non_exhaustive()
    }
}

pub struct SecretsProvider {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cached: OnceCell<AppSecrets>,
}

impl SecretsProvider {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> SecretsProvider {
        SecretsProvider {
            client,
            secret_id,
            cached: OnceCell::new(),
        }
    }

    pub async fn get(&self) -> Result<&AppSecrets, StepError> {
        self.cached.get_or_try_init(|| self.fetch()).await
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
                "secret {} is not the expected JSON object (m365_client_id, m365_client_secret, cw_company, cw_public_key, cw_private_key, cw_client_id): error at line {} column {}",
                self.secret_id,
                e.line(),
                e.column()
            ))
        })?;
        Ok(AppSecrets {
            m365_client_id: doc.m365_client_id,
            m365_client_secret: Secret::new(doc.m365_client_secret),
            connectwise: ConnectWiseCredentials {
                company: doc.cw_company,
                public_key: doc.cw_public_key,
                private_key: Secret::new(doc.cw_private_key),
                client_id: doc.cw_client_id,
            },
        })
    }
}
