//! `--sandbox FIXTURE`: the simulator in-process on loopback, with the real clients pointed at it.

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

/// Starts the simulator loaded with the fixture at `path`. Its tenant's state is saved to
/// `state` after every change, so that an interrupted or killed run resumes against the tenant
/// it left; with `restore`, the simulator first goes on from what `state` holds.
pub async fn start_kept(path: &Path, state: &Path, restore: bool) -> Result<Sandbox, CliError> {
    let sb = launch(path).await?;
    let sim = &sb.sim;
    let bad = |m: String| CliError::config("sandbox", format!("{}: {m}", path.display()));
    if restore && state.exists() {
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
            m365_client_secret: self.client_secret.clone(),
            psa: self.psa.clone(),
            recheck: Recheck::default(),
            shard_time: DEFAULT_SHARD_TIME,
            webhook_secret: std::env::var("REVOKE365_WEBHOOK_SECRET")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(Secret::new),
        }
    }

    /// Writes what the simulated PSA and mailbox received next to the audit file; returns the
    /// paths written.
    pub fn write_artifacts(
        &self,
        dir: &Path,
        run_id: &str,
        ticket_id: Option<&str>,
    ) -> std::io::Result<Vec<(String, PathBuf)>> {
        let state = self.sim.state();
        let mut written = Vec::new();
        let ticket = state["tickets"].as_array().and_then(|ts| {
            ts.iter()
                .find(|t| Some(t["id"].as_str().unwrap_or_default()) == ticket_id)
                .cloned()
        });
        if let Some(note) = ticket
            .as_ref()
            .and_then(|t| t["notes"].as_array()?.last().cloned())
        {
            let path = dir.join(format!("{run_id}.psa-note.txt"));
            crate::write_owner_only(&path, note["text"].as_str().unwrap_or_default())?;
            written.push(("PSA note".to_string(), path));
        }
        if let Some(mail) = state["sent_mail"]
            .as_array()
            .and_then(|m| m.last().cloned())
        {
            let path = dir.join(format!("{run_id}.email.html"));
            crate::write_owner_only(&path, mail["body"].as_str().unwrap_or_default())?;
            written.push(("email".to_string(), path));
        }
        Ok(written)
    }
}
