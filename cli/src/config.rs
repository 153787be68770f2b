//! The TOML config for a real tenant (product.md §5); secrets come from the environment.

use crate::CliError;
use revoke365::config::{ConnectWiseCredentials, Secret, ServiceUrls};
use revoke365::model::{OrgSettings, PsaKind};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    m365: M365Section,
    #[serde(default)]
    urls: UrlsSection,
    #[serde(default)]
    psa: PsaSection,
    #[serde(default)]
    company: Vec<OrgSettings>,
    audit_dir: Option<PathBuf>,
    #[serde(default)]
    http: HttpSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct M365Section {
    client_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlsSection {
    login: Option<String>,
    graph: Option<String>,
    exo: Option<String>,
    psa: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PsaSection {
    #[serde(default)]
    kind: PsaKind,
}

/// Ceilings of the requests in flight per tenant; below them the limits are learnt from the
/// tenant's throttling answers.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Both services.
    pub concurrency: Option<usize>,
    pub exchange_concurrency: Option<usize>,
    pub graph_concurrency: Option<usize>,
}

/// Everything a run needs to reach a real tenant and PSA.
pub struct Settings {
    pub orgs: Vec<OrgSettings>,
    pub urls: ServiceUrls,
    pub m365_client_id: String,
    pub m365_client_secret: Secret,
    pub connectwise: ConnectWiseCredentials,
    pub audit_dir: PathBuf,
    pub http: HttpSection,
}

pub const DEFAULT_AUDIT_DIR: &str = "./revoke365-audit";

fn env_secret(var: &str) -> Result<String, CliError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| CliError::config(var, format!("environment variable {var} must be set (secrets are never read from the config file)")))
}

pub fn load(path: &Path) -> Result<Settings, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config("config", format!("cannot read {}: {e}", path.display())))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        CliError::config(
            "config",
            format!("{}: {}", path.display(), e.to_string().trim()),
        )
    })?;
    if file.company.is_empty() {
        return Err(CliError::config(
            "company",
            "the config defines no [[company]]",
        ));
    }
    let mut urls = ServiceUrls::default();
    for (name, value) in [
        ("login", file.urls.login),
        ("graph", file.urls.graph),
        ("exo", file.urls.exo),
        ("psa", file.urls.psa),
    ] {
        if let Some(v) = value {
            *urls.field_mut(name) = v.trim_end_matches('/').to_string();
        }
    }
    let urls = urls.with_env_overrides(|k| std::env::var(k).ok());
    let orgs = file.company.into_iter().map(|mut o| {
        o.psa_kind = file.psa.kind;
        o
    });
    Ok(Settings {
        orgs: orgs.collect(),
        urls,
        m365_client_id: file.m365.client_id,
        m365_client_secret: Secret::new(env_secret("REVOKE365_M365_CLIENT_SECRET")?),
        connectwise: ConnectWiseCredentials {
            company: env_secret("REVOKE365_CW_COMPANY")?,
            public_key: env_secret("REVOKE365_CW_PUBLIC_KEY")?,
            private_key: Secret::new(env_secret("REVOKE365_CW_PRIVATE_KEY")?),
            client_id: env_secret("REVOKE365_CW_CLIENT_ID")?,
        },
        audit_dir: file
            .audit_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AUDIT_DIR)),
        http: file.http,
    })
}
