//! Builds the real HTTP clients for a company from its org settings. The HTTP core (one
//! reqwest client, token cache, per-tenant limits) is shared, so connecting again is cheap.

use super::http::HttpCore;
use super::m365::exchange::ExchangeClient;
use super::m365::graph::GraphClient;
use super::psa::autotask::AutotaskClient;
use super::psa::connectwise::ConnectWiseClient;
use super::psa::halopsa::HaloClient;
use super::psa::no_psa::NoPsa;
use super::webhook::WebhookClient;
use crate::config::{AppCredentials, ClientCredential, PsaAccounts, Recheck, Secret, ServiceUrls};
use crate::error::StepError;
use crate::model::{OrgSettings, PsaKind};
use crate::ports::{Connections, Connector, Psa};
use async_trait::async_trait;
use std::sync::Arc;

pub struct HttpConnector {
    pub core: Arc<HttpCore>,
    pub urls: ServiceUrls,
    pub m365_client_id: String,
    /// The app's client secret or certificate credentials.
    pub m365_credential: ClientCredential,
    /// The PSAs' credentials and default ids; each company names its kind.
    pub psa: PsaAccounts,
    pub recheck: Recheck,
    /// How long one discovery shard should take (shards are sized from it).
    pub shard_time: std::time::Duration,
    /// Signs the posts to companies' webhooks (`REVOKE365_WEBHOOK_SECRET`); none: a company
    /// with a `webhook_url` gets nothing and its report says why.
    pub webhook_secret: Option<Secret>,
}

/// A shard takes about a minute by default: well inside any function's timeout.
pub const DEFAULT_SHARD_TIME: std::time::Duration = std::time::Duration::from_secs(60);

#[async_trait]
impl Connector for HttpConnector {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError> {
        let creds = AppCredentials {
            tenant_id: org.tenant_id.clone(),
            client_id: self.m365_client_id.clone(),
            credential: self.m365_credential.clone(),
        };
        let graph = Arc::new(GraphClient::new(
            self.core.clone(),
            &self.urls,
            creds.clone(),
        ));
        let exchange = Arc::new(ExchangeClient::new(self.core.clone(), &self.urls, creds));
        let psa = self.psa_client(org)?;
        Ok(Connections {
            directory: graph.clone(),
            calendars: graph.clone(),
            folders: exchange.clone(),
            exchange,
            identity: graph.clone(),
            psa,
            mailer: graph.clone(),
            notifier: Arc::new(WebhookClient::new(
                self.core.clone(),
                self.webhook_secret.clone(),
            )),
            alerts: graph,
            recheck: self.recheck,
            shard_size: {
                let (core, tenant, target) =
                    (self.core.clone(), org.tenant_id.clone(), self.shard_time);
                Arc::new(move || core.shard_size(&tenant, target))
            },
            seed_limits: {
                let (core, tenant) = (self.core.clone(), org.tenant_id.clone());
                Arc::new(move |limits| {
                    for (service, limit) in limits {
                        core.seed(&tenant, service, *limit);
                    }
                })
            },
        })
    }
}

impl HttpConnector {
    /// The client of the PSA the company names, with its own ids over the defaults.
    fn psa_client(&self, org: &OrgSettings) -> Result<Arc<dyn Psa>, StepError> {
        let unset = |what: &str| {
            StepError::Permanent(format!(
                "company '{}' uses {} (psa_kind), but no {what} account is configured (its credentials, and on AWS its URLs)",
                org.company_id,
                org.psa_kind.label()
            ))
        };
        let core = self.core.clone();
        Ok(match org.psa_kind {
            PsaKind::Connectwise => {
                let creds = self
                    .psa
                    .connectwise
                    .clone()
                    .ok_or_else(|| unset("ConnectWise"))?;
                Arc::new(ConnectWiseClient::new(core, &self.urls.psa, creds))
            }
            PsaKind::Halo => {
                let settings = self.psa.halo.as_ref().ok_or_else(|| unset("HaloPSA"))?;
                Arc::new(HaloClient::new(core, settings, org.halo.as_ref()))
            }
            PsaKind::Autotask => {
                let settings = self
                    .psa
                    .autotask
                    .as_ref()
                    .ok_or_else(|| unset("Autotask"))?;
                Arc::new(AutotaskClient::new(core, settings, org.autotask.as_ref()))
            }
            PsaKind::None => Arc::new(NoPsa),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpSettings;

    #[tokio::test]
    async fn a_company_whose_psa_has_no_account_is_refused_naming_the_psa() {
        let connector = HttpConnector {
            core: HttpCore::new(HttpSettings::default()).unwrap(),
            urls: ServiceUrls::all_at("http://127.0.0.1:9"),
            m365_client_id: "app".into(),
            m365_credential: ClientCredential::Secret(Secret::new("s")),
            psa: PsaAccounts::default(),
            recheck: Recheck::default(),
            shard_time: DEFAULT_SHARD_TIME,
            webhook_secret: None,
        };
        let mut org = OrgSettings::from_fixture(&serde_json::json!({
            "tenant_id": "t",
            "organization": {"company_id": "acme", "company_name": "Acme", "psa_kind": "halo",
                "m365_permission_ticket_board": "b", "notification_sender": "it@acme.example"}
        }))
        .unwrap();
        let refused = connector.connect(&org).await.err().expect("refused");
        assert!(refused.to_string().contains("HaloPSA"), "{refused}");
        org.psa_kind = PsaKind::None;
        assert!(
            connector.connect(&org).await.is_ok(),
            "no PSA needs no account"
        );
    }
}
