//! `revoke365 check`: the checks a run makes before removing anything, alone, for one company
//! — what an MSP runs once per new customer. stdout holds one entry per check with ok/why;
//! exit 0 when every check is ok, 2 when one is not.

use crate::args::{CheckArgs, Format};
use crate::{
    company, config, http_core, org_file, reachable, sandbox, CliError, EXIT_BAD_INPUT,
    EXIT_SUCCESS,
};
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::config::Recheck;
use revoke365::model::{InvalidRequest, OrgSettings};
use revoke365::ports::Connector;
use revoke365::steps::preflight::{preflight, send_test, Check, Outcome, Preflight, Subject};
use serde_json::{json, Value};

pub async fn check(args: CheckArgs) -> Result<u8, CliError> {
    let (orgs, connector, _sandbox, certificates) = match (&args.config, &args.sandbox) {
        (Some(path), _) => {
            let s = config::load(path)?;
            // As before a run: a URL nobody answers at is named in seconds, not after the
            // HTTP client's retries.
            reachable::check(&s.urls, &s.psa).await?;
            let certificates = crate::certificate::expiry_checks(&s.m365_credential);
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
            (s.orgs, connector, None, certificates)
        }
        (None, Some(fixture)) => {
            let sb = sandbox::start(fixture).await?;
            let connector = sb.connector(http_core(None, config::HttpSection::default())?);
            (vec![sb.org.clone()], connector, Some(sb), Vec::new())
        }
        (None, None) => {
            return Err(CliError::config(
                "config",
                "pass --config FILE for a real tenant or --sandbox FIXTURE for the simulator",
            ))
        }
    };
    let org = company(&orgs, &args.company_id)?;
    org_file::print_list_warnings(std::slice::from_ref(org));
    if let Some(error) = args
        .ticket
        .as_deref()
        .and_then(|t| org.psa_kind.ticket_id_error(t))
    {
        return Err(InvalidRequest::new("ticket_id", error).into());
    }
    let conns = connector.connect(org).await.map_err(|e| CliError {
        code: "internal".into(),
        field: None,
        message: format!(
            "cannot build the clients for company '{}': {e}",
            org.company_id
        ),
        exit: EXIT_BAD_INPUT,
    })?;
    let subject = Subject {
        org,
        ticket_id: args.ticket.as_deref(),
        requestor: None,
    };
    let mut checked = preflight(conns.tenant(), conns.notify(), &subject).await;
    // Each certificate's expiry first: an expired one is why the credentials check failed.
    checked.checks.splice(0..0, certificates);
    if args.send_test {
        checked.checks.push(send_test(conns.notify(), org).await);
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&as_json(org, &checked)).expect("JSON")
        ),
        Format::Table => print!("{}", as_table(org, &checked)),
    }
    Ok(if checked.all_ok() {
        EXIT_SUCCESS
    } else {
        EXIT_BAD_INPUT
    })
}

pub(crate) fn as_json(org: &OrgSettings, checked: &Preflight) -> Value {
    let checks: Vec<Value> = checked.checks.iter().map(check_json).collect();
    json!({"company_id": org.company_id, "ok": checked.all_ok(), "checks": checks})
}

fn check_json(check: &Check) -> Value {
    let mut entry = json!({"check": check.name, "area": check.area, "ok": check.is_ok()});
    match &check.outcome {
        Outcome::Ok(found) => entry["detail"] = json!(found),
        Outcome::Warning(why) => entry["warning"] = json!(why),
        Outcome::Problem(p) => {
            entry["why"] = json!(p.message);
            entry["code"] = json!(p.code.as_str());
            entry["field"] = json!(p.field);
        }
        Outcome::Unchecked { why, .. } => {
            entry["why"] = json!(format!("not checked: {why}"));
        }
    }
    entry
}

pub(crate) fn as_table(org: &OrgSettings, checked: &Preflight) -> String {
    let width = checked
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "Checks for company '{}' ({})\n",
        org.company_id, org.company_name
    );
    for c in &checked.checks {
        let mark = match c.outcome {
            Outcome::Ok(_) => "ok  ",
            Outcome::Warning(_) => "warn",
            _ => "FAIL",
        };
        out.push_str(&format!("{mark}  {:width$}  {}\n", c.name, c.detail()));
    }
    out.push_str(if checked.all_ok() {
        "All checks passed.\n"
    } else {
        "Some checks did not pass.\n"
    });
    out
}
