//! The permission index as the baseline that tells a victim mailbox's recent delegates from
//! old ones: the grants on the mailbox in the newest snapshot at least N days old.

use crate::error::StoreError;
use crate::model::{PermissionType, SnapshotRef};
use crate::ports::{DelegateBaseline, PermissionIndex};
use async_trait::async_trait;
use chrono::Utc;

pub struct IndexBaseline<'a>(pub &'a dyn PermissionIndex);

#[async_trait]
impl DelegateBaseline for IndexBaseline<'_> {
    async fn baseline(
        &self,
        company_id: &str,
        mailbox: &str,
        min_age_days: u32,
    ) -> Result<Option<Vec<(PermissionType, String)>>, StoreError> {
        let before = Utc::now() - chrono::Duration::days(i64::from(min_age_days));
        let Some(old) = self
            .0
            .find_snapshot(company_id, &SnapshotRef::AsOf(before))
            .await?
        else {
            return Ok(None);
        };
        let hits = self.0.held_on(&old.snapshot_id, mailbox).await?;
        // Each grant under every name its trustee had (UPN, address, the value shown).
        let mut out = Vec::new();
        for g in &hits.grants {
            let names = hits
                .trustees
                .iter()
                .find(|t| t.trustee_id == g.trustee_id)
                .map(|t| t.keys())
                .unwrap_or_default();
            out.extend(
                names
                    .into_iter()
                    .chain([g.trustee_as_shown.to_ascii_lowercase()])
                    .map(|n| (g.right, n)),
            );
        }
        out.sort();
        out.dedup();
        Ok(Some(out))
    }
}
