//! Run history: what `revoke365 runs` and `GET /revocations` list, and how they filter.

use super::{Run, RunId, RunKind, RunStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which runs a history query wants; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// The user the run acted on (`user_email` as requested, or the UPN it resolved to),
    /// matched case-insensitively.
    pub user: Option<String>,
    pub company_id: Option<String>,
    /// Runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
}

impl RunFilter {
    pub fn matches(&self, run: &Run) -> bool {
        let user_ok = self.user.as_deref().is_none_or(|u| {
            run.request.user_email.eq_ignore_ascii_case(u)
                || run
                    .user
                    .as_ref()
                    .is_some_and(|r| r.upn.eq_ignore_ascii_case(u))
        });
        user_ok
            && self
                .company_id
                .as_deref()
                .is_none_or(|c| run.request.company_id == c)
            && self.since.is_none_or(|s| run.created_at >= s)
            && self.status.is_none_or(|s| run.status == s)
    }
}

/// How many grants a run handled, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Revocation: grants removed. Restore: grants restored.
    pub done: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// One line of run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: RunId,
    pub kind: RunKind,
    pub created_at: DateTime<Utc>,
    pub user_email: String,
    pub company_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    /// Known once the run has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    pub counts: RunCounts,
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<RunId>,
}

impl RunSummary {
    pub fn of(run: &Run) -> RunSummary {
        let (success, counts, ticket_id) = match (&run.result, &run.restore_result) {
            (_, Some(r)) => (
                Some(r.success),
                RunCounts {
                    done: r.restored.len() as u32,
                    failed: r.failed.len() as u32,
                    skipped: r.skipped.len() as u32,
                },
                r.ticket_id.clone(),
            ),
            (Some(r), None) => (
                Some(r.success),
                RunCounts {
                    done: r.removal_summary.total_permissions_removed,
                    failed: r.failed_count(),
                    skipped: r.skipped.len() as u32,
                },
                r.ticket_id.clone(),
            ),
            (None, None) => (
                run.failure.as_ref().map(|_| false),
                RunCounts::default(),
                run.request.ticket_id.clone(),
            ),
        };
        RunSummary {
            run_id: run.run_id.clone(),
            kind: run.kind(),
            created_at: run.created_at,
            user_email: run.request.user_email.clone(),
            company_id: run.request.company_id.clone(),
            status: run.status,
            dry_run: run.request.dry_run,
            success,
            counts,
            ticket_id,
            restored_from: run.restore.as_ref().map(|r| r.restored_from.clone()),
        }
    }
}

/// One page of history, newest first; `next` continues it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Opaque: pass it back to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
