//! A run: one request moving through the steps.

use super::{
    Interruption, Report, ResolvedUser, RestoreOf, RestoreReport, RevocationRequest, RunFailure,
    RunId, RunKind, RunStatus,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    pub request: RevocationRequest,
    pub status: RunStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When `status` last changed (or was re-claimed): a step's lease is measured from it.
    pub status_changed_at: DateTime<Utc>,
    #[serde(default)]
    pub user: Option<ResolvedUser>,
    /// Discovery's parts: the tenant-wide lookups and each shard of mailboxes.
    #[serde(default)]
    pub shards_total: u32,
    #[serde(default)]
    pub shards_done: u32,
    #[serde(default)]
    pub batches_total: u32,
    #[serde(default)]
    pub batches_done: u32,
    /// Who holds the run's current step, and until when.
    #[serde(default)]
    pub lease_holder: Option<String>,
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
    /// How often the sweeper re-drove the run after its step stalled.
    #[serde(default)]
    pub redrives: u32,
    #[serde(default)]
    pub failure: Option<RunFailure>,
    #[serde(default)]
    pub result: Option<Report>,
    /// Set while the run is `interrupted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<Interruption>,
    /// A caller asked to stop the run: no further removal batch starts.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The Microsoft 365 tenant the run acted on (from the company's settings at intake), so
    /// that a restore never writes to another tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Set on a restore run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreOf>,
    /// A restore run's result (a revocation's is `result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_result: Option<RestoreReport>,
}

impl Run {
    /// Who sent the request, as its trigger proved it (kept with the request).
    pub fn requested_by_principal(&self) -> Option<&str> {
        self.request.requested_by_principal.as_deref()
    }

    pub fn new(request: RevocationRequest) -> Run {
        let now = Utc::now();
        Run {
            run_id: RunId::new(),
            request,
            status: RunStatus::Accepted,
            created_at: now,
            updated_at: now,
            status_changed_at: now,
            user: None,
            shards_total: 0,
            shards_done: 0,
            batches_total: 0,
            batches_done: 0,
            lease_holder: None,
            lease_until: None,
            redrives: 0,
            failure: None,
            result: None,
            interruption: None,
            cancel_requested: false,
            tenant_id: None,
            restore: None,
            restore_result: None,
        }
    }

    /// Ends the run at `status`: no step holds it any more.
    pub fn end(&mut self, status: RunStatus) {
        self.status = status;
        self.status_changed_at = Utc::now();
        self.lease_holder = None;
        self.lease_until = None;
        self.interruption = None;
    }

    pub fn kind(&self) -> RunKind {
        if self.restore.is_some() {
            RunKind::Restore
        } else {
            RunKind::Revoke
        }
    }
}
