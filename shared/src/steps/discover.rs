//! Step 2: validate the user and find every grant they hold on other mailboxes.

use super::{claim, ProgressObserver, Tenant, REMOVAL_BATCH_MAILBOXES, SCAN_PARALLELISM};
use crate::error::{RemoteError, StepError};
use crate::messages::{RemovalBatch, Step, StepMessage};
use crate::model::{
    CalendarGrant, FailureCode, Grant, IndirectAccess, ItemStatus, OrgSettings, PermissionType,
    PlanItem, ResolvedUser, Run, RunFailure, RunId, RunStatus,
};
use crate::ports::{DirectoryGroup, MailboxInfo, Plan, Queue, RunStore};
use futures_util::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tracing::{info, info_span, warn, Instrument};

/// Runs discovery for `run_id` and queues its removal batches (or verification when there is
/// nothing to remove, or on a dry run). Safe to redeliver: discovery only reads the tenant, and
/// a run already past discovery has its batches queued again (removal is idempotent).
pub async fn discover(
    store: &dyn RunStore,
    queue: &dyn Queue,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    progress: &dyn ProgressObserver,
    run_id: &RunId,
) -> Result<(), StepError> {
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| StepError::Permanent(format!("unknown run {run_id}")))?;
    let span = info_span!("discover", run_id = %run_id, company_id = %run.request.company_id);
    async {
        if run.status == RunStatus::Removing {
            // Redelivery after the plan was saved: its messages may not all have been sent.
            let items = store.items(run_id).await?;
            queue.send_all(next_messages(&run, &items)).await?;
            return Ok(());
        }
        if !claim(store, &run, RunStatus::Accepted, RunStatus::Discovering).await? {
            info!(
                status = run.status.as_str(),
                "discovery already under way or done; message ignored"
            );
            return Ok(());
        }
        let plan = match find_grants(tenant, org, &run, progress).await {
            Ok(plan) => plan,
            Err(Discovery::Remote(e)) if e.is_transient() => {
                // Hand the run back so that the redelivered message can claim it again.
                store
                    .transition(run_id, &[RunStatus::Discovering], RunStatus::Accepted)
                    .await?;
                return Err(e.into());
            }
            Err(other) => return reject(store, run_id, other).await,
        };
        info!(
            items = plan.items.len(),
            indirect = plan.indirect_access.len(),
            batches = plan.batches_total,
            "plan ready"
        );
        if let Err(e) = store.save_plan(run_id, &plan).await {
            store
                .transition(run_id, &[RunStatus::Discovering], RunStatus::Accepted)
                .await?;
            return Err(e.into());
        }
        queue.send_all(next_messages(&run, &plan.items)).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Fails a run that discovery cannot carry out, with the reason.
async fn reject(
    store: &dyn RunStore,
    run_id: &RunId,
    discovery: Discovery,
) -> Result<(), StepError> {
    match discovery {
        Discovery::Rejected(failure) => {
            warn!(reason = %failure.message, "discovery rejected the run");
            store.fail_run(run_id, &failure).await?;
        }
        Discovery::Remote(e) => {
            let failure = RunFailure {
                code: FailureCode::TenantError,
                field: None,
                message: format!("discovery failed: {e}"),
            };
            store.fail_run(run_id, &failure).await?;
        }
    }
    Ok(())
}

/// One removal message per permission type and batch of at most ten mailboxes; verification
/// directly when nothing is to be removed.
fn next_messages(run: &Run, items: &[PlanItem]) -> Vec<StepMessage> {
    let batches = removal_batches(items);
    if run.request.dry_run || batches.is_empty() {
        return vec![StepMessage::new(run.run_id.clone(), Step::Verify)];
    }
    batches
        .into_iter()
        .enumerate()
        .map(|(i, (permission, item_ids))| {
            StepMessage::new(
                run.run_id.clone(),
                Step::Remove(RemovalBatch {
                    batch_id: i as u32,
                    permission,
                    item_ids,
                }),
            )
        })
        .collect()
}

/// Groups the items to remove by permission type, then by up to [`REMOVAL_BATCH_MAILBOXES`] mailboxes.
/// Deterministic, so a redelivered discovery produces the same batch ids.
pub(crate) fn removal_batches(items: &[PlanItem]) -> Vec<(PermissionType, Vec<u32>)> {
    let mut by_type: BTreeMap<PermissionType, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    // Every item that is to be removed, whatever its state now, so that a redelivered discovery
    // rebuilds exactly the same batches and batch ids.
    for item in items
        .iter()
        .filter(|i| !matches!(i.status, ItemStatus::Skipped { .. }))
    {
        by_type
            .entry(item.grant.right)
            .or_default()
            .entry(&item.grant.mailbox)
            .or_default()
            .push(item.id);
    }
    let mut batches = Vec::new();
    for (permission, mailboxes) in by_type {
        let mailboxes: Vec<Vec<u32>> = mailboxes.into_values().collect();
        for chunk in mailboxes.chunks(REMOVAL_BATCH_MAILBOXES) {
            batches.push((permission, chunk.concat()));
        }
    }
    batches
}

pub(crate) fn batch_count(run: &Run, items: &[PlanItem]) -> u32 {
    if run.request.dry_run {
        0
    } else {
        removal_batches(items).len() as u32
    }
}

pub(crate) enum Discovery {
    /// The request cannot be carried out in this tenant (unknown user or mailbox).
    Rejected(RunFailure),
    Remote(RemoteError),
}

impl From<RemoteError> for Discovery {
    fn from(e: RemoteError) -> Self {
        Discovery::Remote(e)
    }
}

fn rejected(code: FailureCode, field: &str, message: String) -> Discovery {
    Discovery::Rejected(RunFailure {
        code,
        field: Some(field.to_string()),
        message,
    })
}

/// Who a trustee value names, as far as this run is concerned.
enum Principal<'a> {
    User,
    Group(&'a DirectoryGroup),
    Other,
}

/// Everything discovery knows about the user and the tenant's mailboxes.
struct Census<'a> {
    user: &'a ResolvedUser,
    groups: &'a [DirectoryGroup],
    /// Every mailbox of the tenant.
    all: &'a [MailboxInfo],
    /// Mailboxes in the request's scope (targets, or all but the user's own).
    in_scope: Vec<&'a MailboxInfo>,
}

impl<'a> Census<'a> {
    fn principal(&self, value: &str) -> Principal<'a> {
        if self.user.is_user(value)
            || self
                .user
                .mailbox_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(value.trim()))
        {
            return Principal::User;
        }
        let v = value.trim();
        match self.groups.iter().find(|g| {
            g.display_name.eq_ignore_ascii_case(v)
                || g.id.eq_ignore_ascii_case(v)
                || g.mail.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(v))
        }) {
            Some(g) => Principal::Group(g),
            None => Principal::Other,
        }
    }

    fn scoped_mailbox(&self, identity: &str) -> Option<&'a MailboxInfo> {
        self.in_scope
            .iter()
            .copied()
            .find(|m| m.is_identified_by(identity))
    }

    /// The in-scope mailbox an answer's `Identity` names. An identity that names no mailbox of
    /// the tenant at all is an error: a grant there would go unseen.
    fn answer_mailbox(
        &self,
        identity: &str,
        what: &str,
        findings: &Mutex<Findings>,
    ) -> Option<&'a MailboxInfo> {
        let found = self.scoped_mailbox(identity);
        if found.is_none() && !self.all.iter().any(|m| m.is_identified_by(identity)) {
            Findings::error(
                findings,
                format!("{what} on '{identity}' names no known mailbox; not checked"),
            );
        }
        found
    }
}

/// Values that name no person: well-known principals and unresolvable SIDs.
fn is_system_principal(value: &str) -> bool {
    let v = value.trim().to_ascii_uppercase();
    v.starts_with("NT AUTHORITY\\") || v.starts_with("S-1-") || v == "NULL SID" || v.is_empty()
}

/// The report's access level for a Graph calendar role, and whether it is a delegate.
pub fn calendar_access_level(role: &str) -> (String, bool) {
    let (level, delegate) = match role {
        "write" => ("Editor", false),
        "read" => ("Reviewer", false),
        "limitedRead" => ("LimitedDetails", false),
        "freeBusyRead" => ("AvailabilityOnly", false),
        "delegateWithoutPrivateEventAccess" | "delegateWithPrivateEventAccess" => ("Editor", true),
        "none" => ("None", false),
        "custom" => ("Custom", false),
        other => (other, false),
    };
    (level.to_string(), delegate)
}

fn grant(
    m: &MailboxInfo,
    right: PermissionType,
    trustee: &str,
    access_rights: Vec<String>,
) -> Grant {
    Grant {
        mailbox: m.address(),
        mailbox_display_name: m.display_name.clone(),
        shared: m.is_shared(),
        right,
        trustee: trustee.to_string(),
        access_rights,
        calendar: None,
    }
}

fn indirect(m: &MailboxInfo, right: PermissionType, via: String) -> IndirectAccess {
    IndirectAccess {
        mailbox: m.address(),
        permission: right.report_name().to_string(),
        via,
    }
}

/// Found so far, filled concurrently by the per-mailbox scans.
#[derive(Default)]
struct Findings {
    grants: Vec<Grant>,
    indirect: Vec<IndirectAccess>,
    /// What could not be read or matched: reported, and the run cannot succeed.
    errors: Vec<String>,
}

impl Findings {
    fn error(findings: &Mutex<Findings>, error: String) {
        warn!(%error, "discovery could not read or match part of the tenant");
        findings.lock().expect("findings lock").errors.push(error);
    }
}

async fn find_grants(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    progress: &dyn ProgressObserver,
) -> Result<Plan, Discovery> {
    let Scan {
        user,
        grants,
        indirect,
        errors,
    } = scan(tenant, org, run, progress, None).await?;
    let items: Vec<PlanItem> = grants
        .into_iter()
        .enumerate()
        .map(|(i, grant)| {
            let status = if grant.shared && !run.request.remove_from_shared {
                ItemStatus::Skipped {
                    reason: "shared mailbox left in place (remove_from_shared is false)".into(),
                }
            } else {
                ItemStatus::Pending
            };
            PlanItem {
                id: i as u32 + 1,
                grant,
                status,
            }
        })
        .collect();
    let batches_total = batch_count(run, &items);
    Ok(Plan {
        user,
        items,
        indirect_access: indirect,
        batches_total,
        scan_errors: errors,
    })
}

/// What a read of the tenant found for the run's user.
pub(crate) struct Scan {
    pub user: ResolvedUser,
    /// Direct grants, sorted by type and mailbox.
    pub grants: Vec<Grant>,
    pub indirect: Vec<IndirectAccess>,
    pub errors: Vec<String>,
}

/// Reads every grant the run's user holds within the request's scope. `only_mailboxes` narrows
/// the per-mailbox scans (Full Access, calendar): verification re-reads just the mailboxes it
/// touched. The reverse lookups (Send As, Send on Behalf) are tenant-wide either way, so a
/// grant that appeared elsewhere meanwhile is still seen.
pub(crate) async fn scan(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    progress: &dyn ProgressObserver,
    only_mailboxes: Option<&BTreeSet<String>>,
) -> Result<Scan, Discovery> {
    let request = &run.request;
    let upn = &request.user_email;
    let found = tenant.directory.find_user(upn).await?.ok_or_else(|| {
        rejected(
            FailureCode::UserNotFound,
            "user_email",
            format!(
                "user '{upn}' was not found in the tenant of company '{}'",
                org.company_id
            ),
        )
    })?;
    let mailboxes = tenant.exchange.mailboxes().await?;
    let own = mailboxes.iter().find(|m| {
        m.external_directory_object_id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(&found.id))
            || m.user_principal_name
                .eq_ignore_ascii_case(&found.user_principal_name)
    });
    let mut addresses: Vec<String> = [
        Some(&found.user_principal_name),
        found.mail.as_ref(),
        own.map(|m| &m.primary_smtp_address),
        Some(upn),
    ]
    .into_iter()
    .flatten()
    .map(|a| a.to_ascii_lowercase())
    .collect();
    addresses.sort();
    addresses.dedup();
    let user = ResolvedUser {
        id: found.id.clone(),
        upn: found.user_principal_name.to_ascii_lowercase(),
        display_name: found.display_name.clone(),
        addresses,
        mailbox_dn: own.map(|m| m.distinguished_name.clone()),
        mailbox_name: own.and_then(|m| m.name.clone()),
    };

    let mut in_scope = Vec::new();
    if request.target_mailboxes.is_empty() {
        // System mailboxes (discovery, arbitration, ...) hold no one's delegated access, and
        // Graph cannot read their calendars.
        in_scope.extend(mailboxes.iter().filter(|m| {
            m.holds_delegations()
                && own.is_none_or(|o| o.distinguished_name != m.distinguished_name)
        }));
    } else {
        for target in &request.target_mailboxes {
            let m = mailboxes
                .iter()
                .find(|m| m.is_identified_by(target))
                .ok_or_else(|| {
                    rejected(
                        FailureCode::MailboxNotFound,
                        "target_mailboxes",
                        format!(
                            "target mailbox '{target}' was not found in the tenant of company '{}'",
                            org.company_id
                        ),
                    )
                })?;
            if own.is_none_or(|o| o.distinguished_name != m.distinguished_name) {
                in_scope.push(m);
            }
        }
    }
    let groups = tenant.directory.groups_of(&user.id).await?;
    let census = Census {
        user: &user,
        groups: &groups,
        all: &mailboxes,
        in_scope,
    };
    let scope = request.effective_scope(&org.m365_permission_removal_scope);
    let findings = Mutex::new(Findings::default());

    if scope.contains(&PermissionType::SendAs) {
        find_send_as(tenant, &census, &findings).await?;
    }
    if scope.contains(&PermissionType::SendOnBehalf) {
        find_send_on_behalf(tenant, &census, &findings).await?;
    }
    let scan_full_access = scope.contains(&PermissionType::FullAccess);
    let scan_calendar = scope.contains(&PermissionType::Calendar);
    if scan_full_access || scan_calendar {
        let per_mailbox: Vec<&MailboxInfo> = match only_mailboxes {
            Some(only) => census
                .in_scope
                .iter()
                .copied()
                .filter(|m| only.contains(&m.address()))
                .collect(),
            None => census.in_scope.clone(),
        };
        let total = per_mailbox.len() as u64;
        let scanned = AtomicU64::new(0);
        progress.discovery(0, total);
        let resolved: Mutex<HashMap<String, bool>> = Mutex::new(HashMap::new());
        let job = MailboxScan {
            tenant,
            census: &census,
            findings: &findings,
            resolved: &resolved,
            scanned: &scanned,
            total,
            progress,
            scan_full_access,
            scan_calendar,
        };
        // Collected first: a concrete Vec of futures keeps the stream's future `Send`.
        let scans: Vec<_> = per_mailbox.into_iter().map(|m| job.scan(m)).collect();
        let results: Vec<Result<(), RemoteError>> = stream::iter(scans)
            .buffer_unordered(SCAN_PARALLELISM)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
    }

    let Findings {
        mut grants,
        mut indirect,
        mut errors,
    } = findings.into_inner().expect("findings lock");
    errors.sort();
    grants.sort_by(|a, b| (a.right, &a.mailbox).cmp(&(b.right, &b.mailbox)));
    grants.dedup_by(|a, b| a.key() == b.key());
    indirect.sort_by(|a, b| {
        (&a.mailbox, &a.permission, &a.via).cmp(&(&b.mailbox, &b.permission, &b.via))
    });
    indirect.dedup();
    Ok(Scan {
        user,
        grants,
        indirect,
        errors,
    })
}

/// The per-mailbox part of a scan: Full Access and calendar, one mailbox at a time.
#[derive(Clone, Copy)]
struct MailboxScan<'a> {
    tenant: Tenant<'a>,
    census: &'a Census<'a>,
    findings: &'a Mutex<Findings>,
    resolved: &'a Mutex<HashMap<String, bool>>,
    scanned: &'a AtomicU64,
    total: u64,
    progress: &'a dyn ProgressObserver,
    scan_full_access: bool,
    scan_calendar: bool,
}

impl<'a> MailboxScan<'a> {
    /// One mailbox that cannot be read is reported, not fatal: the others are still scanned.
    async fn scan(self, m: &'a MailboxInfo) -> Result<(), RemoteError> {
        let read = async {
            if self.scan_full_access {
                find_full_access(self.tenant, self.census, m, self.findings, self.resolved).await?;
            }
            if self.scan_calendar {
                find_calendar(self.tenant, self.census, m, self.findings).await?;
            }
            Ok::<(), RemoteError>(())
        };
        match read.await {
            // Throttling and timeouts outlasting the client's retries: the whole scan is
            // retried later. An error answer about this one mailbox is reported instead.
            Err(e @ (RemoteError::Throttled { .. } | RemoteError::Transport { .. })) => {
                return Err(e)
            }
            Err(e) => Findings::error(
                self.findings,
                format!("{} could not be read: {e}", m.address()),
            ),
            Ok(()) => {}
        }
        self.progress
            .discovery(self.scanned.fetch_add(1, Ordering::Relaxed) + 1, self.total);
        Ok(())
    }
}

async fn find_send_as(
    tenant: Tenant<'_>,
    census: &Census<'_>,
    findings: &Mutex<Findings>,
) -> Result<(), RemoteError> {
    let entries = tenant.exchange.send_as_by_trustee(&census.user.upn).await?;
    for e in entries
        .iter()
        .filter(|e| e.access_control_type.eq_ignore_ascii_case("Allow"))
    {
        let Some(m) = census.answer_mailbox(&e.identity, "a Send As entry", findings) else {
            continue;
        };
        let mut f = findings.lock().expect("findings lock");
        if e.is_inherited {
            f.indirect
                .push(indirect(m, PermissionType::SendAs, "inheritance".into()));
        } else {
            f.grants.push(grant(
                m,
                PermissionType::SendAs,
                &e.trustee,
                vec!["SendAs".into()],
            ));
        }
    }
    // Send As held by a group never shows up under the user: ask with each group as trustee.
    // By object id: display names of groups need not be unique.
    for g in census.groups {
        let entries = match tenant.exchange.send_as_by_trustee(&g.id).await {
            Ok(entries) => entries,
            // A security group that is not mail-enabled is no recipient: it holds no Send As.
            Err(e) if e.is_not_found() => continue,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                Findings::error(
                    findings,
                    format!(
                        "Send As held by group {} could not be read: {e}",
                        g.display_name
                    ),
                );
                continue;
            }
        };
        for e in entries
            .iter()
            .filter(|e| e.access_control_type.eq_ignore_ascii_case("Allow"))
        {
            if let Some(m) = census.answer_mailbox(&e.identity, "a group's Send As entry", findings)
            {
                findings
                    .lock()
                    .expect("findings lock")
                    .indirect
                    .push(indirect(
                        m,
                        PermissionType::SendAs,
                        format!("group {}", g.display_name),
                    ));
            }
        }
    }
    Ok(())
}

async fn find_send_on_behalf(
    tenant: Tenant<'_>,
    census: &Census<'_>,
    findings: &Mutex<Findings>,
) -> Result<(), RemoteError> {
    // Only a mail-enabled user (one with a mailbox DN) can be a Send on Behalf delegate.
    let Some(dn) = census.user.mailbox_dn.as_deref() else {
        return Ok(());
    };
    for m in tenant.exchange.mailboxes_with_send_on_behalf(dn).await? {
        if let Some(m) = census.scoped_mailbox(&m.distinguished_name) {
            let trustee = census.user.upn.clone();
            findings.lock().expect("findings lock").grants.push(grant(
                m,
                PermissionType::SendOnBehalf,
                &trustee,
                vec!["SendOnBehalf".into()],
            ));
        }
    }
    Ok(())
}

async fn find_full_access(
    tenant: Tenant<'_>,
    census: &Census<'_>,
    m: &MailboxInfo,
    findings: &Mutex<Findings>,
    resolved: &Mutex<HashMap<String, bool>>,
) -> Result<(), RemoteError> {
    let entries = tenant
        .exchange
        .mailbox_permissions(&m.user_principal_name)
        .await?;
    for e in entries {
        if e.deny
            || is_system_principal(&e.user)
            || !e
                .access_rights
                .iter()
                .any(|r| r.eq_ignore_ascii_case("FullAccess"))
        {
            continue;
        }
        let principal = match census.principal(&e.user) {
            // An address that is none of the user's addresses is someone else: nothing to resolve.
            Principal::Other if e.user.contains('@') => Principal::Other,
            Principal::Other => {
                if resolves_to_user(tenant, census, &e.user, resolved).await? {
                    Principal::User
                } else {
                    Principal::Other
                }
            }
            p => p,
        };
        let mut f = findings.lock().expect("findings lock");
        match (principal, e.is_inherited) {
            (Principal::User, false) => f.grants.push(grant(
                m,
                PermissionType::FullAccess,
                &e.user,
                vec!["FullAccess".into()],
            )),
            (Principal::User, true) => f.indirect.push(indirect(
                m,
                PermissionType::FullAccess,
                "inheritance".into(),
            )),
            (Principal::Group(g), _) => f.indirect.push(indirect(
                m,
                PermissionType::FullAccess,
                format!("group {}", g.display_name),
            )),
            (Principal::Other, _) => {}
        }
    }
    Ok(())
}

/// A Full Access `User` that is a name rather than an address: ask Exchange who it is. Names
/// that match several recipients are never taken for the user (display names collide).
async fn resolves_to_user(
    tenant: Tenant<'_>,
    census: &Census<'_>,
    value: &str,
    cache: &Mutex<HashMap<String, bool>>,
) -> Result<bool, RemoteError> {
    let key = value.trim().to_ascii_lowercase();
    if let Some(hit) = cache.lock().expect("cache lock").get(&key) {
        return Ok(*hit);
    }
    let is_user = match tenant.exchange.recipient(value).await {
        Ok(Some(r)) => {
            census.user.is_user(&r.primary_smtp_address)
                || r.external_directory_object_id
                    .as_deref()
                    .is_some_and(|id| census.user.is_user(id))
        }
        Ok(None) => false,
        // Ambiguous or unknown: never taken for the user.
        Err(e) if !e.is_transient() => {
            warn!(trustee = %value, "trustee could not be resolved to one recipient; left alone");
            false
        }
        Err(e) => return Err(e),
    };
    cache.lock().expect("cache lock").insert(key, is_user);
    Ok(is_user)
}

async fn find_calendar(
    tenant: Tenant<'_>,
    census: &Census<'_>,
    m: &MailboxInfo,
    findings: &Mutex<Findings>,
) -> Result<(), RemoteError> {
    let permissions = tenant
        .directory
        .calendar_permissions(&m.user_principal_name)
        .await?;
    for p in permissions {
        let is_user = p
            .email_address
            .as_deref()
            .is_some_and(|a| census.user.is_user(a));
        if !is_user || !p.is_removable {
            continue;
        }
        let (access_level, delegate) = calendar_access_level(&p.role);
        let mut g = grant(
            m,
            PermissionType::Calendar,
            p.email_address.as_deref().unwrap_or_default(),
            vec![access_level.clone()],
        );
        g.calendar = Some(CalendarGrant {
            permission_id: p.id.clone(),
            role: p.role.clone(),
            access_level,
            delegate,
        });
        findings.lock().expect("findings lock").grants.push(g);
    }
    Ok(())
}
