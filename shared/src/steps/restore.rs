//! A restore run puts back what an earlier run removed. It goes through the same steps as a
//! revocation: intake (here: the checks on the run it restores), discovery (here: the grants
//! to put back, from the restore source), removal batches (here: each grant added back, its
//! intent and outcome audited) and verification (here: the re-read must show every grant
//! back), with the note on the original ticket and the email.

use super::audit_trail::{checked_trail, ChainWriter};
use super::intake::{queue_discovery, Accepted, IntakeError};
use super::item_outcome::{audit, failed, record_outcome};
use super::notify::{deliver_report, Told};
use super::reread::Reread;
use super::stage_end::{facts_part, finish_shard};
use super::{RunContext, Tenant};
use crate::authorize::{authorize_power, log_refusal, Power};
use crate::error::StepError;
use crate::model::{
    AuditCheck, AuditPhase, AuditResult, AuditStatus, FailureCode, InvalidRequest, ItemId,
    ItemStatus, OrgSettings, PlanItem, RemainingGrant, ResolvedUser, RestoreInputs, RestoreOf,
    RestoreReport, RestoreRequest, RevocationRequest, Run, RunFailure, RunFilter, RunId, RunKind,
    RunStatus, Verification, ALREADY_PRESENT, MAX_RUN_PAGE,
};
use crate::ports::{OutgoingMail, Queue, RunStore, ScanFacts};
use crate::render;
use crate::restore::{present, put_back, removed_grants};
use crate::scan::{recipient_address, Census, ScanError};
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
    if let Err(refused) = authorize_power(&org, principal, Power::Restore) {
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
    let victim_mailbox = asked.include_victim_mailbox
        && (mailboxes.is_empty() || mailboxes.iter().any(|m| names_own_mailbox(&source, m)));
    let mut request = restore_request(source.request.clone(), &asked, types, mailboxes, principal);
    request.victim_mailbox = victim_mailbox;
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
        include_victim_mailbox: asked.include_victim_mailbox,
        asked_types: asked.permission_types.clone(),
        snapshot: None,
    });
    store.create_run(&run).await?;
    queue_discovery(queue, &run).await?;
    info!(run_id = %run.run_id, restored_from = %source.run_id, principal = ?principal, dry_run = run.request.dry_run, "restore accepted");
    Ok(Accepted { run, created: true })
}

/// Whether `value` names the restored run's user — their own mailbox, the one the
/// victim-mailbox section changes — by any identity the run resolved them by.
fn names_own_mailbox(source: &Run, value: &str) -> bool {
    match &source.user {
        Some(user) => user.is_user(value),
        None => value.eq_ignore_ascii_case(&source.request.user_email),
    }
}

/// A restore run's request: `base` (the restored run's, or one naming the mailbox a backup
/// puts back) as the restore asks — its types and mailboxes, dry run, who and why. A restore
/// never leaves shared mailboxes out, and reports on its own ticket and mail even when the run
/// it restores was reported in a digest. It puts nothing back on the user's own mailbox
/// (`victim_mailbox`) unless the caller decides it should.
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
    base.victim_mailbox = false;
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
    if source.status == RunStatus::Interrupted {
        return why(
            "run_id",
            format!("run {id} was interrupted before it verified; resume it first (revoke365 resume {id}), which verifies it and anchors its audit trail, then restore it"),
        );
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
/// and mailboxes, stored as the run's items; grants a later run of the same user removed again
/// are skipped unless the request includes them. Then the batches are queued, as after a scan.
pub(crate) async fn plan(cx: RunContext<'_>, of: &RestoreOf) -> Result<(), StepError> {
    let RunContext {
        store,
        queue,
        tenant,
        org,
        run,
        ..
    } = cx;
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
    let later = match of.include_revoked {
        true => LaterRevocations::default(),
        false => revoked_again(store, &source).await?,
    };
    let types = run.request.permission_types.clone().unwrap_or_default();
    // A restore grants access: only from a trail that verifies, and only to the run's user.
    let (check, records) = checked_trail(store, &source.run_id).await?;
    let removed = removed_grants(&records);
    if let Some(refused) = untrusted(&source, &check, &user, &removed) {
        warn!(run_id = %run.run_id, restored_from = %source.run_id, reason = %refused.message, "restore refused: its source trail cannot be trusted");
        store.fail_run(&run.run_id, &refused).await?;
        return Ok(());
    }
    let mailboxes = match named_mailboxes(tenant, run, &source, &user, &removed).await? {
        Ok(mailboxes) => mailboxes,
        Err(refused) => {
            warn!(run_id = %run.run_id, reason = %refused.message, "restore refused: a named mailbox matches nothing the run removed");
            store.fail_run(&run.run_id, &refused).await?;
            return Ok(());
        }
    };
    let items: Vec<PlanItem> = removed
        .into_iter()
        .filter(|(_, g)| types.contains(&g.right))
        .filter(|(_, g)| mailboxes.as_ref().is_none_or(|m| m.contains(&g.mailbox)))
        .map(|(id, grant)| PlanItem {
            id,
            status: match later.why(&grant) {
                Some(reason) => ItemStatus::Skipped { reason },
                None => ItemStatus::Pending,
            },
            grant,
        })
        .collect();
    info!(run_id = %run.run_id, restored_from = %source.run_id, grants = items.len(), "restore planned");
    // What a contain run did to the user's identity comes back with an unnarrowed restore.
    let changes = super::contain_restore::identity_changes(&records);
    let identity = match (changes.is_empty(), mailboxes.is_some()) {
        (true, _) => None,
        (false, true) => Some(Vec::new()),
        (false, false) => Some(
            super::contain_restore::restore_identity(store, tenant.identity, run, &user, changes)
                .await?,
        ),
    };
    store.begin_scan(&run.run_id, &user, 1).await?;
    store.put_items(&run.run_id, &items).await?;
    let facts = ScanFacts {
        identity: identity.map(|actions| crate::model::IdentityContainment {
            actions,
            on_premises_synced: false,
        }),
        ..ScanFacts::default()
    };
    store
        .save_facts(&run.run_id, &facts_part(0, 0), &facts)
        .await?;
    finish_shard(store, queue, run, 0).await
}

/// Why a restore may not act on `source`'s trail, if it may not: the trail is not `intact`
/// (tampered, never anchored and sealed, or from before chaining: nothing proves it), or a
/// record it would put back names a trustee that is not the run's user — what a writer of the
/// trail could forge to grant someone else access.
fn untrusted(
    source: &Run,
    check: &AuditCheck,
    user: &ResolvedUser,
    removed: &[(ItemId, crate::model::Grant)],
) -> Option<RunFailure> {
    let id = &source.run_id;
    let refuse = |why: String| {
        Some(RunFailure::new(
            FailureCode::AuditUntrusted,
            Some("run_id"),
            format!(
                "the audit trail of run {} {why}: nothing is restored from it (revoke365 audit verify {} says more)",
                source.run_id, source.run_id
            ),
        ))
    };
    match check.status {
        AuditStatus::Tampered => {
            let first = check.problems.first().map(|p| p.message.as_str());
            return refuse(format!(
                "is tampered ({})",
                first.unwrap_or("see its problems")
            ));
        }
        AuditStatus::Unanchored if source.status == RunStatus::Interrupted => {
            return refuse(format!("is not anchored yet: the run was interrupted before it verified; resume it first (revoke365 resume {id}), which verifies it and anchors its trail"));
        }
        AuditStatus::Unanchored => {
            return refuse(format!(
                "was never anchored: the run ended {} before it verified, so nothing proves it",
                source.status.as_str()
            ));
        }
        AuditStatus::Unchained => {
            return refuse(
                "is unchained (written before audit trails were chained), so nothing proves it"
                    .into(),
            );
        }
        AuditStatus::Intact => {}
    }
    let foreign = removed.iter().find(|(_, g)| {
        !user.is_user(&g.trustee)
            && !g
                .trustee_as_shown
                .as_deref()
                .is_some_and(|v| user.is_user(v))
    })?;
    refuse(format!(
        "names trustee '{}' on {}, who is not the run's user {}",
        foreign.1.trustee, foreign.1.mailbox, user.upn
    ))
}

/// The addresses of the mailboxes the restore names (`None`: every mailbox), each matched to
/// the mailboxes of the grants `source` removed (`removed`) by any identity, as a revocation
/// resolves its targets: the address the run recorded, else the primary address Exchange
/// resolves the name to (UPN, proxy address, alias, name, GUID). The user's own mailbox is
/// named when the restore includes it (`victim_mailbox`). A name that matches nothing the run
/// removed refuses the whole restore (`Err`, field `mailbox`): a typo must not restore nothing
/// and call it success.
async fn named_mailboxes(
    tenant: Tenant<'_>,
    run: &Run,
    source: &Run,
    user: &ResolvedUser,
    removed: &[(ItemId, crate::model::Grant)],
) -> Result<Result<Option<BTreeSet<String>>, RunFailure>, StepError> {
    let names = &run.request.target_mailboxes;
    if names.is_empty() {
        return Ok(Ok(None));
    }
    let removed_on: BTreeSet<&str> = removed.iter().map(|(_, g)| g.mailbox.as_str()).collect();
    let mut found = BTreeSet::new();
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        if removed_on.contains(name.as_str()) {
            found.insert(name);
            continue;
        }
        let own = user.is_user(&name);
        if own && run.request.victim_mailbox {
            continue;
        }
        let resolved = recipient_address(tenant, &name).await?;
        if let Some(address) = resolved
            .as_ref()
            .filter(|a| removed_on.contains(a.as_str()))
        {
            found.insert(address.clone());
            continue;
        }
        let what = match (&resolved, own) {
            (_, true) => " (it is the user's own mailbox: what the run changed there comes back only with --include-victim-mailbox / include_victim_mailbox)".to_string(),
            (Some(address), false) => format!(" (Exchange resolves it to {address})"),
            (None, false) => " (no recipient of the tenant has that address or name)".to_string(),
        };
        let on = match removed_on.is_empty() {
            true => "none".to_string(),
            false => removed_on.iter().copied().collect::<Vec<_>>().join(", "),
        };
        return Ok(Err(RunFailure::new(
            FailureCode::MailboxNotFound,
            Some("mailbox"),
            format!(
                "--mailbox (target_mailboxes) '{name}' matches no grant run {} removed{what}; the run removed grants on: {on}. Nothing was restored",
                source.run_id
            ),
        )));
    }
    Ok(Ok(Some(found)))
}

/// The later revocations that took grants of `source` away again: revocations of the same
/// user at the same company made after it. The user may have been named by the address the
/// run was asked for or by the UPN it resolved to.
async fn revoked_again(store: &dyn RunStore, source: &Run) -> Result<LaterRevocations, StepError> {
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

/// The revocations of a user that came after a restore source, each with the grants it
/// removed (read from its audit trail, as a restore reads what to put back). Only a run that
/// removed a grant again counts against putting that grant back: a later run refused before
/// it did anything (a mistyped mailbox), a dry run, or one that removed other grants leaves
/// the grant restorable.
#[derive(Debug, Default)]
pub(crate) struct LaterRevocations(Vec<(Run, BTreeSet<crate::model::GrantKey>)>);

impl LaterRevocations {
    /// Why `grant` is not put back: the first later run that removed it again.
    pub(crate) fn why(&self, grant: &crate::model::Grant) -> Option<String> {
        let (later, _) = self
            .0
            .iter()
            .find(|(_, removed)| removed.contains(&grant.key()))?;
        Some(format!(
            "the user's access was revoked again by run {} on {}; restore with include_revoked (--include-revoked) to put it back anyway",
            later.run_id,
            later.created_at.format("%Y-%m-%d %H:%M UTC")
        ))
    }
}

/// The revocations (not dry runs) of a user (named by any of `names`, case-insensitively) at
/// `company` made after `since`, other than `except`, that removed something, oldest first.
pub(crate) async fn revoked_after(
    store: &dyn RunStore,
    company: &str,
    names: impl IntoIterator<Item = String>,
    since: chrono::DateTime<Utc>,
    except: Option<&RunId>,
) -> Result<LaterRevocations, StepError> {
    let names: BTreeSet<String> = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut runs: BTreeSet<RunId> = BTreeSet::new();
    for user in names {
        let filter = RunFilter {
            user: Some(user),
            company_id: Some(company.to_string()),
            since: Some(since),
            status: None,
        };
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_runs(&filter, MAX_RUN_PAGE, after.as_deref())
                .await?;
            runs.extend(
                page.runs
                    .iter()
                    .filter(|r| {
                        r.kind == RunKind::Revoke
                            && !r.dry_run
                            && Some(&r.run_id) != except
                            && r.created_at > since
                    })
                    .map(|r| r.run_id.clone()),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let mut later = Vec::new();
    for id in runs {
        let Some(run) = store.get_run(&id).await? else {
            continue;
        };
        let removed: BTreeSet<_> = removed_grants(&store.audit_records(&id).await?)
            .into_iter()
            .map(|(_, g)| g.key())
            .collect();
        if !removed.is_empty() {
            later.push((run, removed));
        }
    }
    later.sort_by_key(|(run, _)| run.created_at);
    Ok(LaterRevocations(later))
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
fn present_items(items: &[PlanItem], found: &Verification) -> BTreeSet<ItemId> {
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
pub(crate) async fn finish(
    cx: RunContext<'_>,
    items: &[PlanItem],
    found: Reread,
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
    let errors = [facts.scan_errors, found.errors].concat();
    let victim_mailbox = super::victim_report::restore_report(store, tenant, run).await?;
    let read = found.read;
    let present = match found.back {
        Some(back) => back,
        None => present_items(items, &found.verification),
    };
    let present = &present;
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
    report.left_out = left_out(store, run, items).await?;
    if let Some(identity) = facts.identity {
        if identity.actions.is_empty() {
            report.left_out.push(
                "the user's sign-in and app consents: a restore of named mailboxes leaves them as the run left them"
                    .into(),
            );
        }
        report.add_contain_actions(identity.actions);
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

/// What a restore of a run did not put back of what that run removed or changed, and why:
/// the grants outside its types and mailboxes (counted), then what it left of the victim's
/// mailbox. A backup restore puts back a snapshot, not a run: nothing to say.
async fn left_out(
    store: &dyn RunStore,
    run: &Run,
    items: &[PlanItem],
) -> Result<Vec<String>, StepError> {
    let Some(of) = run.restore.as_ref().filter(|of| of.snapshot.is_none()) else {
        return Ok(Vec::new());
    };
    let removed = removed_grants(&store.audit_records(&of.restored_from).await?).len();
    let outside = removed.saturating_sub(items.len());
    let grants = (outside > 0).then(|| {
        format!(
            "{outside} other grant(s) run {} removed not restored: outside --types/--mailbox (permission_types/target_mailboxes)",
            of.restored_from
        )
    });
    let victim = super::victim_report::left_out(store, run).await?;
    Ok(grants.into_iter().chain(victim).collect())
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
