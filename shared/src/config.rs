//! Connection settings shared by every entry point: base URLs, secrets, retry and concurrency.

use std::fmt;
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

/// Retries of 429/503 and transport failures: honour `Retry-After`, else exponential backoff
/// with full jitter, both capped, for at most `max_attempts` tries.
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub retry: RetryPolicy,
    /// Requests in flight per tenant (Graph and Exchange together).
    pub tenant_concurrency: usize,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            retry: RetryPolicy::default(),
            tenant_concurrency: 10,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The M365 app registration used for one tenant.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// ConnectWise Manage API keys.
#[derive(Debug, Clone)]
pub struct ConnectWiseCredentials {
    pub company: String,
    pub public_key: String,
    pub private_key: Secret,
    pub client_id: String,
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
            client_secret: s,
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
