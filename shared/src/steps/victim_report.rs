//! The victim-mailbox sections of the results: verification re-reads the mailbox and tells
//! from the step's audit records what each change became (a revocation's [`report`], a
//! restore's [`restore_report`]).

use super::victim::{
    changed_by, delegate_record, in_restore_scope, recorded, rule_record, survey_of, to_put_back,
    ABANDONED, FORWARDING,
};
use super::Tenant;
use crate::error::StepError;
use crate::model::{
    AuditRecord, AuditResult, DelegateAge, DelegateEntry, ForwardingEntry, InboxRule,
    InboxRuleEntry, MailboxForwarding, Run, VictimChange, VictimDelegate, VictimMailboxReport,
    VictimOutcome,
};
use crate::ports::{Exchange, RunStore};

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
/// when it puts nothing back there (the restored run changed nothing on the mailbox, or the
/// restore leaves it out: see [`left_out`]).
pub(crate) async fn restore_report(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    run: &Run,
) -> Result<Option<VictimMailboxReport>, StepError> {
    let changes = to_put_back(store, run).await?;
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

/// What a restore leaves out of what the restored run changed on the victim's mailbox, one
/// line each for the result's `left_out`: the whole section when the request did not name it
/// (`include_victim_mailbox`) or scoped the restore to other mailboxes, else the recent
/// delegates of types outside its `permission_types`.
pub(crate) async fn left_out(store: &dyn RunStore, run: &Run) -> Result<Vec<String>, StepError> {
    let Some(of) = run.restore.as_ref().filter(|of| of.snapshot.is_none()) else {
        return Ok(Vec::new());
    };
    let changes = changed_by(store, &of.restored_from).await?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    if !run.request.victim_mailbox {
        let why = match of.include_victim_mailbox {
            false => "not asked for (--include-victim-mailbox; include_victim_mailbox in the API)"
                .to_string(),
            true => format!(
                "--mailbox (target_mailboxes) does not name the user's own mailbox ({})",
                run.request.user_email
            ),
        };
        return Ok(vec![format!("victim mailbox settings not restored: {why}")]);
    }
    Ok(changes
        .iter()
        .filter(|(_, change)| !in_restore_scope(run, change))
        .filter_map(|(_, change)| match change {
            VictimChange::Delegate { grant } => Some(format!(
                "recent delegate {} on {} ({}) not restored: outside --types (permission_types)",
                grant.trustee,
                grant.mailbox,
                grant.right.report_name()
            )),
            _ => None,
        })
        .collect())
}
