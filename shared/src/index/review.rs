//! Access review: from the newest snapshot and one directory read per trustee, the grants held
//! by accounts that should hold none — disabled, deleted, orphaned SIDs and names nothing
//! resolves to, guests and external addresses — grouped by trustee.

use super::access::{entry, AccessEntry, AccessError};
use crate::model::{IndexHits, OrgSettings, SnapshotRef, Trustee, TrusteeKind};
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
}

impl ReviewReason {
    /// Whether the trustee exists as a directory user a revocation can be run for.
    pub fn is_user(self) -> bool {
        matches!(self, ReviewReason::Disabled | ReviewReason::Guest)
    }

    pub fn label(self) -> &'static str {
        match self {
            ReviewReason::Disabled => "disabled accounts",
            ReviewReason::Deleted => "deleted users",
            ReviewReason::OrphanedSid => "orphaned SIDs",
            ReviewReason::Unresolved => "names that resolve to nothing",
            ReviewReason::Guest => "guests",
            ReviewReason::External => "external addresses",
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
    pub grants: Vec<AccessEntry>,
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

/// Why `t` is listed, asking the directory about users; `None`: nothing to review.
async fn reason(
    directory: &dyn Directory,
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
                    } else if user.account_enabled == Some(false) && !is_resource_mailbox(t) {
                        Some(ReviewReason::Disabled)
                    } else {
                        None
                    }
                }
            }
        }
    })
}

/// Reviews the newest snapshot of `org`'s company.
pub async fn review(
    index: &dyn PermissionIndex,
    directory: &dyn Directory,
    org: &OrgSettings,
) -> Result<Review, AccessError> {
    let snapshot = index
        .find_snapshot(&org.company_id, &SnapshotRef::Newest)
        .await?
        .ok_or_else(|| AccessError::NoSnapshot(org.company_id.clone()))?;
    let IndexHits { trustees, grants } = index.everything(&snapshot.snapshot_id).await?;
    let reasons: Vec<(usize, Option<ReviewReason>)> = stream::iter(trustees.iter().enumerate())
        .map(|(i, t)| async move { Ok::<_, AccessError>((i, reason(directory, t).await?)) })
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
        notes: snapshot.errors,
    })
}
