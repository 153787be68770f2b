//! The result of a restore run: what was put back, what could not be, and the re-read that
//! proves it (docs/restore.md).

use super::{
    Grant, ItemId, ItemStatus, PermissionType, PlanItem, RemainingGrant, RequestContext, Run,
    RunKind, RunStatus, SkippedGrant, SnapshotSource, Verification,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A grant the restore put back (or found already present again: that counts as restored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredEntry {
    pub mailbox: String,
    pub permission: String,
    /// Who holds it again (every line says whom a restore gave access; reports written
    /// before named it only in a backup restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    pub restored: bool,
    /// A dry run: what it would add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_restore: Option<bool>,
    /// E.g. "already present", or how Exchange applied a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A grant that could not be put back, with Exchange's (or Graph's) reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreFailure {
    pub mailbox: String,
    pub permission: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    pub error: String,
}

/// The re-read after the restore: grants that should be back and are not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreVerification {
    pub missing_full_access: u32,
    pub missing_send_as: u32,
    pub missing_send_on_behalf: u32,
    pub missing_calendar_delegates: u32,
    pub missing_shared_mailboxes: u32,
    pub all_restored: bool,
    #[serde(default)]
    pub missing: Vec<RemainingGrant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub kind: RunKind,
    pub success: bool,
    pub run_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub restored_from: String,
    /// A backup restore: the snapshot and the mailbox it puts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<SnapshotSource>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub user_email: String,
    pub company: String,
    pub restored: Vec<RestoredEntry>,
    pub failed: Vec<RestoreFailure>,
    pub skipped: Vec<SkippedGrant>,
    pub verification: RestoreVerification,
    pub ticket_id: Option<String>,
    pub request_context: RequestContext,
    /// What the reader should know about how grants came back (e.g. Full Access AutoMapping).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// Requestor addresses the report was not mailed to (their domain is not allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_mailed: Vec<String>,
    /// Why there is no ticket (the company uses no PSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ticket: Option<String>,
    /// What was put back on the victim's own mailbox, when the restored run changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_mailbox: Option<super::VictimMailboxReport>,
    /// What the restored run removed or changed that this restore did not put back, and why
    /// (outside its types or mailboxes; the victim mailbox when not asked for by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

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

/// The note on a grant that was there again before the restore put it back.
pub const ALREADY_PRESENT: &str = "already present: nothing was added";

/// Exchange Online cannot say whether a Full Access grant had AutoMapping on, so a restored
/// one gets Exchange's default.
pub const AUTOMAPPING_NOTE: &str = "Full Access was added back with Exchange's default AutoMapping (on): Exchange Online does not show the setting the grant had before, so Outlook may now add the mailbox to the user's profile on its own";

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
        trustee: None,
        access_level: g.access_level(),
        recipient_type: g.send_as_recipient_type(),
        restored,
        would_restore,
        note,
    }
}
