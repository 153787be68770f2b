//! A contain run's identity actions in its result: the actions, the clock on every removed
//! grant, `access_ends_by`, and a failed action failing the run.

use super::{
    access_ends_by, grant_effective_by, ContainAction, ContainActionStatus, Report, RunStatus,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the identity phase of a contain run did, kept with the run's facts until the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityContainment {
    pub actions: Vec<ContainAction>,
    /// The user is synced from on-premises AD: a sync sets `accountEnabled` back.
    #[serde(default)]
    pub on_premises_synced: bool,
}

/// What the result says of a synced account.
pub const ON_PREMISES_NOTE: &str = "the account is synced from on-premises Active Directory: disable it in AD too (the next sync enables it again in Entra ID), and reset its password there";

impl Report {
    /// Adds a contain run's identity actions. Every grant this run removed gets its
    /// `effective_by` (`removed_by`, when the removals were done at the latest, plus Exchange's
    /// 60 minutes); `access_ends_by` is the latest of them all. A failed action makes the run
    /// fail, said in `errors`.
    pub fn add_contain_actions(
        &mut self,
        containment: IdentityContainment,
        removed_by: DateTime<Utc>,
    ) {
        let IdentityContainment {
            actions,
            on_premises_synced,
        } = containment;
        for failed in actions
            .iter()
            .filter(|a| a.status == ContainActionStatus::Failed)
        {
            self.success = false;
            if self.status == RunStatus::Completed {
                self.status = RunStatus::CompletedWithErrors;
            }
            let what = match &failed.app_name {
                Some(app) => format!("{} ({app})", failed.action.as_str()),
                None => failed.action.as_str().to_string(),
            };
            let line = format!(
                "contain action {what} failed: {}{}",
                failed.error.as_deref().unwrap_or("no reason given"),
                failed
                    .missing_role
                    .as_deref()
                    .map(|r| format!(" (the app needs the Graph permission {r})"))
                    .unwrap_or_default()
            );
            if !self.errors.contains(&line) {
                self.errors.push(line);
            }
        }
        let mut removed_at = Vec::new();
        if !self.dry_run {
            let p = &mut self.permissions_removed;
            let entries = p
                .full_access
                .iter_mut()
                .chain(p.send_as.iter_mut())
                .chain(p.send_on_behalf.iter_mut())
                .chain(p.calendar_delegates.iter_mut())
                .chain(
                    p.shared_mailboxes
                        .iter_mut()
                        .flat_map(|s| s.permissions.iter_mut()),
                );
            for entry in entries.filter(|e| e.removed) {
                entry.effective_by = Some(grant_effective_by(removed_by));
                removed_at.push(removed_by);
            }
        }
        self.access_ends_by = access_ends_by(&actions, removed_at.iter());
        if on_premises_synced {
            self.on_premises_note = Some(ON_PREMISES_NOTE.to_string());
        }
        self.contain_actions = actions;
    }

    /// When the user's sessions were revoked, if this run revoked them.
    pub fn sessions_revoked_at(&self) -> Option<DateTime<Utc>> {
        self.contain_actions
            .iter()
            .find(|a| {
                a.action == super::ContainActionKind::RevokeSessions
                    && a.status == ContainActionStatus::Done
            })
            .map(|a| a.at)
    }

    /// How many grants this run removed.
    pub fn grants_removed(&self) -> usize {
        self.entries().filter(|(_, _, e)| e.removed).count()
    }
}
