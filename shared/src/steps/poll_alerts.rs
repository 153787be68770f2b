//! The alert poller (`ScheduledJob::PollAlerts`, `revoke365 watch`): reads a company's new
//! Defender XDR alerts and Entra ID Protection risky users since the stored watermarks and
//! starts one contain run per compromised user, within the company's caps.

use super::alert_approval::ApprovalNoticeSent;
use super::alert_runs::{contain_alerts, AlertIntake};
use super::alert_users::{AlertRun, HeldUser, Reach};
use crate::error::{ErrorKind, RemoteError, StepError};
use crate::model::{
    AlertSettings, AlertSourceKind, AlertedUser, OrgSettings, RiskyUser, SecurityAlert,
};
use crate::ports::{AlertLedger, Connections, Queue, RunStore};
use crate::steps::IntakeError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

/// Each poll reads again this far behind the watermark: Graph may index a change a little after
/// its timestamp. What is read twice is recognized by the alert ledger.
pub const POLL_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// The principal the scheduled poller records on the runs it starts (a company with an
/// allow-list names it to let the poller act for it).
pub const POLLER_PRINCIPAL: &str = "scheduler:poll_alerts";

/// What one poll of a company did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub company_id: String,
    /// One entry per alerted user: the run started, or the one the alert started before.
    pub runs: Vec<AlertRun>,
    /// Users beyond an alert's `max_contain_per_alert` or the hour's `max_contain_per_hour`:
    /// no run, nothing removed; the approval notice names them.
    pub awaiting_approval: Vec<HeldUser>,
    /// Users the company's `never_contain` names: reported only.
    pub never_contain: Vec<HeldUser>,
    /// Where each approval notice went, or why it did not.
    pub approval_notices: Vec<ApprovalNoticeSent>,
    /// Alerts and evidence that start nothing, and why (severity, determination,
    /// classification, resolved, not compromised).
    pub skipped: Vec<String>,
    /// Feeds not read, and why (no license, no permission, turned off).
    pub notes: Vec<String>,
}

impl PollReport {
    pub fn started(&self) -> usize {
        self.runs.iter().filter(|r| r.created).count()
    }
}

/// Polls both feeds of `org` as `principal` (recorded on every run it starts); an approval
/// notice goes to the company's PSA and mail over `connections`.
pub async fn poll_alerts(
    store: &dyn RunStore,
    ledger: &dyn AlertLedger,
    queue: &dyn Queue,
    connections: &Connections,
    org: &OrgSettings,
    principal: Option<&str>,
    now: DateTime<Utc>,
) -> Result<PollReport, StepError> {
    let settings = org.alert_settings();
    let source = connections.alerts.as_ref();
    let intake = AlertIntake {
        store,
        ledger,
        queue,
        principal,
        org,
    };
    let mut report = PollReport {
        company_id: org.company_id.clone(),
        ..PollReport::default()
    };
    for feed in [
        AlertSourceKind::Defender,
        AlertSourceKind::EntraIdProtection,
    ] {
        let enabled = match feed {
            AlertSourceKind::Defender => settings.defender,
            _ => settings.entra_id_protection,
        };
        if !enabled {
            report.notes.push(format!(
                "{}: turned off in the company's alert settings",
                feed.as_str()
            ));
            continue;
        }
        let watermark = ledger.watermark(&org.company_id, feed).await?;
        let since = watermark
            .map(|w| w - POLL_OVERLAP)
            .unwrap_or_else(|| now - chrono::Duration::hours(i64::from(settings.first_poll_hours)));
        let read = match feed {
            AlertSourceKind::Defender => source
                .security_alerts(since)
                .await
                .map(|alerts| defender_users(&alerts, &settings, &mut report.skipped)),
            _ => source
                .risky_users(since)
                .await
                .map(|users| risky_users(&users, &settings, &mut report.skipped)),
        };
        let (users, newest) = match read {
            Ok(read) => read,
            Err(e) if is_unlicensed(&e) => {
                let note = format!(
                    "{}: not read: {} ({})",
                    feed.as_str(),
                    e.reason(),
                    unlicensed_hint(feed)
                );
                warn!(company_id = %org.company_id, %note, "alert feed skipped");
                report.notes.push(note);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let outcome = contain_alerts(intake, Reach::Connected(connections), &users, now)
            .await
            .map_err(|e| match e {
                IntakeError::Store(e) => StepError::Store(e),
                IntakeError::Queue { source, .. } => StepError::Queue(source),
                other => StepError::Permanent(other.to_string()),
            })?;
        report.runs.extend(outcome.runs);
        report.awaiting_approval.extend(outcome.awaiting_approval);
        report.never_contain.extend(outcome.never_contain);
        report.approval_notices.extend(outcome.approval_notices);
        // Only after every run is started: a poll that failed part-way reads the same again.
        if let Some(newest) = newest.filter(|n| watermark.is_none_or(|w| *n > w)) {
            ledger.save_watermark(&org.company_id, feed, newest).await?;
        }
    }
    info!(company_id = %org.company_id, runs = report.runs.len(), started = report.started(), awaiting_approval = report.awaiting_approval.len(), never_contain = report.never_contain.len(), skipped = report.skipped.len(), "alerts polled");
    Ok(report)
}

/// 403: the tenant has no license for the feed (Defender, Entra ID P2) or the app lacks its
/// permission; the poll goes on with the other feed.
fn is_unlicensed(e: &RemoteError) -> bool {
    matches!(e.kind, ErrorKind::Api { status: 403, .. })
}

fn unlicensed_hint(feed: AlertSourceKind) -> &'static str {
    match feed {
        AlertSourceKind::Defender => {
            "the app needs SecurityAlert.Read.All and the tenant Microsoft Defender XDR"
        }
        _ => "the app needs IdentityRiskyUser.Read.All and the tenant Entra ID P2",
    }
}

/// The compromised users of the alerts the settings admit, and the newest change read.
fn defender_users(
    alerts: &[SecurityAlert],
    settings: &AlertSettings,
    skipped: &mut Vec<String>,
) -> (Vec<AlertedUser>, Option<DateTime<Utc>>) {
    let newest = alerts.iter().filter_map(|a| a.last_update).max();
    let mut users: Vec<AlertedUser> = Vec::new();
    for alert in alerts {
        if let Some(why) = settings.refuses(alert) {
            skipped.push(format!("defender alert {}: {why}", alert.id));
            continue;
        }
        for evidence in &alert.users {
            if !evidence.is_compromised() {
                continue;
            }
            let Some(address) = evidence.address.as_deref() else {
                skipped.push(format!(
                    "defender alert {}: compromised user {} has no UPN in the evidence",
                    alert.id,
                    evidence.azure_ad_user_id.as_deref().unwrap_or("(no id)")
                ));
                continue;
            };
            let user_email = address.trim().to_ascii_lowercase();
            if users
                .iter()
                .any(|u| u.alert_id == alert.id && u.user_email == user_email)
            {
                continue;
            }
            let determination = alert
                .determination
                .as_deref()
                .map(|d| format!(", determination {d}"))
                .unwrap_or_default();
            users.push(AlertedUser {
                source: AlertSourceKind::Defender,
                alert_id: alert.id.clone(),
                incident_id: alert
                    .incident_id
                    .clone()
                    .unwrap_or_else(|| alert.id.clone()),
                severity: Some(alert.severity.to_ascii_lowercase()),
                user_email,
                reason: format!(
                    "Microsoft Defender XDR alert {}: {}{determination}",
                    alert.id, alert.title
                ),
            });
        }
        if !alert.users.iter().any(|u| u.is_compromised()) {
            skipped.push(format!(
                "defender alert {}: no user or mailbox evidence with the role 'compromised'",
                alert.id
            ));
        }
    }
    (users, newest)
}

/// The risky users the settings admit, and the newest change read.
fn risky_users(
    risky: &[RiskyUser],
    settings: &AlertSettings,
    skipped: &mut Vec<String>,
) -> (Vec<AlertedUser>, Option<DateTime<Utc>>) {
    let newest = risky.iter().filter_map(|u| u.risk_last_updated).max();
    let mut users = Vec::new();
    for user in risky {
        if !settings.admits_risky_user(user) {
            skipped.push(format!(
                "risky user {}: {} at level {}",
                user.id, user.risk_state, user.risk_level
            ));
            continue;
        }
        let Some(upn) = user.user_principal_name.as_deref() else {
            skipped.push(format!("risky user {}: no userPrincipalName", user.id));
            continue;
        };
        // The same user in the same risk state is the same alert for the dedupe window: a
        // user confirmed compromised again after a remediation within it was contained then.
        users.push(AlertedUser {
            source: AlertSourceKind::EntraIdProtection,
            alert_id: format!("{}:{}", user.id, user.risk_state),
            incident_id: format!("riskyUser:{}", user.id),
            severity: Some(user.risk_level.to_ascii_lowercase()),
            user_email: upn.trim().to_ascii_lowercase(),
            reason: format!(
                "Entra ID Protection: risk state {} (risk level {})",
                user.risk_state, user.risk_level
            ),
        });
    }
    (users, newest)
}
