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
//! What it reads is in [`super::victim_survey`]; verification re-reads the mailbox and reports
//! under `"victim_mailbox"` ([`super::victim_report`]); a failure there makes the run
//! unsuccessful.

use super::audit_trail::ChainWriter;
use super::revoke::removal_call;
use super::stage_end::count_batch;
use super::{NoProgress, Tenant};
use crate::error::{RemoteError, StepError};
use crate::messages::VictimBatch;
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, DelegateAge, InboxRule, MailboxForwarding, Run, RunId,
    RunKind, RunStatus, VictimChange, VictimSurvey,
};
use crate::ports::{DelegateBaseline, Queue, RemovalOutcome, RunStore};
use chrono::Utc;
use std::collections::BTreeMap;
use tracing::{info, info_span, warn, Instrument};

/// The audit chain of the victim-mailbox step.
const CHAIN: &str = "victim";
const SURVEY: &str = "victim#survey";
pub(super) const FORWARDING: &str = "victim#forwarding";
pub(super) const ABANDONED: &str = "victim#abandoned";

pub(super) fn rule_record(rule: &InboxRule) -> String {
    format!("victim#rule#{}", rule.key())
}

pub(super) fn delegate_record(i: usize) -> String {
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
pub(super) async fn recorded(
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

pub(super) fn survey_of(records: &BTreeMap<String, AuditRecord>) -> Option<&VictimSurvey> {
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
            let survey = super::victim_survey::read_survey(tenant, baseline, run).await?;
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

// ---------------------------------------------------------------------------------------------
// Restore: put back what the restored run changed

/// What the restored run changed on the victim's mailbox (its outcome records that succeeded),
/// by record id.
pub(super) async fn changed_by(
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

/// Whether a restore run puts `change` back: only when its request includes the victim's
/// mailbox (`victim_mailbox`, set from `include_victim_mailbox` and `target_mailboxes`), and a
/// recent delegate only when its type is among the `permission_types` the restore named — a
/// scoped restore changes nothing outside its scope.
pub(super) fn in_restore_scope(run: &Run, change: &VictimChange) -> bool {
    let types = run
        .restore
        .as_ref()
        .and_then(|of| of.asked_types.as_deref());
    run.request.victim_mailbox
        && match change {
            VictimChange::Delegate { grant } => types.is_none_or(|t| t.contains(&grant.right)),
            _ => true,
        }
}

/// What a restore run puts back on the victim's mailbox: what the restored run changed there,
/// within the restore's scope.
pub(super) async fn to_put_back(
    store: &dyn RunStore,
    run: &Run,
) -> Result<Vec<(String, VictimChange)>, StepError> {
    let Some(of) = &run.restore else {
        return Ok(Vec::new());
    };
    let mut changes = changed_by(store, &of.restored_from).await?;
    changes.retain(|(_, change)| in_restore_scope(run, change));
    Ok(changes)
}

async fn put_back(
    store: &dyn RunStore,
    trail: &ChainWriter<'_>,
    done: &BTreeMap<String, AuditRecord>,
    tenant: Tenant<'_>,
    run: &Run,
) -> Result<(), StepError> {
    if run.request.dry_run || run.cancel_requested {
        return Ok(());
    }
    for (base, change) in to_put_back(store, run).await? {
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
