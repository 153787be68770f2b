//! Steps 8–11: re-read the tenant, report, audit, update the PSA ticket, notify, finish.

use super::{claim, NoProgress, Notify, Tenant};
use crate::error::StepError;
use crate::model::{
    AuditPhase, AuditRecord, Grant, ItemStatus, OrgSettings, PermissionType, PlanItem, Report,
    ReportInputs, Run, RunStatus, Verification,
};
use crate::ports::{Attachment, NewTicket, OutgoingMail, RunStore};
use crate::render;
use crate::scan::{scan, Census, ScanError};
use chrono::Utc;
use std::collections::BTreeSet;
use tracing::{info, info_span, warn, Instrument};

pub async fn verify(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
) -> Result<(), StepError> {
    let run_id = &run.run_id;
    let span = info_span!("verify", run_id = %run_id, company_id = %run.request.company_id);
    async {
        if !claim(store, run, RunStatus::Removing, RunStatus::Verifying).await? {
            info!(status = run.status.as_str(), "verification already under way or done; message ignored");
            return Ok(());
        }
        let mut items = store.items(run_id).await?;
        if run.request.dry_run {
            for item in items.iter_mut().filter(|i| i.status == ItemStatus::Pending) {
                item.status = ItemStatus::WouldRemove;
                store.set_item_status(run_id, item.id, &item.status).await?;
            }
        }
        let Reread { verification, mut errors, read } = match reread(tenant, org, run, &items).await {
            Ok(r) => r,
            Err(e) => {
                // Hand the run back so that the redelivered message can claim it again.
                store.transition(run_id, &[RunStatus::Verifying], RunStatus::Removing).await?;
                return Err(e);
            }
        };
        info!(remaining = verification.remaining.len(), read, "verification re-read done");
        // A removal that answered success but left the grant in place did not remove it. Only
        // what the re-read actually saw counts: an unreadable tenant proves nothing either way.
        for item in items.iter_mut().filter(|i| read && i.status.is_removed()) {
            let still_there = verification.remaining.iter().any(|r| r.mailbox == item.grant.mailbox && r.permission == item.grant.right.report_name());
            if still_there {
                warn!(mailbox = %item.grant.mailbox, permission = %item.grant.right, "grant still present after a successful removal");
                item.status = ItemStatus::Failed { error: "the removal was acknowledged but the grant is still present on re-read".into() };
                store.set_item_status(run_id, item.id, &item.status).await?;
            }
        }
        store.append_audit(&verification_record(run, &verification)).await?;

        let mut report = Report::build(ReportInputs {
            run,
            company_name: &org.company_name,
            items: &items,
            verification,
            ticket_id: run.request.ticket_id.clone(),
            errors: [run.scan_errors.clone(), std::mem::take(&mut errors)].concat(),
            not_checked: run.not_checked.clone(),
            finished_at: Utc::now(),
        });
        update_ticket(notify, org, run, &mut report).await;
        send_notification(notify, org, run, &mut report).await;
        report.finished_at = Utc::now();
        store.finish_run(run_id, &report).await?;
        info!(success = report.success, status = report.status.as_str(), removed = report.removal_summary.total_permissions_removed, "run finished");
        Ok(())
    }
    .instrument(span)
    .await
}

/// What verification learned from the tenant: what it finds is what remains — never inferred
/// from the removal results.
struct Reread {
    verification: Verification,
    errors: Vec<String>,
    /// False when the tenant could not be read: `verification` then counts every grant in
    /// scope as remaining, unproven.
    read: bool,
}

async fn reread(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    items: &[PlanItem],
) -> Result<Reread, StepError> {
    let in_scope = |g: &Grant| !g.shared || run.request.remove_from_shared;
    match read_remaining(tenant, org, run, items).await {
        Ok((remaining, errors)) => Ok(Reread {
            verification: Verification::from_found(
                &remaining
                    .into_iter()
                    .filter(|g| in_scope(g))
                    .collect::<Vec<_>>(),
            ),
            // What discovery already reported (an unreadable mailbox) is said once.
            errors: errors
                .into_iter()
                .filter(|e| !run.scan_errors.contains(e))
                .map(|e| format!("verification: {e}"))
                .collect(),
            read: true,
        }),
        Err(ScanError::Remote(e)) if e.is_transient() => Err(e.into()),
        Err(failure) => {
            let reason = match failure {
                ScanError::Remote(e) => e.to_string(),
                ScanError::Rejected(f) => f.message,
            };
            warn!(%reason, "verification could not re-read the tenant");
            // Unproven is not gone: everything that was in scope counts as remaining.
            let unverified: Vec<Grant> = items
                .iter()
                .map(|i| i.grant.clone())
                .filter(|g| in_scope(g))
                .collect();
            Ok(Reread {
                verification: Verification::from_found(&unverified),
                errors: vec![format!(
                    "verification could not re-read the tenant: {reason}"
                )],
                read: false,
            })
        }
    }
}

/// The user's direct grants still in the tenant: every mailbox a grant was found on, the
/// tenant-wide reverse lookups, and a second look (after `tenant.recheck.delay`) at grants this
/// run removed that still show, since Exchange may answer from a replica that lags.
async fn read_remaining(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    items: &[PlanItem],
) -> Result<(Vec<Grant>, Vec<String>), ScanError> {
    let reread_census = || async {
        match &run.user {
            Some(user) => Census::reread(tenant, org, user.clone(), &run.request).await,
            None => Census::discover(tenant, org, &run.request).await,
        }
    };
    let mut census = reread_census().await?;
    let scope = run
        .request
        .effective_scope(&org.m365_permission_removal_scope);
    let touched: BTreeSet<String> = items
        .iter()
        .filter(|i| {
            matches!(
                i.grant.right,
                PermissionType::FullAccess | PermissionType::Calendar
            )
        })
        .map(|i| i.grant.mailbox.clone())
        .collect();
    let found = scan(tenant, &census, &scope, Some(&touched), &NoProgress).await?;
    let mut remaining = found.grants;
    let removed_by_run = |g: &Grant| {
        items
            .iter()
            .any(|i| i.status.is_removed() && i.grant.key() == g.key())
    };
    for _ in 0..tenant.recheck.attempts {
        let lagging: Vec<&Grant> = remaining.iter().filter(|g| removed_by_run(g)).collect();
        if lagging.is_empty() {
            break;
        }
        info!(
            grants = lagging.len(),
            "removed grants still show; reading them again after a pause"
        );
        let mailboxes: BTreeSet<String> = lagging.iter().map(|g| g.mailbox.clone()).collect();
        let mut rights: Vec<PermissionType> = lagging.iter().map(|g| g.right).collect();
        rights.sort();
        rights.dedup();
        tokio::time::sleep(tenant.recheck.delay).await;
        // The mailbox list carries Send on Behalf too: read it again when that lags.
        if rights.contains(&PermissionType::SendOnBehalf) {
            census = reread_census().await?;
        }
        let again = scan(tenant, &census, &rights, Some(&mailboxes), &NoProgress).await?;
        remaining.retain(|g| !removed_by_run(g) || again.grants.iter().any(|a| a.key() == g.key()));
    }
    Ok((remaining, found.errors))
}

fn verification_record(run: &Run, verification: &Verification) -> AuditRecord {
    AuditRecord {
        run_id: run.run_id.clone(),
        record_id: "verification".into(),
        phase: AuditPhase::Verification,
        recorded_at: Utc::now(),
        user_email: run.request.user_email.clone(),
        company_id: run.request.company_id.clone(),
        requested_by: run.request.requested_by.clone(),
        reason: run.request.reason.clone(),
        item_id: None,
        grant: None,
        action: Some("verify".into()),
        result: None,
        detail: None,
        verification: Some(verification.clone()),
    }
}

/// Adds the report as one note on the request's ticket, creating the ticket first when the
/// request named none. A PSA failure is recorded; it does not undo anything.
async fn update_ticket(notify: Notify<'_>, org: &OrgSettings, run: &Run, report: &mut Report) {
    let ticket_id = match &report.ticket_id {
        Some(id) => id.clone(),
        None => {
            let ticket = NewTicket {
                summary: render::ticket_summary(run, org),
                board: org.m365_permission_ticket_board.clone(),
                company: org.psa_company.clone(),
                initial_description: render::ticket_description(run),
            };
            match notify.psa.create_ticket(&ticket).await {
                Ok(id) => {
                    report.ticket_id = Some(id.clone());
                    id
                }
                Err(e) => {
                    report.add_error(format!("PSA ticket could not be created: {e}"));
                    return;
                }
            }
        }
    };
    if let Err(e) = notify
        .psa
        .add_note(&ticket_id, &render::text_report(report))
        .await
    {
        report.add_error(format!(
            "PSA note could not be added to ticket {ticket_id}: {e}"
        ));
    }
}

async fn send_notification(notify: Notify<'_>, org: &OrgSettings, run: &Run, report: &mut Report) {
    let mut to: Vec<String> = run.request.requestor_email().into_iter().collect();
    for r in &org.m365_permission_notification_recipients {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(r)) {
            to.push(r.clone());
        }
    }
    if to.is_empty() {
        report.add_error("no notification sent: no requestor address and no m365_permission_notification_recipients".into());
        return;
    }
    let mail = OutgoingMail {
        from: org.notification_sender.clone(),
        to,
        subject: render::email_subject(report),
        html_body: render::email_html(report),
        attachments: vec![Attachment {
            name: format!("revoke365-{}.txt", report.run_id),
            content_type: "text/plain".into(),
            content: render::text_report(report).into_bytes(),
        }],
    };
    if let Err(e) = notify.mailer.send(&mail).await {
        report.add_error(format!("notification email could not be sent: {e}"));
    }
}
