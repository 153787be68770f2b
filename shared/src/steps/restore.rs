//! A restore run puts back what an earlier run removed. It goes through the same steps as a
//! revocation: intake (here: the checks on the run it restores), discovery (here: the grants
//! to put back, from the restore source), removal batches (here: each grant added back, its
//! intent and outcome audited) and verification (here: the re-read must show every grant
//! back), with the note on the original ticket and the email.

use super::audit_trail::ChainWriter;
use super::discover::{facts_part, finish_shard};
use super::intake::{queue_discovery, Accepted, IntakeError};
use super::notify::{deliver_report, Told};
use super::remove::{audit, failed, record_outcome};
use super::{Notify, Tenant};
use crate::authorize::{authorize, log_refusal};
use crate::error::StepError;
use crate::model::{
    AuditPhase, AuditResult, InvalidRequest, ItemId, ItemStatus, OrgSettings, PlanItem,
    RemainingGrant, ResolvedUser, RestoreInputs, RestoreOf, RestoreReport, RestoreRequest,
    RevocationRequest, Run, RunFilter, RunId, RunKind, Verification, VictimMailboxReport,
    ALREADY_PRESENT, MAX_RUN_PAGE,
};
use crate::ports::{OutgoingMail, Queue, RunStore, ScanFacts};
use crate::render;
use crate::restore::{present, put_back, removed_grants};
use crate::scan::{Census, ScanError};
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeSet;
use tracing::{info, warn};

/// Validates a restore of `source`, checks that `principal` may act for its company, then
/// creates the restore run and queues its planning. Refused (nothing created): a run that has
/// not ended, a dry run, a restore, a company no longer configured or now on another tenant.
pub async fn intake_restore(
    store: &dyn RunStore,
    queue: &dyn Queue,
    principal: Option<&str>,
    source: &RunId,
    body: &Value,
) -> Result<Accepted, IntakeError> {
    let asked = RestoreRequest::from_json(body)?;
    let Some(source) = store.get_run(source).await? else {
        return Err(IntakeError::RunNotFound(source.to_string()));
    };
    let company = &source.request.company_id;
    let Some(org) = store.org_settings(company).await? else {
        return Err(IntakeError::Conflict(InvalidRequest::new(
            "company_id",
            format!(
                "run {} was made for company '{company}', which is no longer configured",
                source.run_id
            ),
        )));
    };
    if let Err(refused) = authorize(&org, principal) {
        log_refusal(&refused, company);
        return Err(refused.into());
    }
    if let Some(why) = not_restorable(&source, &org) {
        return Err(IntakeError::Conflict(why));
    }
    let removed_scope = source
        .result
        .as_ref()
        .map(|r| r.scope.permission_types.clone())
        .unwrap_or_else(|| {
            source
                .request
                .effective_scope(&org.m365_permission_removal_scope)
        });
    let types = asked.permission_types.clone().unwrap_or(removed_scope);
    let mailboxes = asked.target_mailboxes.clone();
    let mut request = restore_request(source.request.clone(), &asked, types, mailboxes, principal);
    // The note goes on the ticket the original run reported to.
    request.ticket_id = source
        .result
        .as_ref()
        .and_then(|r| r.ticket_id.clone())
        .or(request.ticket_id);
    let mut run = Run::new(request);
    run.tenant_id = Some(org.tenant_id.clone());
    run.restore = Some(RestoreOf {
        restored_from: source.run_id.clone(),
        include_revoked: asked.include_revoked,
        snapshot: None,
    });
    store.create_run(&run).await?;
    queue_discovery(queue, &run).await?;
    info!(run_id = %run.run_id, restored_from = %source.run_id, principal = ?principal, dry_run = run.request.dry_run, "restore accepted");
    Ok(Accepted { run, created: true })
}

/// A restore run's request: `base` (the restored run's, or one naming the mailbox a backup
/// puts back) as the restore asks — its types and mailboxes, dry run, who and why. A restore
/// never leaves shared mailboxes out, and reports on its own ticket and mail even when the run
/// it restores was reported in a digest.
pub(crate) fn restore_request(
    mut base: RevocationRequest,
    asked: &RestoreRequest,
    types: Vec<crate::model::PermissionType>,
    mailboxes: Vec<String>,
    principal: Option<&str>,
) -> RevocationRequest {
    base.permission_types = Some(types);
    base.target_mailboxes = mailboxes;
    base.remove_from_shared = true;
    base.dry_run = asked.dry_run;
    base.notify = false;
    base.digest = false;
    base.requested_by = asked.requested_by.clone();
    base.reason = asked.reason.clone();
    base.requested_by_principal = principal.map(str::to_string);
    base
}

/// Why `source` cannot be restored, if it cannot.
fn not_restorable(source: &Run, org: &OrgSettings) -> Option<InvalidRequest> {
    let id = &source.run_id;
    let why = |field: &str, message: String| Some(InvalidRequest::new(field, message));
    if source.kind() == RunKind::Restore {
        return why("run_id", format!("run {id} is itself a restore; a restore cannot be restored (run a revocation to take the access away again)"));
    }
    if !source.status.is_terminal() {
        return why(
            "run_id",
            format!(
                "run {id} has not ended (it is {}); restore it once it has ended",
                source.status.as_str()
            ),
        );
    }
    if source.request.dry_run {
        return why(
            "run_id",
            format!("run {id} was a dry run: it removed nothing, so there is nothing to restore"),
        );
    }
    match &source.tenant_id {
        Some(t) if !t.eq_ignore_ascii_case(&org.tenant_id) => why(
            "company_id",
            format!("run {id} removed access in tenant {t}, but company '{}' is now configured for tenant {}; nothing is restored to another tenant", org.company_id, org.tenant_id),
        ),
        _ => None,
    }
}

/// Discovery of a restore run: the grants its source removed, narrowed to the request's types
/// and mailboxes, stored as the run's items; grants whose user a later run revoked again are
/// skipped unless the request includes them. Then the batches are queued, as after a scan.
pub(crate) async fn plan(
    store: &dyn RunStore,
    queue: &dyn Queue,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    of: &RestoreOf,
) -> Result<(), StepError> {
    if let Some(src) = &of.snapshot {
        return super::restore_backup::plan(store, queue, run, of, src).await;
    }
    let source = store.get_run(&of.restored_from).await?.ok_or_else(|| {
        StepError::Permanent(format!("run {} to restore is gone", of.restored_from))
    })?;
    // Runs of the first release did not keep the user: resolve them again.
    let user = match source.user.clone() {
        Some(user) => user,
        None => match Census::discover(tenant, org, &run.request).await {
            Ok(census) => census.user,
            Err(ScanError::Remote(e)) => return Err(e.into()),
            Err(ScanError::Rejected(f)) => return Err(StepError::Permanent(f.message)),
        },
    };
    let skip = match of.include_revoked {
        true => None,
        false => revoked_again(store, &source).await?,
    };
    let types = run.request.permission_types.clone().unwrap_or_default();
    let mailboxes = &run.request.target_mailboxes;
    let records = store.audit_records(&source.run_id).await?;
    let items: Vec<PlanItem> = removed_grants(&records)
        .into_iter()
        .filter(|(_, g)| types.contains(&g.right))
        .filter(|(_, g)| mailboxes.is_empty() || mailboxes.contains(&g.mailbox))
        .map(|(id, grant)| PlanItem {
            id,
            grant,
            status: match &skip {
                Some(reason) => ItemStatus::Skipped {
                    reason: reason.clone(),
                },
                None => ItemStatus::Pending,
            },
        })
        .collect();
    info!(run_id = %run.run_id, restored_from = %source.run_id, grants = items.len(), "restore planned");
    store.begin_scan(&run.run_id, &user, 1).await?;
    store.put_items(&run.run_id, &items).await?;
    store
        .save_facts(&run.run_id, &facts_part(0, 0), &ScanFacts::default())
        .await?;
    finish_shard(store, queue, run, 0).await
}

/// Why the grants of `source` are not put back: a later revocation of the same user at the
/// same company (not a dry run) took their access away again. The user may have been named by
/// the address the run was asked for or by the UPN it resolved to.
async fn revoked_again(store: &dyn RunStore, source: &Run) -> Result<Option<String>, StepError> {
    let names = [
        Some(source.request.user_email.clone()),
        source.user.as_ref().map(|u| u.upn.clone()),
    ];
    let company = &source.request.company_id;
    revoked_after(
        store,
        company,
        names.into_iter().flatten(),
        source.created_at,
        Some(&source.run_id),
    )
    .await
}

/// Why grants of a user (named by any of `names`, case-insensitively) at `company` are not
/// put back: a revocation of theirs (not a dry run) made after `since`, other than `except`.
pub(crate) async fn revoked_after(
    store: &dyn RunStore,
    company: &str,
    names: impl IntoIterator<Item = String>,
    since: chrono::DateTime<Utc>,
    except: Option<&RunId>,
) -> Result<Option<String>, StepError> {
    let names: BTreeSet<String> = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
    for user in names {
        let filter = RunFilter {
            user: Some(user),
            company_id: Some(company.to_string()),
            since: Some(since),
            status: None,
        };
        if let Some(why) = later_revocation(store, &filter, since, except).await? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Why grants of the user `filter` names are not put back: a revocation (not a dry run) of
/// theirs made after `since`, other than `except`.
async fn later_revocation(
    store: &dyn RunStore,
    filter: &RunFilter,
    since: chrono::DateTime<Utc>,
    except: Option<&RunId>,
) -> Result<Option<String>, StepError> {
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_runs(filter, MAX_RUN_PAGE, after.as_deref())
            .await?;
        if let Some(later) = page.runs.iter().find(|r| {
            r.kind == RunKind::Revoke
                && !r.dry_run
                && Some(&r.run_id) != except
                && r.created_at > since
        }) {
            return Ok(Some(format!(
                "the user's access was revoked again by run {} on {}; restore with include_revoked (--include-revoked) to put it back anyway",
                later.run_id,
                later.created_at.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(None),
        }
    }
}

/// Puts one grant back; `Ok(false)` when its call was not sent because the step's time was up
/// (it is left pending for the continuation). Its intent is audited before the call and its
/// outcome (`phase: restore`) after. `user` holds the grant (the run's user; in a backup
/// restore, the grant's own trustee): when the tenant shows it holding the grant already,
/// nothing is added.
pub(crate) async fn restore_item(
    store: &dyn RunStore,
    trail: &ChainWriter<'_>,
    tenant: Tenant<'_>,
    run: &Run,
    (item, user): (&PlanItem, Option<&ResolvedUser>),
) -> Result<bool, StepError> {
    let Some(first_attempt) = trail
        .append_in_time(audit(run, item, AuditPhase::Before, None, None))
        .await?
    else {
        return Ok(false);
    };
    let already = match user {
        Some(user) => present(tenant, user, &item.grant).await == Some(true),
        None => false,
    };
    let added = match already {
        true => Ok(false),
        false => put_back(tenant, &item.grant).await.map(|()| true),
    };
    let outcome = match added {
        Ok(true) => (ItemStatus::Restored, AuditResult::Restored, None),
        Ok(false) => (
            ItemStatus::AlreadyPresent,
            AuditResult::Restored,
            Some(ALREADY_PRESENT.to_string()),
        ),
        Err(e) if e.is_stopped() => return Ok(false),
        Err(e) if e.is_service_unavailable() || (e.is_transient() && first_attempt) => {
            warn!(mailbox = %item.grant.mailbox, error = %e, "restore failed for now; left pending for redelivery");
            return Err(e.into());
        }
        Err(e) => {
            warn!(mailbox = %item.grant.mailbox, error = %e, "restore failed");
            failed(&e)
        }
    };
    record_outcome(store, trail, run, item, AuditPhase::Restore, outcome).await
}

/// The items of a restore of a run that the re-read shows back: the run had one user, so a
/// grant is back when that user holds its type on its mailbox again.
pub(crate) fn present_items(items: &[PlanItem], found: &Verification) -> BTreeSet<ItemId> {
    let back: BTreeSet<(&str, &str)> = found
        .remaining
        .iter()
        .map(
            |RemainingGrant {
                 mailbox,
                 permission,
                 ..
             }| (mailbox.as_str(), permission.as_str()),
        )
        .collect();
    items
        .iter()
        .filter(|i| back.contains(&(i.grant.mailbox.as_str(), i.grant.right.report_name())))
        .map(|i| i.id)
        .collect()
}

/// Verification of a restore run, after the re-read: the report (what the re-read shows back
/// is restored, whatever the write answered), the note on the original ticket, the email,
/// and the end of the run.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    items: &[PlanItem],
    (present, read, victim_mailbox): (&BTreeSet<ItemId>, bool, Option<VictimMailboxReport>),
    errors: Vec<String>,
) -> Result<(), StepError> {
    let mut report = RestoreReport::build(RestoreInputs {
        run,
        company_name: &org.company_name,
        items,
        present,
        read,
        errors,
        ticket_id: run.request.ticket_id.clone(),
        finished_at: Utc::now(),
    });
    if let Some(section) = victim_mailbox {
        report.add_victim_mailbox(section);
    }
    deliver_report(store, notify, org, run, &mut report).await?;
    report.finished_at = Utc::now();
    store.finish_restore(&run.run_id, &report).await?;
    info!(
        success = report.success,
        restored = report.restored.len(),
        failed = report.failed.len(),
        "restore finished"
    );
    Ok(())
}

impl Told for RestoreReport {
    fn ticket_id(&self) -> Option<String> {
        self.ticket_id.clone()
    }
    fn set_ticket_id(&mut self, id: String) {
        self.ticket_id = Some(id);
    }
    fn add_error(&mut self, error: String) {
        RestoreReport::add_error(self, error);
    }
    fn not_mailed(&mut self, address: String) {
        self.not_mailed.push(address);
    }
    fn no_ticket(&mut self, why: String) {
        self.no_ticket = Some(why);
    }
    fn note_text(&self) -> String {
        render::restore_text(self)
    }
    fn mail(&self, from: &str, to: Vec<String>) -> OutgoingMail {
        OutgoingMail {
            from: from.to_string(),
            to,
            subject: render::restore_subject(self),
            html_body: render::restore_html(self),
            attachments: Vec::new(),
        }
    }
    fn notice(&self, org: &OrgSettings) -> crate::ports::RunNotice {
        crate::ports::RunNotice {
            event: "restore.finished".into(),
            run_id: self.run_id.clone(),
            company_id: org.company_id.clone(),
            company_name: org.company_name.clone(),
            user_email: self.user_email.clone(),
            success: self.success,
            status: super::notify::status_word(self.status),
            total_permissions_removed: self.restored.len() as u32,
            failures: (self.failed.len() + self.errors.len()) as u32,
            ticket_id: self.ticket_id.clone(),
            result_url: None,
        }
    }
}
