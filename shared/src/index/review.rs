//! Access review: from the newest snapshot and one directory read per trustee, the grants held
//! by accounts that should hold none — disabled, deleted, orphaned SIDs and names nothing
//! resolves to, guests and external addresses — grouped by trustee.

use super::access::{entry, AccessEntry, AccessError};
use crate::model::{IndexHits, OrgSettings, RunMode, SnapshotRef, Trustee, TrusteeKind};
use crate::ports::{Directory, PermissionIndex, UserLookup};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;

/// Directory reads in flight at once.
const REVIEW_PARALLELISM: usize = 16;

/// Why a trustee's grants are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// The account is disabled (`accountEnabled: false`); shared, room and equipment mailboxes,
    /// whose accounts are always disabled, are not listed for it.
    Disabled,
    /// Exchange still resolves the trustee but the directory has no such user.
    Deleted,
    /// A SID no user has any more: a deleted user's entry.
    OrphanedSid,
    /// A name nothing in the tenant resolves to.
    Unresolved,
    /// A guest (B2B) account.
    Guest,
    /// An address outside the tenant (a calendar shared outside).
    External,
    /// An enabled user who has not signed in for the review's `inactive_days` (or never).
    Inactive,
}

impl ReviewReason {
    /// Whether the trustee exists as a directory user a revocation can be run for.
    pub fn is_user(self) -> bool {
        matches!(
            self,
            ReviewReason::Disabled | ReviewReason::Guest | ReviewReason::Inactive
        )
    }

    /// What `--revoke` runs for a trustee listed for this reason: a revocation of a directory
    /// user, a cleanup of a trustee that no longer exists, or nothing (a deleted user Exchange
    /// still resolves is neither: it is left for a person to look at).
    pub fn action(self) -> Option<RunMode> {
        match self {
            ReviewReason::Disabled | ReviewReason::Guest | ReviewReason::Inactive => {
                Some(RunMode::Revoke)
            }
            ReviewReason::OrphanedSid | ReviewReason::Unresolved | ReviewReason::External => {
                Some(RunMode::Cleanup)
            }
            ReviewReason::Deleted => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ReviewReason::Disabled => "disabled accounts",
            ReviewReason::Deleted => "deleted users",
            ReviewReason::OrphanedSid => "orphaned SIDs",
            ReviewReason::Unresolved => "names that resolve to nothing",
            ReviewReason::Guest => "guests",
            ReviewReason::External => "external addresses",
            ReviewReason::Inactive => "inactive users",
        }
    }
}

/// One trustee the review lists, with every grant it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewedTrustee {
    pub trustee: String,
    pub reason: ReviewReason,
    pub kind: TrusteeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// For an inactive user: the last sign-in (none: never signed in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<DateTime<Utc>>,
    pub grants: Vec<AccessEntry>,
}

/// What `--revoke` did for one listed trustee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewAction {
    pub trustee: String,
    pub reason: ReviewReason,
    /// `revoke` or `cleanup`; none: nothing was run (see `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub success: bool,
    pub removed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReviewAction {
    /// Nothing run yet for `t` (`error` says why, when nothing will be).
    pub fn of(t: &ReviewedTrustee) -> ReviewAction {
        ReviewAction {
            trustee: t.trustee.clone(),
            reason: t.reason,
            mode: t.reason.action(),
            run_id: None,
            success: false,
            removed: 0,
            error: None,
        }
    }

    /// What the run started for it did: its id, success, grants removed, and its failure.
    pub fn ran(mut self, run: &crate::model::Run) -> ReviewAction {
        let report = run.result.as_ref();
        self.run_id = Some(run.run_id.to_string());
        self.success = report.is_some_and(|r| r.success);
        self.removed = report.map_or(0, |r| r.removal_summary.total_permissions_removed);
        self.error = run.failure.as_ref().map(|f| f.message.clone());
        self
    }
}

impl ReviewedTrustee {
    /// The request `--revoke` makes for this trustee (reported in the review's digest, not
    /// one by one), or why there is none.
    pub fn request(&self, company_id: &str, review: &Review) -> Result<serde_json::Value, String> {
        let reason = format!(
            "access review of snapshot {}: {}",
            review.snapshot_id,
            self.reason.label()
        );
        match (self.reason.action(), &self.upn) {
            (Some(RunMode::Revoke), Some(upn)) => Ok(serde_json::json!({
                "user_email": upn, "company_id": company_id, "reason": reason, "digest": true,
            })),
            (Some(RunMode::Cleanup), _) => Ok(serde_json::json!({
                "mode": "cleanup", "trustee": self.trustee, "company_id": company_id,
                "reason": reason, "digest": true,
            })),
            _ => Err(format!(
                "not revoked: {} — Exchange still shows this trustee but the directory has no such user; look at it by hand",
                self.reason.label()
            )),
        }
    }
}

/// The answer of `review`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub company_id: String,
    pub snapshot_id: String,
    pub as_of: DateTime<Utc>,
    pub reviewed_at: DateTime<Utc>,
    /// Trustees per reason.
    pub summary: BTreeMap<ReviewReason, usize>,
    pub grants: usize,
    pub trustees: Vec<ReviewedTrustee>,
    /// What the review could not look at, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_resource_mailbox(t: &Trustee) -> bool {
    t.recipient_type.as_deref().is_some_and(|r| {
        ["SharedMailbox", "RoomMailbox", "EquipmentMailbox"]
            .iter()
            .any(|k| r.eq_ignore_ascii_case(k))
    })
}

fn is_guest(t: &Trustee) -> bool {
    t.upn.as_deref().is_some_and(|u| u.contains("#ext#"))
        || t.recipient_type
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("GuestMailUser"))
}

/// Who has signed in lately: users by lowercase object id and UPN, with their last sign-in.
struct Activity {
    since: DateTime<Utc>,
    last: BTreeMap<String, Option<DateTime<Utc>>>,
}

impl Activity {
    /// Reads every user's sign-in activity; a tenant without the licence or the permission is
    /// a note, not a failure.
    async fn read(
        directory: &dyn Directory,
        days: u32,
        notes: &mut Vec<String>,
    ) -> Result<Option<Activity>, AccessError> {
        match directory.sign_ins().await {
            Ok(users) => Ok(Some(Activity {
                since: Utc::now() - chrono::Duration::days(i64::from(days)),
                last: users
                    .into_iter()
                    .flat_map(|u| {
                        [
                            (u.id.to_ascii_lowercase(), u.last_sign_in),
                            (u.user_principal_name.to_ascii_lowercase(), u.last_sign_in),
                        ]
                    })
                    .collect(),
            })),
            Err(e) if matches!(e.kind, crate::error::ErrorKind::Api { status: 403, .. }) => {
                notes.push(format!(
                    "inactive users were not reviewed: Graph refused the sign-in activity ({}); it needs the AuditLog.Read.All permission and Entra ID P1 or P2",
                    e.reason()
                ));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `Some(last)` when `t` has not signed in since the cut-off (`last` none: never).
    fn inactive(&self, t: &Trustee) -> Option<Option<DateTime<Utc>>> {
        let last = [&t.object_id, &t.upn]
            .into_iter()
            .flatten()
            .find_map(|k| self.last.get(&k.to_ascii_lowercase()))?;
        match last {
            Some(at) if *at >= self.since => None,
            other => Some(*other),
        }
    }
}

/// Why `t` is listed, asking the directory about users; `None`: nothing to review.
async fn reason(
    directory: &dyn Directory,
    activity: Option<&Activity>,
    t: &Trustee,
) -> Result<Option<ReviewReason>, AccessError> {
    Ok(match t.kind {
        TrusteeKind::OrphanedSid => Some(ReviewReason::OrphanedSid),
        TrusteeKind::Unresolved => Some(ReviewReason::Unresolved),
        TrusteeKind::External => Some(ReviewReason::External),
        TrusteeKind::Group | TrusteeKind::Recipient => None,
        TrusteeKind::User => {
            let Some(id) = t.object_id.as_deref().or(t.upn.as_deref()) else {
                return Ok(None);
            };
            match directory.find_user(id).await? {
                UserLookup::NotFound => Some(ReviewReason::Deleted),
                UserLookup::Ambiguous { .. } => None,
                UserLookup::Found { user, .. } => {
                    if is_guest(t)
                        || user
                            .user_principal_name
                            .to_ascii_lowercase()
                            .contains("#ext#")
                    {
                        Some(ReviewReason::Guest)
                    } else if is_resource_mailbox(t) {
                        None
                    } else if user.account_enabled == Some(false) {
                        Some(ReviewReason::Disabled)
                    } else if activity.is_some_and(|a| a.inactive(t).is_some()) {
                        Some(ReviewReason::Inactive)
                    } else {
                        None
                    }
                }
            }
        }
    })
}

/// Reviews the newest snapshot of `org`'s company; with `inactive_days`, also the enabled
/// users who have not signed in for that many days (where the tenant shows sign-in activity).
pub async fn review(
    index: &dyn PermissionIndex,
    directory: &dyn Directory,
    org: &OrgSettings,
    inactive_days: Option<u32>,
) -> Result<Review, AccessError> {
    let snapshot = index
        .find_snapshot(&org.company_id, &SnapshotRef::Newest)
        .await?
        .ok_or_else(|| AccessError::NoSnapshot(org.company_id.clone()))?;
    let mut notes = snapshot.errors.clone();
    let activity = match inactive_days {
        Some(days) => Activity::read(directory, days, &mut notes).await?,
        None => None,
    };
    let activity = activity.as_ref();
    let IndexHits { trustees, grants } = index.everything(&snapshot.snapshot_id).await?;
    let reasons: Vec<(usize, Option<ReviewReason>)> =
        stream::iter(trustees.iter().enumerate())
            .map(|(i, t)| async move {
                Ok::<_, AccessError>((i, reason(directory, activity, t).await?))
            })
            .buffer_unordered(REVIEW_PARALLELISM)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    let by_id: BTreeMap<&str, &Trustee> = trustees
        .iter()
        .map(|t| (t.trustee_id.as_str(), t))
        .collect();
    let mut listed: Vec<ReviewedTrustee> = reasons
        .into_iter()
        .filter_map(|(i, r)| r.map(|r| (&trustees[i], r)))
        .map(|(t, reason)| ReviewedTrustee {
            trustee: t.name().to_string(),
            reason,
            kind: t.kind,
            upn: t.upn.clone(),
            object_id: t.object_id.clone(),
            last_sign_in: match reason {
                ReviewReason::Inactive => activity.and_then(|a| a.inactive(t)).flatten(),
                _ => None,
            },
            grants: grants
                .iter()
                .filter(|g| g.trustee_id == t.trustee_id)
                .map(|g| entry(g, &by_id))
                .collect(),
        })
        .collect();
    listed.sort_by(|a, b| (a.reason, &a.trustee).cmp(&(b.reason, &b.trustee)));
    let mut summary = BTreeMap::new();
    for t in &listed {
        *summary.entry(t.reason).or_insert(0) += 1;
    }
    Ok(Review {
        company_id: org.company_id.clone(),
        snapshot_id: snapshot.snapshot_id,
        as_of: snapshot.taken_at,
        reviewed_at: Utc::now(),
        summary,
        grants: listed.iter().map(|t| t.grants.len()).sum(),
        trustees: listed,
        notes,
    })
}
