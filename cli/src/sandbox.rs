//! `--sandbox FIXTURE`: the simulator in-process on loopback, with the real clients pointed at it.
//! A fixture's tenant lives in the data directory: every command against the same fixture and
//! data directory goes on from what the last one left.

use crate::CliError;
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::http::HttpCore;
use revoke365::config::Recheck;
use revoke365::config::{
    AutotaskSettings, ConnectWiseCredentials, HaloSettings, PsaAccounts, Secret, ServiceUrls,
};
use revoke365::model::OrgSettings;
use revoke365_sim::{SimHandle, SimOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Sandbox {
    pub sim: SimHandle,
    pub org: OrgSettings,
    pub urls: ServiceUrls,
    pub client_id: String,
    pub client_secret: Secret,
    /// Every PSA the simulator plays, so a fixture's `psa_kind` picks any of them.
    pub psa: PsaAccounts,
}

fn random_secret() -> String {
    (0..32).map(|_| fastrand::alphanumeric()).collect()
}

/// Starts the simulator loaded with the fixture at `path`, its state kept in memory only.
pub async fn start(path: &Path) -> Result<Sandbox, CliError> {
    launch(path).await
}

/// Where the tenant of the fixture at `fixture` is kept in `data_dir`: one file per fixture,
/// named by its canonical path and its content. Two fixtures that share a tenant id (the
/// samples in `events/` do) keep apart, and an edited fixture starts a tenant of its own.
pub fn kept_state(data_dir: &Path, fixture: &Path) -> Result<PathBuf, CliError> {
    use sha2::{Digest, Sha256};
    let bad = |m: String| CliError::config("sandbox", format!("{}: {m}", fixture.display()));
    let canonical = std::fs::canonicalize(fixture).map_err(|e| bad(e.to_string()))?;
    let content = std::fs::read(&canonical).map_err(|e| bad(e.to_string()))?;
    let mut hash = Sha256::new();
    hash.update(canonical.to_string_lossy().as_bytes());
    hash.update([0]);
    hash.update(&content);
    let key = hex::encode(&hash.finalize()[..8]);
    let stem = canonical
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(std::path::absolute(data_dir)
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .join("sandbox")
        .join(format!("{stem}-{key}.tenant.json")))
}

/// Starts the simulator loaded with the fixture at `path`, going on from the tenant `state`
/// holds when it exists (what the last command against it left). Its state is saved to `state`
/// after every change, so the next command, or a resumed interrupted run, finds the tenant as
/// this one leaves it.
pub async fn start_kept(path: &Path, state: &Path) -> Result<Sandbox, CliError> {
    let sb = launch(path).await?;
    let sim = &sb.sim;
    let bad = |m: String| CliError::config("sandbox", format!("{}: {m}", path.display()));
    if state.exists() {
        sim.restore_from(state).map_err(|e| {
            CliError::config(
                "sandbox",
                format!(
                    "cannot restore the sandbox tenant from {}: {e}",
                    state.display()
                ),
            )
        })?;
    }
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    }
    sim.persist_to(state).map_err(|e| {
        CliError::config(
            "sandbox",
            format!("cannot save the sandbox tenant to {}: {e}", state.display()),
        )
    })?;
    Ok(sb)
}

async fn launch(path: &Path) -> Result<Sandbox, CliError> {
    let bad = |m: String| CliError::config("sandbox", format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let org = OrgSettings::from_fixture(&json).map_err(bad)?;
    let fixture = revoke365_sim::Fixture::from_json(&text).map_err(bad)?;
    // Fresh credentials each run: the simulator checks them like the real services would.
    let client_secret = random_secret();
    let cw_private_key = random_secret();
    let halo_client_secret = random_secret();
    let autotask_secret = random_secret();
    let autotask_username = "revoke365@sandbox.example";
    let sim = revoke365_sim::start(
        fixture,
        SimOptions {
            client_secret: Some(client_secret.clone()),
            cw_private_key: Some(cw_private_key.clone()),
            halo_client_secret: Some(halo_client_secret.clone()),
            autotask_secret: Some(autotask_secret.clone()),
            autotask_username: Some(autotask_username.into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| bad(format!("cannot start the simulator: {e}")))?;
    let base = sim.base_url.clone();
    let psa = PsaAccounts {
        connectwise: Some(ConnectWiseCredentials {
            company: "sandbox".into(),
            public_key: "sandbox-public".into(),
            private_key: Secret::new(cw_private_key),
            client_id: "00000000-0000-0000-0000-000000000000".into(),
        }),
        halo: Some(HaloSettings {
            auth_url: format!("{base}/halo/auth"),
            api_url: format!("{base}/halo/api"),
            client_id: "revoke365-sandbox".into(),
            client_secret: Secret::new(halo_client_secret),
            tenant: fixture_halo_tenant(&json),
            ids: Default::default(),
        }),
        autotask: Some(AutotaskSettings {
            zone_url: format!("{base}/atservicesrest"),
            integration_code: Secret::new("SANDBOX-INTEGRATION-CODE"),
            username: autotask_username.into(),
            secret: Secret::new(autotask_secret),
            ids: Default::default(),
        }),
    };
    Ok(Sandbox {
        urls: ServiceUrls::all_at(&base),
        sim,
        org,
        client_id: "revoke365-sandbox".into(),
        client_secret: Secret::new(client_secret),
        psa,
    })
}

/// A hosted HaloPSA fixture (`sim.halo_tenant`) wants its tenant on the token request.
fn fixture_halo_tenant(fixture: &Value) -> Option<String> {
    fixture["sim"]["halo_tenant"].as_str().map(str::to_string)
}

impl Sandbox {
    /// The HTTP connector that points every client at this simulator.
    pub fn connector(&self, core: std::sync::Arc<HttpCore>) -> HttpConnector {
        HttpConnector {
            core,
            urls: self.urls.clone(),
            m365_client_id: self.client_id.clone(),
            m365_credential: revoke365::config::ClientCredential::Secret(
                self.client_secret.clone(),
            ),
            psa: self.psa.clone(),
            recheck: Recheck::default(),
            shard_time: DEFAULT_SHARD_TIME,
            webhook_secret: std::env::var("REVOKE365_WEBHOOK_SECRET")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(Secret::new),
        }
    }

    /// Writes what the simulated PSA and mailbox received from run `run_id` next to the audit
    /// file; returns the paths written. Only this run's note and email count (each names its
    /// run): a run that wrote none (a dry run, a dry restore) must not pass off the last run's
    /// as its own.
    /// The PSA note and the email whose text carries `marker` (a run id, a digest's marker),
    /// written as `<name>.psa-note.txt` and `<name>.email.html` in `dir`: only what this
    /// command sent, never an older one's.
    pub fn write_artifacts(
        &self,
        dir: &Path,
        marker: &str,
        name: &str,
        ticket_id: Option<&str>,
    ) -> std::io::Result<Vec<(String, PathBuf)>> {
        let state = self.sim.state();
        let mut written = Vec::new();
        let ticket = state["tickets"].as_array().and_then(|ts| {
            ts.iter()
                .find(|t| Some(t["id"].as_str().unwrap_or_default()) == ticket_id)
                .cloned()
        });
        let of_this_run = |text: &Value| text.as_str().is_some_and(|t| t.contains(marker));
        if let Some(note) = ticket.as_ref().and_then(|t| {
            t["notes"]
                .as_array()?
                .iter()
                .rfind(|n| of_this_run(&n["text"]))
                .cloned()
        }) {
            let path = dir.join(format!("{name}.psa-note.txt"));
            crate::write_owner_only(&path, note["text"].as_str().unwrap_or_default())?;
            written.push(("PSA note".to_string(), path));
        }
        if let Some(mail) = state["sent_mail"]
            .as_array()
            .and_then(|m| m.iter().rfind(|m| of_this_run(&m["body"])).cloned())
        {
            let path = dir.join(format!("{name}.email.html"));
            crate::write_owner_only(&path, mail["body"].as_str().unwrap_or_default())?;
            written.push(("email".to_string(), path));
        }
        Ok(written)
    }
}
