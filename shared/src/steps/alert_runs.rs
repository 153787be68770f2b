//! One contain run per alerted user, through the ordinary intake, at most once per alert: an
//! alert seen again within [`ALERT_DEDUPE_WINDOW`] (polled again, a re-sent Sentinel payload)
//! returns the run it started. Within the company's caps ([`AlertSettings`]): users it never
//! contains are reported only, and users beyond the per-alert cap or the hourly budget await
//! an operator's approval, with nothing removed for them.

use super::alert_approval::{tell_approval, ApprovalNotice, ApprovalNoticeSent};
use super::alert_users::{AlertRun, HeldUser, Reach, Reached};
use super::intake::{intake_as, Accepted, IntakeError};
use crate::model::{AlertSettings, AlertedUser, OrgSettings, ALERT_DEDUPE_WINDOW};
use crate::ports::{AlertLedger, Connector, Queue, RunStore};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// What one alert's users came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertOutcome {
    /// The users contained: the run started, or the one the alert started before.
    pub runs: Vec<AlertRun>,
    /// Users beyond `max_contain_per_alert` or the hourly budget: nothing removed for them.
    pub awaiting_approval: Vec<HeldUser>,
    /// Users the company's `never_contain` names: reported, never contained automatically.
    pub never_contain: Vec<HeldUser>,
    /// The approval notice: where it went, or why it did not (none when nobody was held).
    pub approval_notices: Vec<ApprovalNoticeSent>,
}

impl AlertOutcome {
    fn absorb(&mut self, other: AlertOutcome) {
        self.runs.extend(other.runs);
        self.awaiting_approval.extend(other.awaiting_approval);
        self.never_contain.extend(other.never_contain);
        self.approval_notices.extend(other.approval_notices);
    }
}

/// What an alert's runs are started with: the stores, the queue, the caller recorded on the
/// runs, and the company (whose caps apply).
#[derive(Clone, Copy)]
pub struct AlertIntake<'a> {
    pub store: &'a dyn RunStore,
    pub ledger: &'a dyn AlertLedger,
    pub queue: &'a dyn Queue,
    pub principal: Option<&'a str>,
    pub org: &'a OrgSettings,
}

/// Whether the directory knows `user` under an address the company never contains (its UPN,
/// primary address or a proxy address): `Ok(None)` when it does not, or when no directory is
/// reachable here at all; `Err` when it could not be asked (the user is then not contained
/// automatically either).
async fn never_contained_as(
    reached: &mut Reached<'_>,
    org: &OrgSettings,
    settings: &AlertSettings,
    user: &AlertedUser,
) -> Result<Option<String>, String> {
    if settings.never_contain.is_empty() {
        return Ok(None);
    }
    if matches!(reached.reach, Reach::Nowhere) {
        // No directory here: compared by the alert's own address only.
        return Ok(None);
    }
    let connections = reached.connections(org).await?;
    let lookup = connections
        .directory
        .find_user(&user.user_email)
        .await
        .map_err(|e| e.to_string())?;
    let Some(found) = lookup.user() else {
        return Ok(None);
    };
    let addresses = std::iter::once(found.user_principal_name.as_str())
        .chain(found.mail.as_deref())
        .chain(found.proxy_addresses.iter().map(|p| {
            p.split_once(':')
                .filter(|(kind, _)| kind.eq_ignore_ascii_case("smtp"))
                .map_or(p.as_str(), |(_, address)| address)
        }));
    Ok(addresses
        .into_iter()
        .find(|a| settings.never_contains(a))
        .map(str::to_string))
}

/// The ledger's key of an alert and user: a fixed-length hash, whatever the ids hold.
fn ledger_key(company_id: &str, user: &AlertedUser) -> String {
    hex::encode(Sha256::digest(user.dedupe_key(company_id).as_bytes()))
}

/// The ledger's key of a user an alert left awaiting approval: on a re-sent alert the same
/// user awaits again, whatever the hour's budget has become.
fn held_key(company_id: &str, user: &AlertedUser) -> String {
    let key = format!("{}:awaiting_approval", user.dedupe_key(company_id));
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The clock hour (UTC) the hourly budget counts in.
fn budget_hour(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H").to_string()
}

/// The CloudWatch namespace and metric of the contain runs started from alerts, with the
/// dimension that names the function (the template's `ContainRunRateAlarm` watches them).
pub const CONTAIN_METRIC_NAMESPACE: &str = "Revoke365";
pub const CONTAIN_METRIC: &str = "ContainRunsStarted";
pub const CONTAIN_METRIC_DIMENSION: &str = "Function";

/// One contain run started by `function`, as a CloudWatch embedded-metric log line.
fn contain_metric_line(function: &str, company_id: &str, source: &str) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": CONTAIN_METRIC_NAMESPACE,
                "Dimensions": [[CONTAIN_METRIC_DIMENSION]],
                "Metrics": [{"Name": CONTAIN_METRIC, "Unit": "Count"}],
            }],
        },
        CONTAIN_METRIC_DIMENSION: function,
        CONTAIN_METRIC: 1,
        "company_id": company_id,
        "alert_source": source,
    })
}

/// Logs one contain run started from an alert as an embedded-metric line. Only in Lambda,
/// whose stdout is the function's log group: the CLI's stdout is its JSON output.
fn count_contain_run(company_id: &str, source: &str) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else {
        return;
    };
    println!("{}", contain_metric_line(&function, company_id, source));
}

/// Starts the contain runs of one alert's users (in the alert's order, each named once) within
/// the company's caps: `never_contain` users are held, up to `max_contain_per_alert` users
/// are contained while the hour's budget lasts, and the rest await approval. Users held are
/// remembered, so the same alert again starts nothing new; the approval notice (a PSA note
/// and an email naming them) goes once per alert.
pub async fn contain_alert(
    intake: AlertIntake<'_>,
    reach: Reach<'_>,
    users: &[AlertedUser],
    now: DateTime<Utc>,
) -> Result<AlertOutcome, IntakeError> {
    let settings = intake.org.alert_settings();
    let mut reached = Reached::new(reach);
    let mut outcome = AlertOutcome::default();
    let mut contained = 0u32;
    for user in users {
        if settings.never_contains(&user.user_email) {
            warn!(alert_id = %user.alert_id, "alert names a never_contain user; reported only");
            outcome.never_contain.push(HeldUser::new(user));
            continue;
        }
        if let Some(run) = earlier_run(intake, user).await? {
            contained += 1;
            outcome.runs.push(run);
            continue;
        }
        match admit(intake, &mut reached, &settings, user, contained, now).await? {
            Admission::Contain => {}
            Admission::NeverContain => {
                outcome.never_contain.push(HeldUser::new(user));
                continue;
            }
            Admission::AwaitApproval => {
                outcome.awaiting_approval.push(HeldUser::new(user));
                continue;
            }
        }
        let run = start_new_run(intake, user).await?;
        if run.run_id.is_some() {
            contained += 1;
        }
        outcome.runs.push(run);
    }
    if !outcome.awaiting_approval.is_empty() || !outcome.never_contain.is_empty() {
        if let Some(first) = users.first() {
            let notice = ApprovalNotice {
                org: intake.org,
                settings: &settings,
                alert: first,
                contained: &outcome.runs,
                awaiting: &outcome.awaiting_approval,
                never_contain: &outcome.never_contain,
            };
            outcome
                .approval_notices
                .push(tell_approval(intake.ledger, &mut reached, &notice).await?);
        }
    }
    Ok(outcome)
}

/// What becomes of a user an alert names who has no run of it yet.
enum Admission {
    Contain,
    NeverContain,
    AwaitApproval,
}

/// Whether `user` is contained now: not held by this alert before, within the per-alert cap,
/// not a `never_contain` user under another address, and given a place in the hour's budget
/// (taken here). A user held for a cap is remembered as held.
async fn admit(
    intake: AlertIntake<'_>,
    reached: &mut Reached<'_>,
    settings: &AlertSettings,
    user: &AlertedUser,
    contained: u32,
    now: DateTime<Utc>,
) -> Result<Admission, IntakeError> {
    let company_id = &intake.org.company_id;
    let held = held_key(company_id, user);
    if intake.ledger.alert_marked(&held).await? {
        return Ok(Admission::AwaitApproval);
    }
    if contained < settings.max_contain_per_alert {
        match never_contained_as(reached, intake.org, settings, user).await {
            Ok(None) => {}
            Ok(Some(address)) => {
                warn!(alert_id = %user.alert_id, %address, "alert names a never_contain user by another address; reported only");
                return Ok(Admission::NeverContain);
            }
            Err(e) => {
                // Not known not to be a never_contain user: an operator decides. Not
                // remembered, so the alert sent again asks the directory again.
                warn!(alert_id = %user.alert_id, reason = %e, "never_contain lookup failed; the user awaits approval");
                return Ok(Admission::AwaitApproval);
            }
        }
        if intake
            .ledger
            .take_contain_budget(company_id, &budget_hour(now), settings.max_contain_per_hour)
            .await?
        {
            return Ok(Admission::Contain);
        }
    }
    warn!(alert_id = %user.alert_id, company_id = %company_id, "contain cap reached; the user awaits approval");
    intake
        .ledger
        .mark_alert(&held, now + ALERT_DEDUPE_WINDOW)
        .await?;
    Ok(Admission::AwaitApproval)
}

/// Starts the contain run for every user of `users` the company's caps allow, one alert (a
/// run of consecutive users with the same alert id) at a time.
pub async fn contain_alerts(
    intake: AlertIntake<'_>,
    reach: Reach<'_>,
    users: &[AlertedUser],
    now: DateTime<Utc>,
) -> Result<AlertOutcome, IntakeError> {
    let mut outcome = AlertOutcome::default();
    for alert in users.chunk_by(|a, b| a.source == b.source && a.alert_id == b.alert_id) {
        outcome.absorb(contain_alert(intake, reach, alert, now).await?);
    }
    Ok(outcome)
}

/// The run this alert started for `user` before, if it did and the run still exists.
async fn earlier_run(
    intake: AlertIntake<'_>,
    user: &AlertedUser,
) -> Result<Option<AlertRun>, IntakeError> {
    let key = ledger_key(&intake.org.company_id, user);
    let Some(run_id) = intake.ledger.alert_run(&key).await? else {
        return Ok(None);
    };
    let Some(run) = intake.store.get_run(&run_id).await? else {
        return Ok(None);
    };
    info!(run_id = %run.run_id, alert_id = %user.alert_id, "alert seen before; returning its run");
    let mut outcome = AlertRun::new(user);
    outcome.run_id = Some(run.run_id);
    outcome.status = Some(run.status);
    Ok(Some(outcome))
}

/// Starts the contain run for `user` (the principal recorded and checked against the
/// company's allow-list) and remembers it for the alert. A request intake refuses (bad input,
/// a caller not allowed) is returned with its reason and no run; store and queue failures are
/// errors (the caller tries again; the ledger keeps the retry from starting a second run).
async fn start_new_run(
    intake: AlertIntake<'_>,
    user: &AlertedUser,
) -> Result<AlertRun, IntakeError> {
    let company_id = &intake.org.company_id;
    let mut outcome = AlertRun::new(user);
    let accepted = match intake_as(
        intake.store,
        intake.queue,
        intake.principal,
        &user.request_body(company_id),
        None,
    )
    .await
    {
        Ok(accepted) => accepted,
        Err(e @ (IntakeError::Invalid(_) | IntakeError::Refused(_))) => {
            warn!(alert_id = %user.alert_id, alert_source = user.source.as_str(), reason = %e, "alert refused by intake");
            outcome.error = Some(e.to_string());
            return Ok(outcome);
        }
        Err(e) => return Err(e),
    };
    let Accepted { run, created } = accepted;
    let key = ledger_key(company_id, user);
    intake
        .ledger
        .remember_alert_run(&key, &run.run_id, Utc::now() + ALERT_DEDUPE_WINDOW)
        .await?;
    info!(run_id = %run.run_id, company_id = %company_id, alert_id = %user.alert_id, alert_source = user.source.as_str(), created, "alert run");
    if created {
        count_contain_run(company_id, user.source.as_str());
    }
    outcome.run_id = Some(run.run_id);
    outcome.status = Some(run.status);
    outcome.created = created;
    Ok(outcome)
}

/// What a Sentinel incident payload started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelOutcome {
    pub company_id: String,
    pub incident_id: String,
    /// Why the incident started nothing (closed, benign, below `min_severity`), when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub runs: Vec<AlertRun>,
    pub awaiting_approval: Vec<HeldUser>,
    pub never_contain: Vec<HeldUser>,
    pub approval_notices: Vec<ApprovalNoticeSent>,
    /// Entities that name no user of the company's tenant, and why.
    pub skipped: Vec<String>,
}

/// A Sentinel playbook's incident payload (see [`crate::model::sentinel_incident`]): one
/// contain run per Account or Mailbox entity of the company's tenant, as `principal`, within
/// the company's caps. The same incident sent again returns the runs it started. Bad input
/// (checked before anything is read), an unknown company or a caller not allowed start
/// nothing; so does a closed or benign incident, or one below the company's `min_severity`
/// (`ignored` says why). `connector` reaches the company's PSA and mailer for the approval
/// notice, when one is due.
pub async fn intake_sentinel(
    store: &dyn RunStore,
    ledger: &dyn AlertLedger,
    queue: &dyn Queue,
    connector: Option<&dyn Connector>,
    principal: Option<&str>,
    body: &serde_json::Value,
) -> Result<SentinelOutcome, IntakeError> {
    let company_id = crate::model::sentinel_incident(body, None)?.company_id;
    let Some(org) = store.org_settings(&company_id).await? else {
        return Err(crate::model::InvalidRequest::new(
            "company_id",
            format!("unknown company '{company_id}'"),
        )
        .into());
    };
    if let Err(refused) = crate::authorize::authorize(&org, principal) {
        crate::authorize::log_refusal(&refused, &company_id);
        return Err(refused.into());
    }
    let incident = crate::model::sentinel_incident(body, Some(&org.tenant_id))?;
    let mut outcome = SentinelOutcome {
        company_id,
        incident_id: incident.incident_id.clone(),
        ignored: incident.ignored_by(&org.alert_settings()),
        runs: Vec::new(),
        awaiting_approval: Vec::new(),
        never_contain: Vec::new(),
        approval_notices: Vec::new(),
        skipped: incident.skipped,
    };
    if let Some(why) = &outcome.ignored {
        info!(company_id = %outcome.company_id, incident_id = %outcome.incident_id, %why, "sentinel incident ignored");
        return Ok(outcome);
    }
    if incident.users.is_empty() {
        return Err(crate::model::InvalidRequest::new(
            "entities",
            format!(
                "no Account or Mailbox entity names a user of this company's tenant ({})",
                if outcome.skipped.is_empty() {
                    "no such entity".to_string()
                } else {
                    outcome.skipped.join("; ")
                }
            ),
        )
        .into());
    }
    let intake = AlertIntake {
        store,
        ledger,
        queue,
        principal,
        org: &org,
    };
    let reach = connector.map_or(Reach::Nowhere, Reach::Connector);
    let contained = contain_alert(intake, reach, &incident.users, Utc::now()).await?;
    outcome.runs = contained.runs;
    outcome.awaiting_approval = contained.awaiting_approval;
    outcome.never_contain = contained.never_contain;
    outcome.approval_notices = contained.approval_notices;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line the functions log is the metric the template's alarm watches.
    #[test]
    fn the_contain_metric_line_is_the_one_the_template_alarms_on() {
        let line = contain_metric_line("revoke365-intake", "acme", "sentinel");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], CONTAIN_METRIC_NAMESPACE);
        assert_eq!(directive["Metrics"][0]["Name"], CONTAIN_METRIC);
        assert_eq!(directive["Dimensions"][0][0], CONTAIN_METRIC_DIMENSION);
        assert_eq!(line[CONTAIN_METRIC], 1);
        assert_eq!(line[CONTAIN_METRIC_DIMENSION], "revoke365-intake");
        let template = include_str!("../../../template.yaml");
        let alarm = &template[template
            .find("  ContainRunRateAlarm:")
            .expect("the template has the contain-rate alarm")..];
        let alarm = &alarm[..alarm.find("\n\n").unwrap_or(alarm.len())];
        for expected in [
            format!("Namespace: {CONTAIN_METRIC_NAMESPACE}"),
            format!("MetricName: {CONTAIN_METRIC}"),
            format!("- Name: {CONTAIN_METRIC_DIMENSION}"),
            "Value: !Ref IntakeFunction".to_string(),
            "Value: !Ref DiscoveryFunction".to_string(),
        ] {
            assert!(alarm.contains(&expected), "{expected}");
        }
    }
}
