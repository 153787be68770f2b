//! The Lambda functions' connector: the M365 and PSA clients built from the credentials in
//! Secrets Manager on first use, with each tenant's budget shared through DynamoDB.

use crate::adapters::aws::budget_hold::{BudgetHold, Saturated};
use crate::adapters::aws::secrets::SecretsProvider;
use crate::adapters::aws::tenant_budget::TenantBudgets;
use crate::adapters::connect::HttpConnector;
use crate::adapters::http::HttpCore;
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
            m365_credential: ClientCredential::Secret(s.m365_client_secret.clone()),
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
