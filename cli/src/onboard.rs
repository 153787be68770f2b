//! `revoke365 tenant onboard --company-id C`: from "new customer" to "ready" in one command.
//! Prints the admin-consent URL of the multi-tenant app for the customer's tenant, waits until
//! the app can sign in there (or, `--check-only`, does not wait), runs `check`'s checks (app
//! roles, the Exchange role — naming the exact step when it is missing — the sender mailbox,
//! the PSA company, each certificate's expiry) and, once every one passes, writes the
//! company's `[[company]]` block (and, `--aws`, its item in the deployment's org table).

use crate::args::{Format, OnboardArgs};
use crate::check::{as_json, as_table};
use crate::{
    company, config, http_core, org_file, reachable, sandbox, CliError, EXIT_BAD_INPUT,
    EXIT_SUCCESS,
};
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::config::Recheck;
use revoke365::model::OrgSettings;
use revoke365::ports::Connector;
use revoke365::steps::preflight::{preflight, Outcome, Preflight};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the app's sign-in is tried while waiting for the consent.
const CONSENT_POLL: Duration = Duration::from_secs(5);

pub async fn onboard(args: OnboardArgs) -> Result<u8, CliError> {
    let (org, connector, login, config_path, certificates, _sandbox) =
        match (&args.config, &args.sandbox) {
            (Some(path), _) => {
                let (s, org) = match &args.company {
                    Some(file) => {
                        let org = new_company(file, &args.company_id)?;
                        (config::load_for_onboarding(path, &org)?, org)
                    }
                    None => {
                        let s = config::load(path)?;
                        let org = company(&s.orgs, &args.company_id)?.clone();
                        (s, org)
                    }
                };
                reachable::check(&s.urls, &s.psa).await?;
                let certificates = crate::certificate::expiry_checks(&s.m365_credential);
                let login = s.urls.login.clone();
                let connector = HttpConnector {
                    core: http_core(None, s.http)?,
                    urls: s.urls,
                    m365_client_id: s.m365_client_id,
                    m365_credential: s.m365_credential,
                    psa: s.psa,
                    recheck: Recheck::default(),
                    shard_time: DEFAULT_SHARD_TIME,
                    webhook_secret: s.webhook_secret,
                };
                (
                    org,
                    connector,
                    login,
                    Some(path.clone()),
                    certificates,
                    None,
                )
            }
            (None, Some(fixture)) => {
                let sb = sandbox::start(fixture).await?;
                let connector = sb.connector(http_core(None, config::HttpSection::default())?);
                let org = match &args.company {
                    Some(file) => new_company(file, &args.company_id)?,
                    None => company(std::slice::from_ref(&sb.org), &args.company_id)?.clone(),
                };
                (
                    org,
                    connector,
                    sb.urls.login.clone(),
                    None,
                    Vec::new(),
                    Some(sb),
                )
            }
            (None, None) => {
                return Err(CliError::config(
                    "config",
                    "pass --config FILE for a real tenant or --sandbox FIXTURE for the simulator",
                ))
            }
        };
    let consent_url = format!(
        "{}/{}/adminconsent?client_id={}",
        login.trim_end_matches('/'),
        urlencoding_encode(&org.tenant_id),
        urlencoding_encode(&connector.m365_client_id)
    );
    eprintln!(
        "onboarding '{}' ({}): a Global Administrator of tenant {} consents to the app at\n  {consent_url}",
        org.company_id, org.company_name, org.tenant_id
    );
    let conns = connector.connect(&org).await.map_err(|e| {
        crate::internal(format!(
            "cannot build the clients for company '{}': {e}",
            org.company_id
        ))
    })?;
    let subject = revoke365::steps::preflight::Subject {
        org: &org,
        ticket_id: None,
        requestor: None,
    };
    let mut checked = preflight(conns.tenant(), conns.notify(), &subject).await;
    if !args.check_only {
        // Until the consent is given the app cannot sign in to the tenant.
        let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
        while !signs_in(&checked) && Instant::now() < deadline {
            eprintln!("waiting for the consent (the app cannot sign in to the tenant yet)…");
            tokio::time::sleep(CONSENT_POLL.min(deadline - Instant::now())).await;
            checked = preflight(conns.tenant(), conns.notify(), &subject).await;
        }
    }
    checked.checks.splice(0..0, certificates);
    explain_exchange_role(&mut checked, &connector.m365_client_id);

    let block = company_block(&org)?;
    let target = args.out.clone().or_else(|| {
        // A company new to the config goes into it.
        config_path.filter(|_| args.company.is_some())
    });
    let written = match (&target, checked.all_ok()) {
        (Some(path), true) => Some(write_block(path, &org, &block)?),
        _ => None,
    };
    let org_table = match args.aws && checked.all_ok() {
        true => {
            let tables = crate::aws_tables::connect().await?;
            tables
                .orgs
                .put(std::slice::from_ref(&org))
                .await
                .map_err(|e| CliError {
                    code: "store_unavailable".into(),
                    field: None,
                    message: format!("cannot write to {}: {e}", tables.orgs.table()),
                    exit: EXIT_BAD_INPUT,
                })?;
            eprintln!("wrote {} to {}", org.company_id, tables.orgs.table());
            Some(tables.orgs.table().to_string())
        }
        false => None,
    };
    match args.format {
        Format::Json => {
            let mut out = as_json(&org, &checked);
            out["consent_url"] = serde_json::json!(consent_url);
            out["company_block"] = serde_json::json!(block);
            out["written_to"] =
                serde_json::json!(written.as_ref().map(|p| p.display().to_string()));
            out["org_table"] = serde_json::json!(org_table);
            println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        }
        Format::Table => {
            print!("{}", as_table(&org, &checked));
            match &written {
                Some(path) => println!("Company block written to {}.", path.display()),
                None if checked.all_ok() => print!("Company block:\n\n{block}"),
                None => println!("Nothing written: fix what failed and run it again."),
            }
        }
    }
    Ok(if checked.all_ok() {
        EXIT_SUCCESS
    } else {
        EXIT_BAD_INPUT
    })
}

/// The app got its tokens (the consent is there).
fn signs_in(checked: &Preflight) -> bool {
    checked
        .checks
        .iter()
        .any(|c| c.name == "m365_credentials" && c.is_ok())
}

/// A failed Exchange check names the exact step that assigns the role.
fn explain_exchange_role(checked: &mut Preflight, client_id: &str) {
    for check in &mut checked.checks {
        if check.name != "exchange_access" {
            continue;
        }
        if let Outcome::Problem(problem) = &mut check.outcome {
            problem.message = format!(
                "{} — assign the app's service principal an Exchange role in this tenant: Entra admin center → Roles and administrators → Exchange Recipient Administrator → Add assignments → the enterprise app; or in Exchange Online PowerShell: New-ServicePrincipal -AppId {client_id} -ObjectId <enterprise app object id> -DisplayName Revoke365; Add-RoleGroupMember -Identity \"Recipient Management\" -Member {client_id}; (or New-ManagementRoleAssignment -App {client_id} -Role \"Mail Recipients\")",
                problem.message
            );
        }
    }
}

/// The one company of `file` (TOML or JSON, as `org put` reads) whose id is `company_id`.
fn new_company(file: &Path, company_id: &str) -> Result<OrgSettings, CliError> {
    let orgs = org_file::read(file)?;
    company(&orgs, company_id).cloned()
}

/// The company as a `[[company]]` block, checked by reading it back.
fn company_block(org: &OrgSettings) -> Result<String, CliError> {
    #[derive(serde::Serialize)]
    struct Block<'a> {
        company: [&'a OrgSettings; 1],
    }
    let text = toml::to_string(&Block { company: [org] })
        .map_err(|e| crate::internal(format!("cannot write the company block: {e}")))?;
    #[derive(serde::Deserialize)]
    struct Back {
        company: Vec<OrgSettings>,
    }
    let back: Back = toml::from_str(&text)
        .map_err(|e| crate::internal(format!("the company block does not read back: {e}")))?;
    if back.company.first() != Some(org) {
        return Err(crate::internal(
            "the company block does not read back the same".into(),
        ));
    }
    Ok(text)
}

/// Appends the block to `path` unless a company with this id is already there.
fn write_block(path: &Path, org: &OrgSettings, block: &str) -> Result<PathBuf, CliError> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    if !existing.is_empty() {
        let value: toml::Table = toml::from_str(&existing)
            .map_err(|e| CliError::config("out", format!("{} is not TOML: {e}", path.display())))?;
        let present = value
            .get("company")
            .and_then(|c| c.as_array())
            .is_some_and(|companies| {
                companies
                    .iter()
                    .any(|c| c.get("company_id").and_then(|v| v.as_str()) == Some(&org.company_id))
            });
        if present {
            return Ok(path.to_path_buf());
        }
    }
    let separator = if existing.is_empty() || existing.ends_with("\n\n") {
        ""
    } else if existing.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    std::fs::write(path, format!("{existing}{separator}{block}"))
        .map_err(|e| CliError::config("out", format!("cannot write {}: {e}", path.display())))?;
    Ok(path.to_path_buf())
}

fn urlencoding_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
