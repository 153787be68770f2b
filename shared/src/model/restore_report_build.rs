//! Building a restore run's result from its items and the re-read.

use super::*;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// What a restore report is built from: the run's items and what the re-read found.
pub struct RestoreInputs<'a> {
    pub run: &'a Run,
    pub company_name: &'a str,
    pub items: &'a [PlanItem],
    /// The items the re-read found back.
    pub present: &'a BTreeSet<ItemId>,
    /// False when the tenant could not be re-read: nothing is proven back.
    pub read: bool,
    pub errors: Vec<String>,
    pub ticket_id: Option<String>,
    pub finished_at: DateTime<Utc>,
}

impl RestoreReport {
    /// Every count comes from the items and the re-read: a grant is restored when the re-read
    /// shows it (whatever the write answered), missing when it does not.
    pub fn build(inputs: RestoreInputs<'_>) -> RestoreReport {
        let RestoreInputs {
            run,
            company_name,
            items,
            present,
            read,
            mut errors,
            ticket_id,
            finished_at,
        } = inputs;
        let dry_run = run.request.dry_run;
        let mut report = RestoreReport {
            kind: RunKind::Restore,
            success: false,
            run_id: run.run_id.to_string(),
            status: RunStatus::Completed,
            dry_run,
            restored_from: run
                .restore
                .as_ref()
                .map(|r| r.restored_from.to_string())
                .unwrap_or_default(),
            backup: run.restore.as_ref().and_then(|r| r.snapshot.clone()),
            started_at: run.created_at,
            finished_at,
            user_email: run.request.user_email.clone(),
            company: company_name.to_string(),
            restored: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            verification: RestoreVerification::default(),
            ticket_id,
            request_context: RequestContext::from(&run.request),
            notes: Vec::new(),
            errors: Vec::new(),
            not_mailed: Vec::new(),
            no_ticket: None,
            victim_mailbox: None,
            contain_actions: Vec::new(),
            left_out: Vec::new(),
        };
        let mut missing: Vec<Grant> = Vec::new();
        // A restore grants access: each entry names whom, whether one user's (a run's) or
        // many trustees' (a backup's).
        let entry =
            |g: &Grant, done: bool, would: Option<bool>, note: Option<String>| RestoredEntry {
                trustee: Some(g.trustee.clone()),
                ..restored(g, done, would, note)
            };
        for item in items {
            let g = &item.grant;
            let is_present = read && present.contains(&item.id);
            let failed = |error: String| RestoreFailure {
                mailbox: g.mailbox.clone(),
                permission: g.right.report_name().to_string(),
                folder: g.folder_path().map(str::to_string),
                calendar: g.calendar_name().map(str::to_string),
                trustee: Some(g.trustee.clone()),
                access_level: g.access_level(),
                error,
            };
            match &item.status {
                ItemStatus::Skipped { reason } => {
                    report.skipped.push(SkippedGrant {
                        mailbox: g.mailbox.clone(),
                        permission: g.right.report_name().to_string(),
                        trustee: Some(g.trustee.clone()),
                        reason: reason.clone(),
                    });
                    continue;
                }
                _ if dry_run => {
                    report.restored.push(entry(g, false, Some(true), None));
                    continue;
                }
                _ if is_present => {
                    let note = match &item.status {
                        ItemStatus::Restored => None,
                        _ => Some(ALREADY_PRESENT.to_string()),
                    };
                    report.restored.push(entry(g, true, None, note));
                }
                ItemStatus::Restored | ItemStatus::AlreadyPresent if !read => {
                    report.restored.push(entry(
                        g,
                        true,
                        None,
                        Some("not proven: the re-read could not read the tenant".into()),
                    ));
                }
                ItemStatus::Restored | ItemStatus::AlreadyPresent => report.failed.push(failed(
                    "the grant was added (or found present) but is not present on re-read".into(),
                )),
                ItemStatus::Failed { error } => report.failed.push(failed(error.clone())),
                _ => report.failed.push(failed("not processed".into())),
            }
            if !is_present {
                missing.push(g.clone());
            }
        }
        report.verification = RestoreVerification::of(&missing, read);
        if report
            .restored
            .iter()
            .any(|r| r.permission == PermissionType::FullAccess.report_name())
        {
            report.notes.push(AUTOMAPPING_NOTE.to_string());
        }
        if !read {
            errors.push(
                "verification could not re-read the tenant: nothing is proven restored".into(),
            );
        }
        report.errors = errors;
        report.success = report.errors.is_empty()
            && report.failed.is_empty()
            && (dry_run || report.verification.all_restored);
        report.status = if report.errors.is_empty() && (dry_run || report.verification.all_restored)
        {
            RunStatus::Completed
        } else {
            RunStatus::CompletedWithErrors
        };
        report
    }

    /// Adds the victim-mailbox section; any failure there fails the restore.
    pub fn add_victim_mailbox(&mut self, section: super::VictimMailboxReport) {
        for line in section.failures() {
            self.add_error(line);
        }
        self.victim_mailbox = Some(section);
    }

    /// Adds what the restore did to the user's identity; a failure fails the restore.
    pub fn add_contain_actions(&mut self, actions: Vec<super::ContainAction>) {
        for a in actions
            .iter()
            .filter(|a| a.status == super::ContainActionStatus::Failed)
        {
            self.add_error(format!(
                "{} could not be put back: {}",
                a.action.as_str(),
                a.error.as_deref().unwrap_or("no reason given")
            ));
        }
        self.contain_actions = actions;
    }

    pub fn add_error(&mut self, error: String) {
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
        self.success = false;
    }
}

impl RestoreVerification {
    /// The grants the re-read did not show, counted per type as a revocation counts what
    /// remains.
    fn of(missing: &[Grant], read: bool) -> RestoreVerification {
        let v = Verification::from_found(missing);
        RestoreVerification {
            missing_full_access: v.remaining_full_access,
            missing_send_as: v.remaining_send_as,
            missing_send_on_behalf: v.remaining_send_on_behalf,
            missing_calendar_delegates: v.remaining_calendar_delegates,
            missing_folder_permissions: v.remaining_folder_permissions,
            missing_shared_mailboxes: v.remaining_shared_mailboxes,
            all_restored: read && missing.is_empty(),
            missing: v.remaining,
        }
    }
}

fn restored(
    g: &Grant,
    restored: bool,
    would_restore: Option<bool>,
    note: Option<String>,
) -> RestoredEntry {
    RestoredEntry {
        mailbox: g.mailbox.clone(),
        permission: g.right.report_name().to_string(),
        folder: g.folder_path().map(str::to_string),
        calendar: g.calendar_name().map(str::to_string),
        access_rights: g.folder.is_some().then(|| g.access_rights.clone()),
        sharing_permission_flags: g
            .folder
            .as_ref()
            .map(|f| f.sharing_permission_flags.clone())
            .unwrap_or_default(),
        trustee: None,
        access_level: g.access_level(),
        recipient_type: g.send_as_recipient_type(),
        restored,
        would_restore,
        note,
    }
}
