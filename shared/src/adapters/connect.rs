//! Builds the real HTTP clients for a company from its org settings. The HTTP core (one
//! reqwest client, token cache, per-tenant limits) is shared, so connecting again is cheap.

use super::connectwise::ConnectWiseClient;
use super::exchange::ExchangeClient;
use super::graph::GraphClient;
use super::http::HttpCore;
use crate::config::{AppCredentials, ConnectWiseCredentials, Recheck, Secret, ServiceUrls};
use crate::error::StepError;
use crate::model::{OrgSettings, PsaKind};
use crate::ports::{Connections, Connector};
use async_trait::async_trait;
use std::sync::Arc;

pub struct HttpConnector {
    pub core: Arc<HttpCore>,
    pub urls: ServiceUrls,
    pub m365_client_id: String,
    pub m365_client_secret: Secret,
    pub connectwise: ConnectWiseCredentials,
    pub recheck: Recheck,
    /// How long one discovery shard should take (shards are sized from it).
    pub shard_time: std::time::Duration,
}

/// A shard takes about a minute by default: well inside any function's timeout.
pub const DEFAULT_SHARD_TIME: std::time::Duration = std::time::Duration::from_secs(60);

#[async_trait]
impl Connector for HttpConnector {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError> {
        let creds = AppCredentials {
            tenant_id: org.tenant_id.clone(),
            client_id: self.m365_client_id.clone(),
            client_secret: self.m365_client_secret.clone(),
        };
        let graph = Arc::new(GraphClient::new(
            self.core.clone(),
            &self.urls,
            creds.clone(),
        ));
        let exchange = Arc::new(ExchangeClient::new(self.core.clone(), &self.urls, creds));
        let psa = match org.psa_kind {
            PsaKind::Connectwise => Arc::new(ConnectWiseClient::new(
                self.core.clone(),
                &self.urls.psa,
                self.connectwise.clone(),
            )),
        };
        Ok(Connections {
            directory: graph.clone(),
            exchange,
            psa,
            mailer: graph,
            recheck: self.recheck,
            shard_size: {
                let (core, tenant, target) =
                    (self.core.clone(), org.tenant_id.clone(), self.shard_time);
                Arc::new(move || core.shard_size(&tenant, target))
            },
        })
    }
}
