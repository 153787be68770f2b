//! Run history: what `revoke365 runs` and `GET /revocations` list, and how they filter.

use super::{InvalidRequest, ItemStatus, PlanItem, Run, RunId, RunKind, RunStatus};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Runs a page of history holds unless asked for fewer, and at most.
pub const DEFAULT_RUN_PAGE: usize = 50;
pub const MAX_RUN_PAGE: usize = 100;

/// Every status a run can have, for `--status` / `status=` and their errors.
const STATUSES: [RunStatus; 9] = [
    RunStatus::Accepted,
    RunStatus::Discovering,
    RunStatus::Removing,
    RunStatus::Verifying,
    RunStatus::Completed,
    RunStatus::CompletedWithErrors,
    RunStatus::Failed,
    RunStatus::Interrupted,
    RunStatus::Cancelled,
];

/// `status`: one of the run statuses, by name.
pub fn parse_status(raw: &str) -> Result<RunStatus, InvalidRequest> {
    let raw = raw.trim();
    STATUSES
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(raw))
        .ok_or_else(|| {
            let all: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
            InvalidRequest::new(
                "status",
                format!(
                    "'{raw}' is not a run status; expected one of {}",
                    all.join(", ")
                ),
            )
        })
}

/// `since`: a date (`2026-11-01`, from midnight UTC) or an RFC 3339 time.
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, InvalidRequest> {
    let raw = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            InvalidRequest::new(
                "since",
                format!("'{raw}' is not a date; expected YYYY-MM-DD or an RFC 3339 time such as 2026-11-01T09:00:00Z"),
            )
        })
}

/// `limit`: how many runs a page holds, 1 to [`MAX_RUN_PAGE`].
pub fn parse_page_size(raw: &str) -> Result<usize, InvalidRequest> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_RUN_PAGE).contains(n))
        .ok_or_else(|| {
            InvalidRequest::new(
                "limit",
                format!(
                    "'{}' is not a page size; expected a number from 1 to {MAX_RUN_PAGE}",
                    raw.trim()
                ),
            )
        })
}

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

impl RunCounts {
    /// The counts of a run that has no result yet (running, interrupted, its process gone),
    /// from the items its result will be built from: what it has removed so far.
    pub fn of_items(items: &[PlanItem]) -> RunCounts {
        let mut counts = RunCounts::default();
        for item in items {
            match &item.status {
                s if s.removed_by_this_run() => counts.done += 1,
                ItemStatus::Restored => counts.done += 1,
                ItemStatus::Failed { .. } => counts.failed += 1,
                ItemStatus::Skipped { .. } => counts.skipped += 1,
                _ => {}
            }
        }
        counts
    }
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
    /// The run stopped before its end and no process works on it (interrupted, or its
    /// process killed): `revoke365 resume RUN_ID` goes on with it. Known to the CLI's store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_resume: bool,
}

impl RunSummary {
    /// The summary of a run, its counts from `items` while it has no result.
    pub fn with_items(run: &Run, items: &[PlanItem]) -> RunSummary {
        let mut summary = RunSummary::of(run);
        if run.result.is_none() && run.restore_result.is_none() {
            summary.counts = RunCounts::of_items(items);
        }
        summary
    }

    /// Whether the counts need the run's items: it has no result yet.
    pub fn counts_need_items(run: &Run) -> bool {
        run.result.is_none() && run.restore_result.is_none()
    }

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
            needs_resume: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_time_and_names_itself_when_it_is_neither() {
        assert_eq!(
            parse_since("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-01T09:30:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T08:30:00+00:00"
        );
        assert_eq!(parse_since("last week").unwrap_err().field, "since");
    }

    #[test]
    fn status_and_limit_name_what_is_allowed() {
        assert_eq!(parse_status("Completed").unwrap(), RunStatus::Completed);
        let e = parse_status("done").unwrap_err();
        assert_eq!(e.field, "status");
        assert!(e.message.contains("completed_with_errors"), "{e}");
        assert_eq!(parse_page_size("100").unwrap(), 100);
        assert_eq!(parse_page_size("0").unwrap_err().field, "limit");
        assert_eq!(parse_page_size("101").unwrap_err().field, "limit");
    }
}
