//! The Lambda functions' connector: the M365 and PSA clients built from the credentials in
//! Secrets Manager on first use, with each tenant's budget shared through DynamoDB.

use crate::adapters::aws::budget_hold::{BudgetHold, Saturated};
use crate::adapters::aws::kms_signer::{KmsSigner, SIGNING_KEY_VAR};
use crate::adapters::aws::secrets::{AppSecrets, SecretsProvider};
use crate::adapters::aws::tenant_budget::TenantBudgets;
use crate::adapters::connect::HttpConnector;
use crate::adapters::http::HttpCore;
use crate::adapters::m365::certificate::AssertionSigner;
use crate::config::{ClientCredential, HttpSettings, PsaUrls, ServiceUrls};
use crate::error::StepError;
use crate::model::OrgSettings;
use crate::ports::{BudgetWant, Connections, Connector};
use crate::work::Delivery;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Builds the M365 and PSA clients on first use: the secret is read, and the HTTP client made,
/// only when a message needs them — not at init, and never before the input was validated.
pub struct SecretConnector {
    http: HttpSettings,
    urls: ServiceUrls,
    secrets: SecretsProvider,
    shard_time: Duration,
    psa_urls: PsaUrls,
    core: OnceCell<Arc<HttpCore>>,
    budgets: Option<Arc<TenantBudgets>>,
    /// What each delivery in progress holds of its tenant's budgets.
    holds: StdMutex<HashMap<String, BudgetHold>>,
    /// The KMS key that signs the app's client assertions (`REVOKE365_M365_SIGNING_KEY_ID`);
    /// its certificates are in the secret (`m365_certificate`).
    signing_key: Option<(aws_sdk_kms::Client, String)>,
}

impl SecretConnector {
    pub fn new(
        http: HttpSettings,
        urls: ServiceUrls,
        secrets: SecretsProvider,
        shard_time: Duration,
    ) -> SecretConnector {
        SecretConnector {
            http,
            urls,
            secrets,
            shard_time,
            psa_urls: PsaUrls::default(),
            core: OnceCell::new(),
            budgets: None,
            holds: StdMutex::default(),
            signing_key: None,
        }
    }

    /// Signs in with certificate credentials whose key is the KMS key `key_id` (an empty id:
    /// none, the client secret is used).
    pub fn with_signing_key(
        mut self,
        client: aws_sdk_kms::Client,
        key_id: &str,
    ) -> SecretConnector {
        let key_id = key_id.trim();
        self.signing_key = (!key_id.is_empty()).then(|| (client, key_id.to_string()));
        self
    }

    /// The app's credential: the KMS key with each certificate of the secret (no client secret
    /// is used then), or else the secret's client secret.
    fn credential(&self, s: &AppSecrets) -> Result<ClientCredential, StepError> {
        match (&self.signing_key, &s.m365_client_secret) {
            (Some((client, key_id)), _) if !s.m365_certificates.is_empty() => {
                let now = chrono::Utc::now();
                for cert in &s.m365_certificates {
                    let days_left = cert.days_left(now);
                    if days_left < 30 {
                        // What `revoke365 check` warns of on one machine: the logs' alarm.
                        tracing::warn!(
                            sha256_thumbprint = %cert.sha256_thumbprint(),
                            days_left,
                            "the app's certificate (m365_certificate) expires within 30 days: make the next one for the KMS key and add it"
                        );
                    }
                }
                Ok(ClientCredential::Certificates(
                    s.m365_certificates
                        .iter()
                        .map(|cert| {
                            Arc::new(KmsSigner::new(client.clone(), key_id, cert.clone()))
                                as Arc<dyn AssertionSigner>
                        })
                        .collect(),
                ))
            }
            // The key's certificate is not made yet: the client secret, as before.
            (_, Some(secret)) => Ok(ClientCredential::Secret(secret.clone())),
            (Some((_, key_id)), None) => Err(StepError::Permanent(format!(
                "the secret has no m365_client_secret and no m365_certificate: put the certificate of the KMS key {key_id} (PEM) in m365_certificate"
            ))),
            (None, None) => Err(StepError::Permanent(format!(
                "the secret has no m365_client_secret, and no KMS signing key is configured ({SIGNING_KEY_VAR}) for its m365_certificate"
            ))),
        }
    }

    /// Where HaloPSA and Autotask are (the secret holds only their credentials).
    pub fn with_psa_urls(mut self, urls: PsaUrls) -> SecretConnector {
        self.psa_urls = urls;
        self
    }

    /// Shares each tenant's budget with every other invocation through `budgets`.
    pub fn with_shared_budgets(mut self, budgets: TenantBudgets) -> SecretConnector {
        self.budgets = Some(Arc::new(budgets));
        self
    }

    /// The HTTP core, made on first use (what the budgets learnt lives here).
    pub fn core(&self) -> Option<&Arc<HttpCore>> {
        self.core.get()
    }
}

#[async_trait]
impl Connector for SecretConnector {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError> {
        let s = self.secrets.get().await?;
        let core = self
            .core
            .get_or_try_init(|| async { HttpCore::new(self.http.clone()) })
            .await?;
        HttpConnector {
            core: core.clone(),
            urls: self.urls.clone(),
            m365_client_id: s.m365_client_id.clone(),
            m365_credential: self.credential(&s)?,
            psa: self.psa_urls.apply(s.psa.clone()),
            recheck: Default::default(),
            shard_time: self.shard_time,
            webhook_secret: s.webhook_secret.clone(),
        }
        .connect(org)
        .await
    }

    async fn credentials_rejected(&self) {
        tracing::warn!("credentials rejected: the secret is read again");
        self.secrets.invalidate().await;
    }

    async fn hold_budget(
        &self,
        org: &OrgSettings,
        delivery: &Delivery,
        want: BudgetWant,
    ) -> Result<(), StepError> {
        let (Some(budgets), Some(core)) = (&self.budgets, self.core.get()) else {
            return Ok(());
        };
        let left = delivery.deadline.left().unwrap_or(Duration::from_secs(300));
        let held = BudgetHold::take(
            budgets.clone(),
            core.clone(),
            &self.http,
            &org.tenant_id,
            &delivery.holder,
            want,
            left,
        )
        .await?;
        match held {
            Ok(hold) => {
                self.holds
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(delivery.holder.clone(), hold);
                Ok(())
            }
            Err(Saturated { service }) => Err(StepError::Saturated {
                tenant: org.tenant_id.clone(),
                service: service.to_string(),
            }),
        }
    }

    async fn return_budget(&self, _org: &OrgSettings, delivery: &Delivery) {
        let hold = self
            .holds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&delivery.holder);
        if let Some(hold) = hold {
            hold.give_back().await;
        }
    }
}
