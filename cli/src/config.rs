//! The TOML config for a real tenant; secrets come from the environment, identifiers that are
//! not secret may be in the file (the environment wins).

use crate::CliError;
use revoke365::config::{
    AutotaskSettings, ClientCredential, ConnectWiseCredentials, HaloSettings, PsaAccounts, Secret,
    ServiceUrls, AUTOTASK_ZONE_URL,
};
use revoke365::model::{AutotaskIds, HaloIds, OrgSettings, PsaKind};
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
    /// Run state (`revoke365.db`) and audit files; `audit_dir` was its first name.
    #[serde(alias = "audit_dir")]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    http: HttpSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct M365Section {
    client_id: String,
    /// The private key and certificate in one PEM file (certificate credentials; no client
    /// secret is read then). Relative to the config file. `REVOKE365_M365_CERTIFICATE` wins.
    certificate_file: Option<PathBuf>,
    /// The next certificate of a rotation, tried when the first is refused.
    next_certificate_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlsSection {
    login: Option<String>,
    graph: Option<String>,
    exo: Option<String>,
    psa: Option<String>,
}

/// `[psa]`: the kind of every company that names none, and one sub-table per PSA.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PsaSection {
    #[serde(default)]
    kind: PsaKind,
    /// ConnectWise company id (`REVOKE365_CW_COMPANY` wins); also `[psa.connectwise]`.
    company: Option<String>,
    /// ConnectWise API member's public key (`REVOKE365_CW_PUBLIC_KEY` wins).
    public_key: Option<String>,
    /// ConnectWise developer clientId (`REVOKE365_CW_CLIENT_ID` wins).
    client_id: Option<String>,
    #[serde(default)]
    connectwise: ConnectWiseSection,
    #[serde(default)]
    halo: HaloSection,
    #[serde(default)]
    autotask: AutotaskSection,
}

/// `[psa.connectwise]`: the same identifiers as the first release's `[psa]` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectWiseSection {
    company: Option<String>,
    public_key: Option<String>,
    client_id: Option<String>,
}

/// `[psa.halo]`: the instance, the API application and default ids.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaloSection {
    /// `REVOKE365_HALO_AUTH_URL` wins.
    auth_url: Option<String>,
    /// `REVOKE365_HALO_API_URL` wins.
    api_url: Option<String>,
    /// `REVOKE365_HALO_CLIENT_ID` wins.
    client_id: Option<String>,
    /// Hosted instances only (`REVOKE365_HALO_TENANT` wins).
    tenant: Option<String>,
    site_id: Option<u64>,
    tickettype_id: Option<u64>,
    priority_id: Option<u64>,
    outcome_id: Option<u64>,
}

/// `[psa.autotask]`: the API user and default ids.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutotaskSection {
    /// `REVOKE365_AUTOTASK_ZONE_URL` wins.
    zone_url: Option<String>,
    /// The API user (`REVOKE365_AUTOTASK_USERNAME` wins).
    username: Option<String>,
    queue_id: Option<u64>,
    status: Option<u64>,
    priority: Option<u64>,
    note_type: Option<u64>,
    publish: Option<u64>,
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
    /// The client secret, or the certificates (`[m365] certificate_file`).
    pub m365_credential: ClientCredential,
    pub psa: PsaAccounts,
    pub data_dir: PathBuf,
    pub http: HttpSection,
    /// Signs the posts to companies' webhooks (`REVOKE365_WEBHOOK_SECRET`).
    pub webhook_secret: Option<Secret>,
}

/// Where run state and audit files go unless the config or `--data-dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./revoke365-audit";

/// The value of a non-empty environment variable.
fn env_value(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Collects the values a run needs from the environment (or, for identifiers, the file), so
/// that every missing one is named in a single error.
#[derive(Default)]
struct Wanted {
    missing: Vec<String>,
}

impl Wanted {
    fn secret(&mut self, var: &str) -> String {
        self.value(var, None, None)
    }

    fn value(&mut self, var: &str, from_file: Option<String>, key: Option<&str>) -> String {
        match env_value(var).or(from_file.filter(|v| !v.trim().is_empty())) {
            Some(v) => v,
            None => {
                self.missing.push(match key {
                    Some(key) => format!("{var} (or {key} in the config)"),
                    None => var.to_string(),
                });
                String::new()
            }
        }
    }

    fn check(self) -> Result<(), CliError> {
        match self.missing.as_slice() {
            [] => Ok(()),
            [one] => Err(CliError::config(
                one.split(' ').next().unwrap_or(one),
                format!("{one} must be set (secrets are read only from the environment, never from the config file)"),
            )),
            all => Err(CliError::config(
                "environment",
                format!(
                    "these must be set (secrets are read only from the environment, never from the config file): {}",
                    all.join(", ")
                ),
            )),
        }
    }
}

/// A URL from the environment or the file, without trailing slash.
fn url_value(wanted: &mut Wanted, var: &str, from_file: Option<String>, key: &str) -> String {
    wanted
        .value(var, from_file, Some(key))
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The credentials of every PSA some company uses (only those: an MSP on one PSA sets one).
fn psa_accounts(psa: PsaSection, orgs: &[OrgSettings], wanted: &mut Wanted) -> PsaAccounts {
    let uses = |kind: PsaKind| orgs.iter().any(|o| o.psa_kind == kind);
    let connectwise = uses(PsaKind::Connectwise).then(|| {
        let cw = psa.connectwise;
        ConnectWiseCredentials {
            company: wanted.value(
                "REVOKE365_CW_COMPANY",
                cw.company.or(psa.company),
                Some("psa.connectwise.company"),
            ),
            public_key: wanted.value(
                "REVOKE365_CW_PUBLIC_KEY",
                cw.public_key.or(psa.public_key),
                Some("psa.connectwise.public_key"),
            ),
            private_key: Secret::new(wanted.secret("REVOKE365_CW_PRIVATE_KEY")),
            client_id: wanted.value(
                "REVOKE365_CW_CLIENT_ID",
                cw.client_id.or(psa.client_id),
                Some("psa.connectwise.client_id"),
            ),
        }
    });
    let halo = uses(PsaKind::Halo).then(|| {
        let h = psa.halo;
        HaloSettings {
            auth_url: url_value(
                wanted,
                "REVOKE365_HALO_AUTH_URL",
                h.auth_url,
                "psa.halo.auth_url",
            ),
            api_url: url_value(
                wanted,
                "REVOKE365_HALO_API_URL",
                h.api_url,
                "psa.halo.api_url",
            ),
            client_id: wanted.value(
                "REVOKE365_HALO_CLIENT_ID",
                h.client_id,
                Some("psa.halo.client_id"),
            ),
            client_secret: Secret::new(wanted.secret("REVOKE365_HALO_CLIENT_SECRET")),
            tenant: env_value("REVOKE365_HALO_TENANT").or(h.tenant),
            ids: HaloIds {
                site_id: h.site_id,
                tickettype_id: h.tickettype_id,
                priority_id: h.priority_id,
                outcome_id: h.outcome_id,
            },
        }
    });
    let autotask = uses(PsaKind::Autotask).then(|| {
        let a = psa.autotask;
        AutotaskSettings {
            zone_url: env_value("REVOKE365_AUTOTASK_ZONE_URL")
                .or(a.zone_url)
                .unwrap_or_else(|| AUTOTASK_ZONE_URL.to_string())
                .trim()
                .trim_end_matches('/')
                .to_string(),
            integration_code: Secret::new(wanted.secret("REVOKE365_AUTOTASK_INTEGRATION_CODE")),
            username: wanted.value(
                "REVOKE365_AUTOTASK_USERNAME",
                a.username,
                Some("psa.autotask.username"),
            ),
            secret: Secret::new(wanted.secret("REVOKE365_AUTOTASK_SECRET")),
            ids: AutotaskIds {
                queue_id: a.queue_id,
                status: a.status,
                priority: a.priority,
                note_type: a.note_type,
                publish: a.publish,
            },
        }
    });
    PsaAccounts {
        connectwise,
        halo,
        autotask,
    }
}

/// A top-level key written after a `[[company]]` table belongs to that table in TOML: say so
/// instead of "unknown field".
fn misplaced_top_level_key(text: &str) -> Option<String> {
    let value: toml::Table = toml::from_str(text).ok()?;
    let companies = value.get("company")?.as_array()?;
    for key in ["data_dir", "audit_dir"] {
        if companies.iter().any(|c| c.get(key).is_some()) {
            return Some(format!(
                "{key} is inside a [[company]] table (TOML puts every key written after a table header in that table); move it to the top of the file, before any [section]"
            ));
        }
    }
    None
}

/// What a config file says by itself (no environment needed): its companies and where run
/// state is. What `revoke365 runs`, `show` and `org` read from `--config`.
pub struct ConfigBasics {
    pub orgs: Vec<OrgSettings>,
    pub data_dir: PathBuf,
}

/// Reads and checks the file: TOML, keys where they belong, every `[[company]]` valid by
/// the same rules as `revoke365 org put` ([`crate::org_file::check_companies`]).
fn read(path: &Path) -> Result<ConfigFile, CliError> {
    read_with(path, false)
}

/// [`read`], where a file without any `[[company]]` is fine when `first_company` (the
/// first customer being onboarded).
fn read_with(path: &Path, first_company: bool) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config("config", format!("cannot read {}: {e}", path.display())))?;
    if let Some(message) = misplaced_top_level_key(&text) {
        return Err(CliError::config(
            "data_dir",
            format!("{}: {message}", path.display()),
        ));
    }
    let mut file: ConfigFile = toml::from_str(&text)
        .map_err(|e| crate::org_file::parse_error("config", path, &e.to_string()))?;
    // A company's own psa_kind wins; the others take [psa] kind.
    crate::org_file::apply_default_psa_kind(&text, &mut file.company, file.psa.kind);
    if !(first_company && file.company.is_empty()) {
        crate::org_file::check_companies(path, &file.company)?;
    }
    Ok(file)
}

pub fn basics(path: &Path) -> Result<ConfigBasics, CliError> {
    let file = read(path)?;
    Ok(ConfigBasics {
        orgs: file.company,
        data_dir: file
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    })
}

pub fn load(path: &Path) -> Result<Settings, CliError> {
    load_with(path, None)
}

/// [`load`] for `tenant onboard --company`: the config may have no company yet, and the
/// credentials of `new`'s PSA are wanted too.
pub fn load_for_onboarding(path: &Path, new: &OrgSettings) -> Result<Settings, CliError> {
    load_with(path, Some(new))
}

fn load_with(path: &Path, new: Option<&OrgSettings>) -> Result<Settings, CliError> {
    let file = read_with(path, new.is_some())?;
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
    let orgs: Vec<OrgSettings> = file.company;
    let mut wanted = Wanted::default();
    let beside = |p: PathBuf| match path.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let certificates = crate::certificate::configured(
        env_value(crate::certificate::CERTIFICATE_ENV),
        file.m365.certificate_file.map(beside).as_deref(),
        file.m365.next_certificate_file.map(beside).as_deref(),
    )?;
    // With a certificate no client secret is read.
    let m365_credential = match certificates {
        Some(certificates) => certificates,
        None => {
            ClientCredential::Secret(Secret::new(wanted.secret("REVOKE365_M365_CLIENT_SECRET")))
        }
    };
    let with_new: Vec<OrgSettings> = orgs.iter().chain(new).cloned().collect();
    let psa = psa_accounts(file.psa, &with_new, &mut wanted);
    wanted.check()?;
    Ok(Settings {
        orgs,
        urls,
        m365_client_id: file.m365.client_id,
        m365_credential,
        psa,
        data_dir: file
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        http: file.http,
        webhook_secret: env_value("REVOKE365_WEBHOOK_SECRET").map(Secret::new),
    })
}
