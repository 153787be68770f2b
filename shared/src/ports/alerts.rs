//! Security alerts: where they are read, and what the poller remembers.

use crate::error::{RemoteError, StoreError};
use crate::model::{AlertSourceKind, RiskyUser, RunId, SecurityAlert};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Microsoft's alert APIs on Graph: Defender XDR alerts and Entra ID Protection risky users.
#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Every `alerts_v2` alert updated after `since`, all pages.
    async fn security_alerts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<SecurityAlert>, RemoteError>;
    /// Every risky user whose risk changed after `since`, all pages.
    async fn risky_users(&self, since: DateTime<Utc>) -> Result<Vec<RiskyUser>, RemoteError>;
}

/// What the alert poller remembers between polls: how far each feed of a company has been
/// read, and which alert started which run (for [`crate::model::ALERT_DEDUPE_WINDOW`]).
#[async_trait]
pub trait AlertLedger: Send + Sync {
    /// The newest change a feed (`defender`, `entra_id_protection`) of the company was read to.
    async fn watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn save_watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The run the alert with this key (a fixed-length hash) started within the window.
    async fn alert_run(&self, key: &str) -> Result<Option<RunId>, StoreError>;
    /// Remembers that the alert with this key started `run_id`, until `until`, unless another
    /// run is remembered for it already (that one is kept, and returned).
    async fn remember_alert_run(
        &self,
        key: &str,
        run_id: &RunId,
        until: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError>;
    /// Counts one contain run against the company's budget for the clock hour `hour` (UTC,
    /// `2026-12-07T14`): true when fewer than `limit` were counted in that hour (this one now
    /// is), false when the hour's budget is spent. Safe under concurrent callers.
    async fn take_contain_budget(
        &self,
        company_id: &str,
        hour: &str,
        limit: u32,
    ) -> Result<bool, StoreError>;
    /// Marks `key` (a fixed-length hash) until `until`: true when this call marked it, false
    /// when it was marked already. What an alert decided without a run (a user left awaiting
    /// approval, the approval notice sent) is remembered this way.
    async fn mark_alert(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Whether `key` is marked and its mark has not expired.
    async fn alert_marked(&self, key: &str) -> Result<bool, StoreError>;
}
