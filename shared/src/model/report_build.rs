//! Building a run's result from its items and the re-read: every count is derived, never
//! carried.

use super::*;
use chrono::{DateTime, Utc};

fn entry(item: &PlanItem) -> GrantEntry {
    let g = &item.grant;
    let (removed, would_remove, note, error) = match &item.status {
        ItemStatus::Removed => (true, None, None, None),
        // Gone, but not by this run: nothing to count as removed, nothing to restore.
        ItemStatus::AlreadyGone { warning } => (
            false,
            None,
            Some(format!("already gone, not removed by this run: {warning}")),
            None,
        ),
        ItemStatus::WouldRemove => (false, Some(true), None, None),
        ItemStatus::Failed { error } => (false, None, None, Some(error.clone())),
        ItemStatus::Pending => (false, None, None, Some("not processed".to_string())),
        ItemStatus::Skipped { reason } => (false, None, Some(reason.clone()), None),
        // Only a restore run's items are restored; its result is a RestoreReport.
        ItemStatus::Restored | ItemStatus::AlreadyPresent => {
            (false, None, Some("restored".into()), None)
        }
    };
    GrantEntry {
        mailbox: g.mailbox.clone(),
        permission: g.right.report_name().to_string(),
        folder: g.folder_path().map(str::to_string),
        calendar: g.calendar_name().map(str::to_string),
        access_level: g.access_level(),
        access_rights: g.folder.is_some().then(|| g.access_rights.clone()),
        sharing_permission_flags: g
            .folder
            .as_ref()
            .map(|f| f.sharing_permission_flags.clone())
            .unwrap_or_default(),
        recipient_type: g.send_as_recipient_type(),
        removed,
        would_remove,
        note,
        error,
        effective_by: None,
    }
}

/// What the report is built from; every count is derived from items and the re-read.
pub struct ReportInputs<'a> {
    pub run: &'a Run,
    pub company_name: &'a str,
    pub items: &'a [PlanItem],
    pub verification: Verification,
    pub ticket_id: Option<String>,
    pub errors: Vec<String>,
    pub indirect_access: Vec<IndirectAccess>,
    pub not_checked: Vec<NotChecked>,
    pub scope: Scope,
    pub finished_at: DateTime<Utc>,
}

impl Report {
    pub fn build(inputs: ReportInputs<'_>) -> Report {
        let ReportInputs {
            run,
            company_name,
            items,
            verification,
            ticket_id,
            mut errors,
            indirect_access,
            not_checked,
            scope,
            finished_at,
        } = inputs;
        // Items are numbered by where discovery found them; the report lists them by type and
        // mailbox.
        let mut items: Vec<&PlanItem> = items.iter().collect();
        items.sort_by(|a, b| {
            (a.grant.right, &a.grant.mailbox, a.grant.place(), a.id).cmp(&(
                b.grant.right,
                &b.grant.mailbox,
                b.grant.place(),
                b.id,
            ))
        });
        let mut permissions = PermissionsRemoved::default();
        let mut skipped = Vec::new();
        let mut total_removed = 0;
        let mut any_failed = false;
        for item in items {
            let g = &item.grant;
            if let ItemStatus::Skipped { reason } = &item.status {
                skipped.push(SkippedGrant {
                    mailbox: g.mailbox.clone(),
                    permission: g.right.report_name().to_string(),
                    trustee: None,
                    reason: reason.clone(),
                });
                continue;
            }
            if item.status.removed_by_this_run() {
                total_removed += 1;
            }
            if let ItemStatus::Failed { error } = &item.status {
                any_failed = true;
                errors.push(format!(
                    "{} on {}: {error}",
                    g.right.report_name(),
                    g.shown_on()
                ));
            }
            if matches!(item.status, ItemStatus::Pending) {
                any_failed = true;
                errors.push(format!(
                    "{} on {}: never processed",
                    g.right.report_name(),
                    g.shown_on()
                ));
            }
            let mut e = entry(item);
            if g.shared {
                e.mailbox.clear();
                match permissions
                    .shared_mailboxes
                    .iter_mut()
                    .find(|s| s.mailbox == g.mailbox)
                {
                    Some(s) => s.permissions.push(e),
                    None => permissions.shared_mailboxes.push(SharedMailboxEntry {
                        mailbox: g.mailbox.clone(),
                        removed: false,
                        would_remove: None,
                        permissions: vec![e],
                    }),
                }
                continue;
            }
            match g.right {
                PermissionType::FullAccess => permissions.full_access.push(e),
                PermissionType::SendAs => permissions.send_as.push(e),
                PermissionType::SendOnBehalf => permissions.send_on_behalf.push(e),
                PermissionType::Calendar => permissions.calendar_delegates.push(e),
                PermissionType::Folder => permissions.folder_permissions.push(e),
            }
        }
        for shared in &mut permissions.shared_mailboxes {
            shared.removed = shared.permissions.iter().all(|p| p.removed);
            shared.would_remove = shared
                .permissions
                .iter()
                .any(|p| p.would_remove == Some(true))
                .then_some(true);
        }
        let dry_run = run.request.dry_run;
        for n in not_checked
            .iter()
            .filter(|n| n.reason == NotCheckedReason::CannotCheck)
        {
            errors.push(format!(
                "{} could not be checked for this user: {}",
                n.permission_type,
                n.detail
                    .as_deref()
                    .unwrap_or("no way to read it in this tenant")
            ));
        }
        // A dry run succeeds when it completes; otherwise every in-scope direct grant must be
        // gone on re-read and nothing may have failed. A type that could not be checked is
        // not proven clear, so it fails the run too (its message is in `errors`).
        let success =
            errors.is_empty() && !any_failed && (dry_run || verification.all_permissions_cleared);
        let status = if errors.is_empty() && (dry_run || verification.all_permissions_cleared) {
            RunStatus::Completed
        } else {
            RunStatus::CompletedWithErrors
        };
        let residual_access = !indirect_access.is_empty()
            || !verification.verified
            || !not_checked.is_empty()
            || !skipped.is_empty()
            || scope.mailboxes != MailboxScope::All
            || !verification.remaining.is_empty();
        let user = run.user.as_ref();
        Report {
            kind: RunKind::Revoke,
            success,
            run_id: run.run_id.to_string(),
            status,
            dry_run,
            started_at: run.created_at,
            finished_at,
            removal_summary: RemovalSummary {
                user_email: run.request.user_email.clone(),
                user_display_name: user.map(|u| u.display_name.clone()).unwrap_or_default(),
                company: company_name.to_string(),
                total_permissions_removed: total_removed,
            },
            permissions_removed: permissions,
            verification,
            ticket_id,
            request_context: RequestContext::from(&run.request),
            indirect_access,
            skipped,
            errors,
            resolved_user: user.and_then(|u| {
                Some(ResolvedUserSummary {
                    upn: u.upn.clone(),
                    object_id: u.id.clone(),
                    matched_by: u.matched_by?,
                    account_enabled: u.account_enabled,
                })
            }),
            not_checked,
            scope,
            residual_access,
            not_mailed: Vec::new(),
            no_ticket: None,
            containment: None,
            victim_mailbox: None,
            contain_actions: Vec::new(),
            access_ends_by: None,
            on_premises_note: None,
            notification_errors: Vec::new(),
            headline: String::new(),
        }
    }

    /// Adds the victim-mailbox section; any failure there fails the run, said in `errors`.
    pub fn add_victim_mailbox(&mut self, section: super::VictimMailboxReport) {
        if !section.succeeded() {
            self.success = false;
            self.status = RunStatus::CompletedWithErrors;
            for line in section.failures() {
                if !self.errors.contains(&line) {
                    self.errors.push(line);
                }
            }
        }
        self.victim_mailbox = Some(section);
    }

    /// Every grant entry of the report, with the mailbox it is on and whether that is a
    /// shared mailbox (whose entries name it only on the shared-mailbox entry).
    pub fn entries(&self) -> impl Iterator<Item = (&str, bool, &GrantEntry)> {
        let p = &self.permissions_removed;
        let direct = [
            &p.full_access,
            &p.send_as,
            &p.send_on_behalf,
            &p.calendar_delegates,
            &p.folder_permissions,
        ]
        .into_iter()
        .flatten()
        .map(|e| (e.mailbox.as_str(), false, e));
        let shared = p.shared_mailboxes.iter().flat_map(|s| {
            s.permissions
                .iter()
                .map(move |e| (s.mailbox.as_str(), true, e))
        });
        direct.chain(shared)
    }

    /// Grants whose removal failed, in every list.
    pub fn failed_count(&self) -> u32 {
        self.entries().filter(|(_, _, e)| e.error.is_some()).count() as u32
    }

    /// Records a failure that happened after the report was built (PSA, mail).
    pub fn add_error(&mut self, error: String) {
        self.errors.push(error);
        self.success = false;
        self.status = RunStatus::CompletedWithErrors;
    }

    /// Records a notification that could not be delivered: one of the `errors` (the run is
    /// not a success), kept apart so that the headline can still say the removal succeeded.
    pub fn add_notification_error(&mut self, channel: NotificationChannel, error: String) {
        self.notification_errors.push(NotificationError {
            channel,
            error: error.clone(),
        });
        self.add_error(error);
    }

    /// Whether the removal itself succeeded (or the dry run completed): every direct grant in
    /// scope gone on re-read and no error but the notifications'.
    pub fn removal_succeeded(&self) -> bool {
        (self.dry_run || self.verification.all_permissions_cleared)
            && self.errors.len() == self.notification_errors.len()
            && !matches!(self.status, RunStatus::Cancelled | RunStatus::Interrupted)
    }

    /// The permission types the request left out.
    pub fn out_of_scope(&self) -> Vec<PermissionType> {
        self.not_checked
            .iter()
            .filter(|n| n.reason == NotCheckedReason::OutOfScope)
            .map(|n| n.permission_type)
            .collect()
    }

    /// Whether the re-read covered this type (in scope and checkable).
    pub fn checked(&self, permission_type: PermissionType) -> bool {
        !self
            .not_checked
            .iter()
            .any(|n| n.permission_type == permission_type)
    }
}
