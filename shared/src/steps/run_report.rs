//! The end of a revocation (and of a contain or cleanup run): the report, built from the
//! items and from what the re-read found; the victim-mailbox section; the note on the ticket,
//! the email; the run finished.

use super::notify::deliver_report;
use super::reread::Reread;
use super::RunContext;
use crate::error::StepError;
use crate::model::{PlanItem, Report, ReportInputs, RunStatus, Scope, CANCELLED_REASON};
use crate::ports::ScanFacts;
use chrono::Utc;
use tracing::info;

pub(crate) async fn finish(
    cx: RunContext<'_>,
    items: &[PlanItem],
    reread: Reread,
    facts: ScanFacts,
) -> Result<(), StepError> {
    let RunContext {
        store,
        tenant,
        notify,
        org,
        run,
        ..
    } = cx;
    let Reread {
        verification,
        errors,
        unproven,
        ..
    } = reread;
    let mut report = Report::build(ReportInputs {
        run,
        company_name: &org.company_name,
        items,
        verification,
        ticket_id: run.request.ticket_id.clone(),
        errors: [facts.scan_errors, errors].concat(),
        indirect_access: facts.indirect_access,
        not_checked: [facts.not_checked, unproven].concat(),
        scope: match &facts.folder_snapshot {
            Some(s) => Scope::of(&run.request, &org.m365_permission_removal_scope)
                .with_folder_snapshot(&s.snapshot_id, s.taken_at, run.created_at),
            None => Scope::of(&run.request, &org.m365_permission_removal_scope),
        },
        finished_at: Utc::now(),
    });
    report.containment = facts.containment;
    if let Some(identity) = facts.identity {
        let removed_by = report.finished_at;
        report.add_contain_actions(identity, removed_by);
        let revoked_at = report.sessions_revoked_at();
        if let (Some(c), Some(at)) = (report.containment.as_mut(), revoked_at) {
            c.seconds_to_sessions_revoked =
                Some((at - run.created_at).num_milliseconds() as f64 / 1000.0);
        }
    }
    if let Some(section) = super::victim_report::report(store, tenant, run).await? {
        report.add_victim_mailbox(section);
    }
    if run.cancel_requested {
        cancelled(&mut report);
    }
    deliver_report(store, notify, org, run, &mut report).await?;
    if run.cancel_requested {
        report.status = RunStatus::Cancelled;
    }
    report.finished_at = Utc::now();
    store.finish_run(&run.run_id, &report).await?;
    info!(
        success = report.success,
        status = report.status.as_str(),
        removed = report.removal_summary.total_permissions_removed,
        "run finished"
    );
    Ok(())
}

/// A run its caller cancelled ends `cancelled`, not successful: what was removed stays
/// removed and is listed; what was not is under `skipped`, with the reason.
fn cancelled(report: &mut Report) {
    report.status = RunStatus::Cancelled;
    report.success = false;
    let left = report
        .skipped
        .iter()
        .filter(|s| s.reason == CANCELLED_REASON)
        .count();
    report.errors.insert(
        0,
        format!(
            "cancelled at the caller's request after {} grant(s) were removed; {left} grant(s) left in place (under skipped)",
            report.removal_summary.total_permissions_removed
        ),
    );
}
