//! Connection settings shared by every entry point: base URLs, secrets, retry and concurrency.

use crate::adapters::m365::certificate::AssertionSigner;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A secret value that never prints: Debug and Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The only way to read the value: at the point where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Base URLs of the external services, without trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrls {
    pub login: String,
    pub graph: String,
    pub exo: String,
    pub psa: String,
}

pub const URL_ENV_VARS: [(&str, &str); 4] = [
    ("login", "REVOKE365_LOGIN_URL"),
    ("graph", "REVOKE365_GRAPH_URL"),
    ("exo", "REVOKE365_EXO_URL"),
    ("psa", "REVOKE365_PSA_URL"),
];

impl Default for ServiceUrls {
    /// The real services.
    fn default() -> Self {
        ServiceUrls {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com".into(),
            exo: "https://outlook.office365.com".into(),
            psa: "https://api-na.myconnectwise.net".into(),
        }
    }
}

impl ServiceUrls {
    /// Every service at one base URL (the simulator serves them all).
    pub fn all_at(base: &str) -> ServiceUrls {
        let b = base.trim_end_matches('/').to_string();
        ServiceUrls {
            login: b.clone(),
            graph: b.clone(),
            exo: b.clone(),
            psa: b,
        }
    }

    /// Applies `REVOKE365_*_URL` variables over these values (the environment wins).
    pub fn with_env_overrides(mut self, lookup: impl Fn(&str) -> Option<String>) -> ServiceUrls {
        for (name, var) in URL_ENV_VARS {
            if let Some(v) = lookup(var).filter(|v| !v.trim().is_empty()) {
                *self.field_mut(name) = v.trim().trim_end_matches('/').to_string();
            }
        }
        self
    }

    pub fn field_mut(&mut self, name: &str) -> &mut String {
        match name {
            "login" => &mut self.login,
            "graph" => &mut self.graph,
            "exo" => &mut self.exo,
            _ => &mut self.psa,
        }
    }
}

/// The one retry policy of every loop that waits and tries again (HTTP calls, DynamoDB write
/// conflicts, the local engine's redelivery): exponential backoff with full jitter, capped at
/// `max_delay`, for at most `max_attempts` tries. A server's `Retry-After` is honoured in full
/// on top of it: Exchange's "micro delays" can ask for more than any cap we would pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1` (`attempt` counts from 1). `retry_after`,
    /// when the server sent one, is waited in full, with the jitter on top so that callers
    /// throttled together do not come back together.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let jitter = ceiling.mul_f64(fastrand::f64());
        match retry_after {
            Some(wait) => wait.saturating_add(jitter.min(self.base_delay)),
            None => jitter,
        }
    }

    /// Whether attempt `attempt` (counting from 1) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }
}

/// How many requests one service may have in flight for one tenant: an adaptive limit that
/// starts at `initial`, grows while calls succeed and shrinks on throttling answers, never
/// above `ceiling`. Neither Graph nor Exchange publishes its limit per tenant, so it is learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceBudget {
    pub initial: usize,
    pub ceiling: usize,
}

/// Graph's Outlook API allows this many concurrent requests per mailbox (per app).
pub const GRAPH_MAILBOX_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub retry: RetryPolicy,
    /// The Exchange admin API throttles per tenant.
    pub exchange: ServiceBudget,
    /// Graph throttles per mailbox and has a far larger budget across mailboxes.
    pub graph: ServiceBudget,
    /// The PSA (one shared budget per MSP, few calls per run).
    pub psa: ServiceBudget,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest response body read; a bigger one is an error, never a growing buffer.
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            retry: RetryPolicy::default(),
            exchange: ServiceBudget {
                initial: 8,
                ceiling: 128,
            },
            graph: ServiceBudget {
                initial: 16,
                ceiling: 256,
            },
            psa: ServiceBudget {
                initial: 3,
                ceiling: 3,
            },
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

impl HttpSettings {
    /// Caps every Microsoft 365 service at `ceiling` requests in flight per tenant
    /// (`--concurrency`); the limits still adapt below it.
    pub fn with_ceiling(mut self, ceiling: usize) -> HttpSettings {
        let ceiling = ceiling.max(1);
        for budget in [&mut self.exchange, &mut self.graph] {
            budget.ceiling = ceiling;
            budget.initial = budget.initial.min(ceiling);
        }
        self
    }

    /// The budget of `service` ("exchange", "graph", "connectwise", ...).
    pub fn budget(&self, service: &str) -> ServiceBudget {
        match service {
            "exchange" => self.exchange,
            "graph" => self.graph,
            _ => self.psa,
        }
    }
}

/// Verification's second look at a grant that still shows right after this run removed it:
/// Exchange may read from another domain controller, so it is read again `attempts` times,
/// `delay` apart, before it is declared remaining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recheck {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for Recheck {
    fn default() -> Self {
        Recheck {
            attempts: 2,
            delay: Duration::from_secs(2),
        }
    }
}

/// The M365 app registration used for one tenant.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: ClientCredential,
}

/// How the app proves who it is to the Microsoft identity platform.
#[derive(Clone)]
pub enum ClientCredential {
    /// A client secret (`client_secret`).
    Secret(Secret),
    /// Certificate credentials: a client assertion signed with a certificate's key (a PEM
    /// file's or a KMS key). The current certificate first, then the next one of a rotation;
    /// a token refused for one certificate is asked again with the next.
    Certificates(Vec<Arc<dyn AssertionSigner>>),
}

impl ClientCredential {
    /// The client secret, if this is one (what error texts are cleaned of).
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            ClientCredential::Secret(secret) => Some(secret),
            ClientCredential::Certificates(_) => None,
        }
    }
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret(***)"),
            ClientCredential::Certificates(signers) => f
                .debug_list()
                .entries(signers.iter().map(|s| {
                    format!(
                        "{} (SHA-256 {})",
                        s.describe(),
                        s.certificate().sha256_thumbprint()
                    )
                }))
                .finish(),
        }
    }
}

/// ConnectWise Manage API keys.
#[derive(Debug, Clone)]
pub struct ConnectWiseCredentials {
    pub company: String,
    pub public_key: String,
    pub private_key: Secret,
    pub client_id: String,
}

/// HaloPSA: an API application with client credentials (Halo → Configuration → Integrations
/// → HaloPSA API), and the ids new tickets and notes are made with.
#[derive(Debug, Clone)]
pub struct HaloSettings {
    /// The authorisation server, e.g. `https://msp.halopsa.com/auth`.
    pub auth_url: String,
    /// The resource server, ending in `/api`, e.g. `https://msp.halopsa.com/api`.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The `tenant` of a hosted instance (`?tenant=` on the token request); none on premises.
    pub tenant: Option<String>,
    /// Defaults of every company (a company's own `halo` ids win).
    pub ids: crate::model::HaloIds,
}

/// Halo's "internal note" outcome when neither the company nor `[psa.halo]` names one (the
/// value CIPP falls back to).
pub const HALO_DEFAULT_OUTCOME_ID: u64 = 7;

/// Autotask: an API-only user (username and secret) and the integration's tracking
/// identifier, and the ids new tickets and notes are made with.
#[derive(Debug, Clone)]
pub struct AutotaskSettings {
    /// Where the zone of the API user is looked up, e.g.
    /// `https://webservices.autotask.net/atservicesrest`.
    pub zone_url: String,
    pub integration_code: Secret,
    pub username: String,
    pub secret: Secret,
    /// Defaults of every company (a company's own `autotask` ids win).
    pub ids: crate::model::AutotaskIds,
}

pub const AUTOTASK_ZONE_URL: &str = "https://webservices.autotask.net/atservicesrest";

/// Where HaloPSA and Autotask are, for the functions (their template parameters); the
/// credentials come from the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsaUrls {
    pub halo_auth: Option<String>,
    pub halo_api: Option<String>,
    pub autotask_zone: Option<String>,
}

impl PsaUrls {
    /// `REVOKE365_HALO_AUTH_URL`, `REVOKE365_HALO_API_URL`, `REVOKE365_AUTOTASK_ZONE_URL`.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> PsaUrls {
        let url = |var: &str| {
            lookup(var)
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty())
        };
        PsaUrls {
            halo_auth: url("REVOKE365_HALO_AUTH_URL"),
            halo_api: url("REVOKE365_HALO_API_URL"),
            autotask_zone: url("REVOKE365_AUTOTASK_ZONE_URL"),
        }
    }

    /// Both PSAs as the simulator at `base` serves them.
    pub fn all_at(base: &str) -> PsaUrls {
        let base = base.trim_end_matches('/');
        PsaUrls {
            halo_auth: Some(format!("{base}/halo/auth")),
            halo_api: Some(format!("{base}/halo/api")),
            autotask_zone: Some(format!("{base}/atservicesrest")),
        }
    }

    /// `accounts` with these URLs; HaloPSA is left out when its URLs are not set.
    pub fn apply(&self, mut accounts: PsaAccounts) -> PsaAccounts {
        accounts.halo = match (accounts.halo, &self.halo_auth, &self.halo_api) {
            (Some(halo), Some(auth), Some(api)) => Some(HaloSettings {
                auth_url: auth.clone(),
                api_url: api.clone(),
                ..halo
            }),
            _ => None,
        };
        if let (Some(autotask), Some(zone)) = (accounts.autotask.as_mut(), &self.autotask_zone) {
            autotask.zone_url = zone.clone();
        }
        accounts
    }
}

/// The PSAs an MSP works with; each company names its kind (`psa_kind`). A kind no company
/// uses needs no credentials.
#[derive(Debug, Clone, Default)]
pub struct PsaAccounts {
    pub connectwise: Option<ConnectWiseCredentials>,
    pub halo: Option<HaloSettings>,
    pub autotask: Option<AutotaskSettings>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let c = AppCredentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential: ClientCredential::Secret(s),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn env_wins_over_config() {
        let urls = ServiceUrls::default().with_env_overrides(|k| {
            (k == "REVOKE365_GRAPH_URL").then(|| "http://127.0.0.1:9/".to_string())
        });
        assert_eq!(urls.graph, "http://127.0.0.1:9");
        assert_eq!(urls.exo, "https://outlook.office365.com");
    }
}
