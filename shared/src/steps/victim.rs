//! The victim's own mailbox (`"victim_mailbox": true`): what an attacker leaves there to keep
//! reading mail. A step of the removal function, counted as the run's last removal batch:
//!
//! - it reads the mailbox's forwarding, its inbox rules (hidden ones included) and the grants
//!   to others on it, and audits all of that before changing anything (`victim#survey`);
//! - it clears the forwarding, disables (never deletes) the rules that forward, redirect or
//!   delete, and removes recent delegates when the request asks (`remove_recent_delegates`),
//!   each change audited with its before-state;
//! - on a restore run it sets the forwarding back and enables the rules again.
//!
//! Verification re-reads the mailbox and reports under `"victim_mailbox"` (see
//! [`report`] and [`restore_report`]); a failure there makes the run unsuccessful.

use super::audit_trail::ChainWriter;
use super::remove::{count_batch, removal_call};
use super::{NoProgress, Tenant};
use crate::error::{RemoteError, StepError};
use crate::messages::VictimBatch;
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, CalendarGrant, DelegateAge, DelegateEntry,
    ForwardingEntry, Grant, InboxRule, InboxRuleEntry, MailboxForwarding, PermissionType,
    ResolvedUser, Run, RunId, RunKind, RunStatus, VictimChange, VictimDelegate,
    VictimMailboxReport, VictimOutcome, VictimSurvey, RECENT_DELEGATE_DAYS,
};
use crate::ports::{DelegateBaseline, Exchange, MailboxInfo, Queue, RemovalOutcome, RunStore};
use crate::scan::calendar_access_level;
use chrono::Utc;
use std::collections::BTreeMap;
use tracing::{info, info_span, warn, Instrument};

/// The audit chain of the victim-mailbox step.
const CHAIN: &str = "victim";
const SURVEY: &str = "victim#survey";
const FORWARDING: &str = "victim#forwarding";
const ABANDONED: &str = "victim#abandoned";

fn rule_record(rule: &InboxRule) -> String {
    format!("victim#rule#{}", rule.key())
}

fn delegate_record(i: usize) -> String {
    format!("victim#delegate#{i:03}")
}

/// The step: contains the victim's mailbox (or, on a restore run, puts it back), then counts
/// its batch. Safe to redeliver: the survey is read once and kept, and a change whose outcome
/// is recorded is not made again.
pub(crate) async fn contain(
    store: &dyn RunStore,
    queue: &dyn Queue,
    tenant: Tenant<'_>,
    baseline: &dyn DelegateBaseline,
    run: &Run,
    batch: &VictimBatch,
) -> Result<(), StepError> {
    let run_id = &run.run_id;
    let span = info_span!("victim", run_id = %run_id, company_id = %run.request.company_id, batch_id = batch.batch_id);
    async {
        if run.status != RunStatus::Removing {
            info!(
                status = run.status.as_str(),
                "run is not removing; victim step ignored"
            );
            return Ok(());
        }
        let trail = ChainWriter::new(store, run_id, CHAIN.into());
        let done = recorded(store, run_id).await?;
        match run.kind() {
            RunKind::Revoke => change(&trail, &done, tenant, baseline, run).await?,
            RunKind::Restore => put_back(store, &trail, &done, tenant, run).await?,
        }
        count_batch(store, queue, &NoProgress, run_id, batch.batch_id).await
    }
    .instrument(span)
    .await
}

/// The last delivery of the step failed: the reason is audited (the report says it) and the
/// batch counted, so the run still verifies and reports.
pub(crate) async fn give_up(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run_id: &RunId,
    batch: &VictimBatch,
    reason: &str,
) -> Result<(), StepError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Err(StepError::Permanent(format!("unknown run {run_id}")));
    };
    if run.status != RunStatus::Removing {
        return Ok(());
    }
    warn!(run_id = %run_id, %reason, "giving up on the victim's mailbox");
    ChainWriter::new(store, run_id, CHAIN.into())
        .append(record(
            &run,
            ABANDONED.into(),
            AuditPhase::Outcome,
            None,
            Some(AuditResult::Failed),
            Some(format!("abandoned: {reason}")),
        ))
        .await?;
    count_batch(store, queue, &NoProgress, run_id, batch.batch_id).await
}

/// The run's victim-mailbox records, by id.
async fn recorded(
    store: &dyn RunStore,
    run_id: &RunId,
) -> Result<BTreeMap<String, AuditRecord>, StepError> {
    Ok(store
        .audit_records(run_id)
        .await?
        .into_iter()
        .filter(|r| r.chain.as_deref() == Some(CHAIN) || r.record_id.starts_with("victim#"))
        .map(|r| (r.record_id.clone(), r))
        .collect())
}

fn survey_of(records: &BTreeMap<String, AuditRecord>) -> Option<&VictimSurvey> {
    match records.get(SURVEY).and_then(|r| r.victim.as_ref()) {
        Some(VictimChange::Survey { survey }) => Some(survey),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Revocation: read, then change

async fn change(
    trail: &ChainWriter<'_>,
    done: &BTreeMap<String, AuditRecord>,
    tenant: Tenant<'_>,
    baseline: &dyn DelegateBaseline,
    run: &Run,
) -> Result<(), StepError> {
    let survey = match survey_of(done) {
        Some(s) => s.clone(),
        None => {
            let survey = read_survey(tenant, baseline, run).await?;
            info!(
                mailbox = %survey.mailbox,
                forwarding = survey.forwarding.is_set(),
                offending_rules = survey.offending_rules.len(),
                delegates = survey.delegates.len(),
                errors = survey.errors.len(),
                "victim mailbox read"
            );
            let survey_record = VictimChange::Survey {
                survey: survey.clone(),
            };
            trail
                .append(record(
                    run,
                    SURVEY.into(),
                    AuditPhase::Before,
                    Some(survey_record),
                    None,
                    None,
                ))
                .await?;
            survey
        }
    };
    if run.request.dry_run || run.cancel_requested || survey.mailbox.is_empty() {
        return Ok(());
    }
    let mailbox = survey.mailbox.as_str();
    let outcome_id = |id: &str| format!("{id}#outcome");

    if survey.forwarding.is_set() && !done.contains_key(&outcome_id(FORWARDING)) {
        let result = tenant
            .exchange
            .set_forwarding(mailbox, &MailboxForwarding::default())
            .await;
        let change = VictimChange::Forwarding {
            mailbox: mailbox.into(),
            before: survey.forwarding.clone(),
        };
        write_outcome(trail, run, outcome_id(FORWARDING), change, result).await?;
    }
    for rule in &survey.offending_rules {
        let id = outcome_id(&rule_record(rule));
        if done.contains_key(&id) {
            continue;
        }
        let result = tenant
            .exchange
            .disable_inbox_rule(mailbox, &rule.identity)
            .await;
        let change = VictimChange::InboxRule {
            mailbox: mailbox.into(),
            rule: rule.clone(),
        };
        write_outcome(trail, run, id, change, result).await?;
    }
    if run.request.remove_recent_delegates {
        for (i, d) in survey.delegates.iter().enumerate() {
            let id = outcome_id(&delegate_record(i));
            if d.age != DelegateAge::Recent || done.contains_key(&id) {
                continue;
            }
            let result = removal_call(tenant, &d.grant, &d.grant.trustee)
                .await
                .map(|_: RemovalOutcome| ());
            let change = VictimChange::Delegate {
                grant: d.grant.clone(),
            };
            write_outcome(trail, run, id, change, result).await?;
        }
    }
    Ok(())
}

/// Audits a change's outcome; a failure the service may get over is retried by redelivery
/// instead (nothing written).
async fn write_outcome(
    trail: &ChainWriter<'_>,
    run: &Run,
    record_id: String,
    change: VictimChange,
    result: Result<(), RemoteError>,
) -> Result<(), StepError> {
    let (result, detail) = match result {
        Ok(()) => (AuditResult::Removed, None),
        Err(e) if e.is_transient() || e.is_stopped() => {
            warn!(error = %e, record = %record_id, "victim mailbox change failed for now; retried on redelivery");
            return Err(e.into());
        }
        Err(e) => {
            warn!(error = %e, record = %record_id, "victim mailbox change failed");
            (AuditResult::Failed, Some(e.reason()))
        }
    };
    trail
        .append(record(
            run,
            record_id,
            AuditPhase::Outcome,
            Some(change),
            Some(result),
            detail,
        ))
        .await?;
    Ok(())
}

/// Reads the victim's mailbox. A read that may succeed later is an error (the step is
/// retried); one that cannot is kept in the survey's errors (the run cannot succeed).
async fn read_survey(
    tenant: Tenant<'_>,
    baseline: &dyn DelegateBaseline,
    run: &Run,
) -> Result<VictimSurvey, StepError> {
    let mut survey = VictimSurvey::default();
    let Some(user) = run.user.as_ref() else {
        survey
            .errors
            .push("the user was not resolved, so their mailbox was not read".into());
        return Ok(survey);
    };
    let settings = match permanent(tenant.exchange.mailbox_settings(&user.upn).await)? {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            survey.errors.push(format!(
                "{} has no Exchange Online mailbox to contain",
                user.upn
            ));
            return Ok(survey);
        }
        Err(e) => {
            survey
                .errors
                .push(format!("reading the mailbox of {}: {e}", user.upn));
            return Ok(survey);
        }
    };
    survey.mailbox = settings.info.address();
    survey.forwarding = settings.forwarding;
    match permanent(tenant.exchange.inbox_rules(&survey.mailbox).await)? {
        Ok(rules) => {
            survey.rules_total = rules.len();
            survey.offending_rules = rules.into_iter().filter(InboxRule::is_offending).collect();
        }
        Err(e) => survey.errors.push(format!("reading the inbox rules: {e}")),
    }
    let (grants, errors) = delegates(tenant, user, &settings.info).await?;
    survey.errors.extend(errors);
    let old = match baseline
        .baseline(
            &run.request.company_id,
            &survey.mailbox,
            RECENT_DELEGATE_DAYS,
        )
        .await
    {
        Ok(old) => old,
        Err(e) => {
            survey.errors.push(format!(
                "reading the permission-index snapshot of {}: {e}",
                survey.mailbox
            ));
            None
        }
    };
    survey.baseline = old.is_some();
    survey.delegates = grants
        .into_iter()
        .filter_map(|grant| match &old {
            None => Some(VictimDelegate {
                grant,
                age: DelegateAge::Unknown,
            }),
            Some(old) => (!old
                .iter()
                .any(|(t, who)| *t == grant.right && who.eq_ignore_ascii_case(&grant.trustee)))
            .then_some(VictimDelegate {
                grant,
                age: DelegateAge::Recent,
            }),
        })
        .collect();
    Ok(survey)
}

/// A transient failure is the step's error; any other result is the caller's to keep.
fn permanent<T>(result: Result<T, RemoteError>) -> Result<Result<T, RemoteError>, StepError> {
    match result {
        Err(e) if e.is_transient() || e.is_stopped() => Err(e.into()),
        other => Ok(other),
    }
}

/// Values that name no person: well-known principals and SIDs.
fn names_nobody(value: &str) -> bool {
    let v = value.trim().to_ascii_uppercase();
    v.is_empty() || v.starts_with("NT AUTHORITY\\") || v == "NULL SID" || v.starts_with("S-1-")
}

/// The address of a trustee as an answer shows it; `None` for nobody (a well-known principal,
/// an orphaned SID, a name nothing resolves).
async fn trustee_address(
    exchange: &dyn Exchange,
    value: &str,
) -> Result<Option<String>, StepError> {
    if names_nobody(value) {
        return Ok(None);
    }
    if value.contains('@') {
        return Ok(Some(value.trim().to_ascii_lowercase()));
    }
    Ok(match permanent(exchange.recipient(value).await)? {
        Ok(Some(r)) if !r.primary_smtp_address.is_empty() => {
            Some(r.primary_smtp_address.to_ascii_lowercase())
        }
        Ok(_) => None,
        Err(e) => {
            warn!(trustee = %value, error = %e, "trustee on the victim's mailbox not resolved; left out");
            None
        }
    })
}

/// Full Access, Send As, Send on Behalf and calendar grants to others on the victim's mailbox.
async fn delegates(
    tenant: Tenant<'_>,
    user: &ResolvedUser,
    info: &MailboxInfo,
) -> Result<(Vec<Grant>, Vec<String>), StepError> {
    let mailbox = info.address();
    let (mut grants, mut errors) = (Vec::new(), Vec::new());
    let grant = |right: PermissionType, trustee: String, shown: &str, rights: Vec<String>| Grant {
        mailbox: mailbox.clone(),
        mailbox_display_name: info.display_name.clone(),
        shared: info.is_shared(),
        right,
        trustee_as_shown: (!shown.eq_ignore_ascii_case(&trustee)).then(|| shown.to_string()),
        trustee,
        recipient_type: Some(info.recipient_type_details.clone()),
        access_rights: rights,
        calendar: None,
    };
    let exchange = tenant.exchange;
    let mut shown: Vec<(PermissionType, String, Vec<String>)> = Vec::new();
    match permanent(exchange.mailbox_permissions(&mailbox).await)? {
        Ok(entries) => shown.extend(
            entries
                .into_iter()
                .filter(|e| e.allows_full_access() && !e.is_inherited)
                .map(|e| (PermissionType::FullAccess, e.user, e.access_rights)),
        ),
        Err(e) => errors.push(format!("reading Full Access on {mailbox}: {e}")),
    }
    match permanent(exchange.send_as_on(&mailbox).await)? {
        Ok(entries) => shown.extend(
            entries
                .into_iter()
                .filter(|e| e.allows_send_as() && !e.is_inherited)
                .map(|e| {
                    (
                        PermissionType::SendAs,
                        e.trustee,
                        vec!["SendAs".to_string()],
                    )
                }),
        ),
        Err(e) => errors.push(format!("reading Send As on {mailbox}: {e}")),
    }
    shown.extend(
        info.grant_send_on_behalf_to
            .iter()
            .map(|d| (PermissionType::SendOnBehalf, d.clone(), Vec::new())),
    );
    for (right, value, rights) in shown {
        if user.is_user(&value) {
            continue;
        }
        if let Some(address) = trustee_address(exchange, &value).await? {
            if !user.is_user(&address) {
                grants.push(grant(right, address, &value, rights));
            }
        }
    }
    match permanent(
        tenant
            .directory
            .calendar_permissions(&info.user_principal_name)
            .await,
    )? {
        Ok(permissions) => {
            for p in permissions {
                let Some(address) = p.email_address.as_deref() else {
                    continue;
                };
                if !p.is_removable || p.role == "none" || user.is_user(address) {
                    continue;
                }
                let (access_level, delegate) = calendar_access_level(&p.role);
                let mut g = grant(
                    PermissionType::Calendar,
                    address.to_ascii_lowercase(),
                    address,
                    vec![access_level.clone()],
                );
                g.calendar = Some(CalendarGrant {
                    permission_id: p.id,
                    role: p.role,
                    access_level,
                    delegate,
                });
                grants.push(g);
            }
        }
        Err(e) => errors.push(format!("reading calendar permissions on {mailbox}: {e}")),
    }
    grants.sort_by(|a, b| (a.right, &a.trustee).cmp(&(b.right, &b.trustee)));
    grants.dedup_by(|a, b| a.right == b.right && a.trustee == b.trustee);
    Ok((grants, errors))
}

// ---------------------------------------------------------------------------------------------
// Restore: put back what the restored run changed

/// What the restored run changed on the victim's mailbox (its outcome records that succeeded),
/// by record id.
async fn changed_by(
    store: &dyn RunStore,
    source: &RunId,
) -> Result<Vec<(String, VictimChange)>, StepError> {
    Ok(recorded(store, source)
        .await?
        .into_values()
        .filter(|r| r.phase == AuditPhase::Outcome && r.result == Some(AuditResult::Removed))
        .filter_map(|r| {
            let base = r.record_id.strip_suffix("#outcome")?.to_string();
            r.victim.map(|c| (base, c))
        })
        .collect())
}

async fn put_back(
    store: &dyn RunStore,
    trail: &ChainWriter<'_>,
    done: &BTreeMap<String, AuditRecord>,
    tenant: Tenant<'_>,
    run: &Run,
) -> Result<(), StepError> {
    let Some(of) = &run.restore else {
        return Ok(());
    };
    if run.request.dry_run || run.cancel_requested {
        return Ok(());
    }
    for (base, change) in changed_by(store, &of.restored_from).await? {
        let id = format!("{base}#restore");
        if done.contains_key(&id) {
            continue;
        }
        let result = restore_change(tenant, &change).await;
        let (result, detail) = match result {
            Ok(true) => (AuditResult::Restored, None),
            Ok(false) => (
                AuditResult::Restored,
                Some(crate::model::ALREADY_PRESENT.to_string()),
            ),
            Err(e) if e.is_transient() || e.is_stopped() => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, record = %id, "putting back a victim mailbox change failed");
                (AuditResult::Failed, Some(e.reason()))
            }
        };
        trail
            .append(record(
                run,
                id,
                AuditPhase::Restore,
                Some(change),
                Some(result),
                detail,
            ))
            .await?;
    }
    Ok(())
}

/// Puts one change back; `Ok(false)` when it already was as before.
async fn restore_change(tenant: Tenant<'_>, change: &VictimChange) -> Result<bool, RemoteError> {
    let exchange = tenant.exchange;
    match change {
        VictimChange::Forwarding { mailbox, before } => {
            let now = exchange.mailbox_settings(mailbox).await?;
            if now.is_some_and(|s| s.forwarding == *before) {
                return Ok(false);
            }
            exchange
                .set_forwarding(mailbox, before)
                .await
                .map(|()| true)
        }
        VictimChange::InboxRule { mailbox, rule } => {
            let rules = exchange.inbox_rules(mailbox).await?;
            match rules.iter().find(|r| r.key() == rule.key()) {
                Some(now) if now.enabled => Ok(false),
                Some(now) => exchange
                    .enable_inbox_rule(mailbox, &now.identity)
                    .await
                    .map(|()| true),
                None => Err(RemoteError::new(
                    "exchange",
                    format!("Enable-InboxRule {} on {mailbox}", rule.identity),
                    crate::error::ErrorKind::NotFound {
                        message: format!("the inbox rule '{}' no longer exists", rule.name),
                    },
                )),
            }
        }
        VictimChange::Delegate { grant } => {
            crate::restore::put_back(tenant, grant).await.map(|()| true)
        }
        VictimChange::Survey { .. } => Ok(false),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification: re-read and report

/// The mailbox as verification re-reads it; `Err` with the reason when it cannot.
struct Reread {
    forwarding: MailboxForwarding,
    rules: Vec<InboxRule>,
}

async fn reread(exchange: &dyn Exchange, mailbox: &str) -> Result<Reread, String> {
    let settings = exchange
        .mailbox_settings(mailbox)
        .await
        .map_err(|e| format!("re-reading the mailbox: {e}"))?
        .ok_or_else(|| "re-reading the mailbox: it is gone".to_string())?;
    let rules = exchange
        .inbox_rules(mailbox)
        .await
        .map_err(|e| format!("re-reading the inbox rules: {e}"))?;
    Ok(Reread {
        forwarding: settings.forwarding,
        rules,
    })
}

/// A revocation's `"victim_mailbox"` section: the survey, what each change did, and what the
/// re-read shows. `None` when the request did not ask for it.
pub(crate) async fn report(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    run: &Run,
) -> Result<Option<VictimMailboxReport>, StepError> {
    if !run.request.victim_mailbox {
        return Ok(None);
    }
    let records = recorded(store, &run.run_id).await?;
    let mut section = VictimMailboxReport::default();
    if let Some(r) = records.get(ABANDONED) {
        section.errors.push(r.detail.clone().unwrap_or_default());
    }
    let Some(survey) = survey_of(&records) else {
        if run.cancel_requested {
            section
                .errors
                .push("not read: the run was cancelled before its mailbox was contained".into());
        } else if section.errors.is_empty() {
            section.errors.push("the mailbox was not read".into());
        }
        return Ok(Some(section));
    };
    section.mailbox = survey.mailbox.clone();
    section.errors.extend(survey.errors.iter().cloned());
    if survey.mailbox.is_empty() {
        return Ok(Some(section));
    }
    let dry = run.request.dry_run;
    let now = match dry {
        true => None,
        false => match reread(tenant.exchange, &survey.mailbox).await {
            Ok(now) => Some(now),
            Err(e) => {
                section.errors.push(e);
                None
            }
        },
    };
    let outcome = |id: String| records.get(&format!("{id}#outcome"));
    // What a change that was made became, from its record and the re-read.
    let settled = |record: Option<&AuditRecord>, done: VictimOutcome, still: bool| match record {
        _ if dry => (would(done), None),
        None if run.cancel_requested => (VictimOutcome::NotChanged, None),
        None => (
            VictimOutcome::Failed,
            Some("not attempted (the step ended before it)".to_string()),
        ),
        Some(r) if r.result == Some(AuditResult::Failed) => {
            (VictimOutcome::Failed, r.detail.clone())
        }
        Some(_) if now.is_none() => (
            VictimOutcome::Failed,
            Some("unproven: the mailbox could not be re-read".to_string()),
        ),
        Some(_) if still => (
            VictimOutcome::Failed,
            Some("the change was acknowledged but the re-read still shows it".to_string()),
        ),
        Some(_) => (done, None),
    };
    section.forwarding = Some(if survey.forwarding.is_set() {
        let still = now.as_ref().is_some_and(|n| n.forwarding.is_set());
        let (status, error) = settled(outcome(FORWARDING.into()), VictimOutcome::Cleared, still);
        ForwardingEntry {
            status,
            found: survey.forwarding.clone(),
            error,
        }
    } else {
        ForwardingEntry {
            status: VictimOutcome::None,
            found: survey.forwarding.clone(),
            error: None,
        }
    });
    for rule in &survey.offending_rules {
        let still = now
            .as_ref()
            .is_some_and(|n| n.rules.iter().any(|r| r.key() == rule.key() && r.enabled));
        let (status, error) = settled(outcome(rule_record(rule)), VictimOutcome::Disabled, still);
        section.inbox_rules.push(InboxRuleEntry {
            identity: rule.identity.clone(),
            name: rule.name.clone(),
            threats: rule.threats(),
            status,
            error,
        });
    }
    for (i, d) in survey.delegates.iter().enumerate() {
        let (status, error) = match (d.age, run.request.remove_recent_delegates) {
            (DelegateAge::Unknown, _) => (VictimOutcome::LeftInPlace, None),
            (DelegateAge::Recent, false) => (VictimOutcome::Listed, None),
            (DelegateAge::Recent, true) => {
                settled(outcome(delegate_record(i)), VictimOutcome::Removed, false)
            }
        };
        section
            .recent_delegates
            .push(DelegateEntry::of(d, status, error));
    }
    Ok(Some(section))
}

fn would(done: VictimOutcome) -> VictimOutcome {
    match done {
        VictimOutcome::Cleared => VictimOutcome::WouldClear,
        VictimOutcome::Disabled => VictimOutcome::WouldDisable,
        VictimOutcome::Removed => VictimOutcome::WouldRemove,
        other => other,
    }
}

/// A restore's `"victim_mailbox"` section: what was put back, proven by a re-read. `None`
/// when the restored run changed nothing on the mailbox.
pub(crate) async fn restore_report(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    run: &Run,
) -> Result<Option<VictimMailboxReport>, StepError> {
    let Some(of) = &run.restore else {
        return Ok(None);
    };
    let changes = changed_by(store, &of.restored_from).await?;
    if changes.is_empty() {
        return Ok(None);
    }
    let records = recorded(store, &run.run_id).await?;
    let mut section = VictimMailboxReport::default();
    let mailbox = changes
        .iter()
        .find_map(|(_, c)| match c {
            VictimChange::Forwarding { mailbox, .. } | VictimChange::InboxRule { mailbox, .. } => {
                Some(mailbox.clone())
            }
            VictimChange::Delegate { grant } => Some(grant.mailbox.clone()),
            VictimChange::Survey { .. } => None,
        })
        .unwrap_or_default();
    section.mailbox = mailbox.clone();
    let dry = run.request.dry_run;
    let now = match dry {
        true => None,
        false => match reread(tenant.exchange, &mailbox).await {
            Ok(now) => Some(now),
            Err(e) => {
                section.errors.push(e);
                None
            }
        },
    };
    for (base, change) in &changes {
        let record = records.get(&format!("{base}#restore"));
        let (status, error) = match record {
            _ if dry => (VictimOutcome::NotChanged, None),
            None => (
                VictimOutcome::Failed,
                Some("not attempted (the step ended before it)".to_string()),
            ),
            Some(r) if r.result == Some(AuditResult::Failed) => {
                (VictimOutcome::Failed, r.detail.clone())
            }
            Some(r) if r.detail.as_deref() == Some(crate::model::ALREADY_PRESENT) => {
                (VictimOutcome::AlreadyPresent, None)
            }
            Some(_) => (VictimOutcome::Restored, None),
        };
        let back = |ok: bool| match (status, &now, ok) {
            (VictimOutcome::Restored | VictimOutcome::AlreadyPresent, Some(_), false) => (
                VictimOutcome::Failed,
                Some("the re-read does not show it back".to_string()),
            ),
            _ => (status, error.clone()),
        };
        match change {
            VictimChange::Forwarding { before, .. } => {
                let ok = now.as_ref().is_none_or(|n| n.forwarding == *before);
                let (status, error) = back(ok);
                section.forwarding = Some(ForwardingEntry {
                    status,
                    found: before.clone(),
                    error,
                });
            }
            VictimChange::InboxRule { rule, .. } => {
                let ok = now
                    .as_ref()
                    .is_none_or(|n| n.rules.iter().any(|r| r.key() == rule.key() && r.enabled));
                let (status, error) = back(ok);
                section.inbox_rules.push(InboxRuleEntry {
                    identity: rule.identity.clone(),
                    name: rule.name.clone(),
                    threats: rule.threats(),
                    status,
                    error,
                });
            }
            VictimChange::Delegate { grant } => {
                let d = VictimDelegate {
                    grant: grant.clone(),
                    age: DelegateAge::Recent,
                };
                section
                    .recent_delegates
                    .push(DelegateEntry::of(&d, status, error.clone()));
            }
            VictimChange::Survey { .. } => {}
        }
    }
    Ok(Some(section))
}

fn record(
    run: &Run,
    record_id: String,
    phase: AuditPhase,
    change: Option<VictimChange>,
    result: Option<AuditResult>,
    detail: Option<String>,
) -> AuditRecord {
    let action = match &change {
        Some(VictimChange::Survey { .. }) => "read_victim_mailbox",
        Some(VictimChange::Forwarding { .. }) if phase == AuditPhase::Restore => {
            "restore_forwarding"
        }
        Some(VictimChange::Forwarding { .. }) => "clear_forwarding",
        Some(VictimChange::InboxRule { .. }) if phase == AuditPhase::Restore => "enable_inbox_rule",
        Some(VictimChange::InboxRule { .. }) => "disable_inbox_rule",
        Some(VictimChange::Delegate { .. }) if phase == AuditPhase::Restore => {
            "restore_recent_delegate"
        }
        Some(VictimChange::Delegate { .. }) => "remove_recent_delegate",
        None => "contain_victim_mailbox",
    };
    AuditRecord {
        run_id: run.run_id.clone(),
        record_id,
        phase,
        recorded_at: Utc::now(),
        user_email: run.request.user_email.clone(),
        company_id: run.request.company_id.clone(),
        requested_by: run.request.requested_by.clone(),
        requested_by_principal: run.request.requested_by_principal.clone(),
        reason: run.request.reason.clone(),
        item_id: None,
        grant: None,
        action: Some(action.into()),
        result,
        detail,
        verification: None,
        victim: change,
        chain: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }
}
