//! A run kind, chosen once. The stages — discovery ([`super::discover`]), the removal batches
//! ([`super::remove`]) and verification ([`super::verify`]) — keep a run's claims, leases,
//! batches, continuations and counts; what differs between a revocation, a containment, a
//! restore of a run and a restore of a snapshot is what its [`Workflow`] supplies: how its
//! items are found, what is done to one, how the tenant is read back, and how the run ends.
//! A new kind of run is a new `Workflow` here, not a branch in every stage.
//!
//! A cleanup run is a revocation whose subject is a trustee that names no one any more: it
//! differs in how the subject is resolved ([`crate::scan::Census`], the checks before removal),
//! not in its stages.

use super::audit_trail::ChainWriter;
use super::reread::{fail_still_present, mark_would_remove, reread, Reread};
use super::{stop_requested, Deadline, Delivery, RunContext};
use crate::error::StepError;
use crate::model::{PlanItem, RestoreOf, Run, RunMode};
use crate::ports::ScanFacts;
use async_trait::async_trait;
use futures_util::future::join_all;
use std::future::Future;

/// What a kind of run does at each stage.
#[async_trait]
pub(crate) trait Workflow: Sync {
    /// Discovery: finds the run's items and stores them, then hands the run to its removal
    /// batches (directly, or through scan shards whose last one counted does).
    async fn plan(&self, cx: RunContext<'_>) -> Result<(), StepError>;

    /// A removal batch: acts on each of `items` (none finished yet), its intent and outcome
    /// audited on `trail`; per item, `false` when its call was not sent because the step's
    /// time was up (it stays pending for the continuation).
    async fn act(
        &self,
        cx: RunContext<'_>,
        trail: &ChainWriter<'_>,
        items: Vec<&PlanItem>,
        deadline: Deadline,
    ) -> Result<Vec<bool>, StepError>;

    /// Verification: reads the tenant back — what it finds is what counts, never the write's
    /// answer — and settles the items it proves wrong. `None`: the deadline came first, and a
    /// continuation goes on where this one stopped.
    async fn reread(
        &self,
        cx: RunContext<'_>,
        items: &mut [PlanItem],
        facts: &ScanFacts,
        delivery: &Delivery,
    ) -> Result<Option<Reread>, StepError>;

    /// The end: the result, the ticket note, the email, the run finished.
    async fn finish(
        &self,
        cx: RunContext<'_>,
        items: &[PlanItem],
        found: Reread,
        facts: ScanFacts,
    ) -> Result<(), StepError>;
}

/// The workflow of `run`'s kind.
pub(crate) fn workflow_of(run: &Run) -> &'static dyn Workflow {
    match &run.restore {
        Some(of) if of.snapshot.is_some() => &RestoreSnapshot,
        Some(_) => &RestoreRun,
        None if run.request.mode == RunMode::Contain => &Revoke {
            contain_first: true,
        },
        None => &Revoke {
            contain_first: false,
        },
    }
}

/// A revocation (and a cleanup): the tenant's grants of the user, found live and removed.
struct Revoke {
    /// A contain run: first the user's sessions, sign-in and mail consents as the company's
    /// `[company.contain]` says ([`super::contain_identity`]), then what the newest
    /// permission-index snapshot lists for the user is removed at once ([`super::contain`]);
    /// then the run goes on as a revocation.
    contain_first: bool,
}

/// A restore of a run: the grants its verified audit trail shows it removed, put back for its
/// user.
struct RestoreRun;

/// A restore of a snapshot of the permission index: a mailbox's grants as the snapshot held
/// them, each put back for its own trustee.
struct RestoreSnapshot;

#[async_trait]
impl Workflow for Revoke {
    async fn plan(&self, cx: RunContext<'_>) -> Result<(), StepError> {
        if self.contain_first {
            super::contain_identity::contain_identity(cx).await?;
            super::contain::contain(cx.store, cx.tenant, cx.org, cx.run).await?;
        }
        super::listing::list(cx).await
    }

    async fn act(
        &self,
        cx: RunContext<'_>,
        trail: &ChainWriter<'_>,
        items: Vec<&PlanItem>,
        deadline: Deadline,
    ) -> Result<Vec<bool>, StepError> {
        in_time(items, deadline, |item| {
            super::revoke::remove_item(cx.store, trail, cx.tenant, cx.run, item)
        })
        .await
    }

    async fn reread(
        &self,
        cx: RunContext<'_>,
        items: &mut [PlanItem],
        facts: &ScanFacts,
        delivery: &Delivery,
    ) -> Result<Option<Reread>, StepError> {
        mark_would_remove(cx, items).await?;
        let Some(found) = reread(cx, items, facts, delivery).await? else {
            return Ok(None);
        };
        fail_still_present(cx, items, &found).await?;
        Ok(Some(found))
    }

    async fn finish(
        &self,
        cx: RunContext<'_>,
        items: &[PlanItem],
        found: Reread,
        facts: ScanFacts,
    ) -> Result<(), StepError> {
        super::run_report::finish(cx, items, found, facts).await
    }
}

#[async_trait]
impl Workflow for RestoreRun {
    async fn plan(&self, cx: RunContext<'_>) -> Result<(), StepError> {
        super::restore::plan(cx, restore_of(cx.run)?).await
    }

    async fn act(
        &self,
        cx: RunContext<'_>,
        trail: &ChainWriter<'_>,
        items: Vec<&PlanItem>,
        deadline: Deadline,
    ) -> Result<Vec<bool>, StepError> {
        let user = cx.run.user.as_ref();
        in_time(items, deadline, |item| {
            super::restore::restore_item(cx.store, trail, cx.tenant, cx.run, (item, user))
        })
        .await
    }

    async fn reread(
        &self,
        cx: RunContext<'_>,
        items: &mut [PlanItem],
        facts: &ScanFacts,
        delivery: &Delivery,
    ) -> Result<Option<Reread>, StepError> {
        reread(cx, items, facts, delivery).await
    }

    async fn finish(
        &self,
        cx: RunContext<'_>,
        items: &[PlanItem],
        found: Reread,
        facts: ScanFacts,
    ) -> Result<(), StepError> {
        super::restore::finish(cx, items, found, facts).await
    }
}

#[async_trait]
impl Workflow for RestoreSnapshot {
    async fn plan(&self, cx: RunContext<'_>) -> Result<(), StepError> {
        super::restore_backup::plan(cx, restore_of(cx.run)?).await
    }

    async fn act(
        &self,
        cx: RunContext<'_>,
        trail: &ChainWriter<'_>,
        items: Vec<&PlanItem>,
        deadline: Deadline,
    ) -> Result<Vec<bool>, StepError> {
        let trustees = super::restore_backup::trustees(cx.store, cx.run).await?;
        in_time(items, deadline, |item| {
            let user = trustees.user_of(&item.grant);
            super::restore::restore_item(cx.store, trail, cx.tenant, cx.run, (item, user))
        })
        .await
    }

    async fn reread(
        &self,
        cx: RunContext<'_>,
        items: &mut [PlanItem],
        _facts: &ScanFacts,
        _delivery: &Delivery,
    ) -> Result<Option<Reread>, StepError> {
        super::restore_backup::reread(cx, items).await.map(Some)
    }

    async fn finish(
        &self,
        cx: RunContext<'_>,
        items: &[PlanItem],
        found: Reread,
        facts: ScanFacts,
    ) -> Result<(), StepError> {
        super::restore::finish(cx, items, found, facts).await
    }
}

/// What a restore run restores.
fn restore_of(run: &Run) -> Result<&RestoreOf, StepError> {
    run.restore
        .as_ref()
        .ok_or_else(|| StepError::Permanent(format!("run {} is not a restore", run.run_id)))
}

/// Acts on each item at once, each call bound by the deadline; an item whose turn comes when
/// the deadline is near, or after a stop was asked for, is not started (`false`).
async fn in_time<'a, F, Fut>(
    items: Vec<&'a PlanItem>,
    deadline: Deadline,
    act: F,
) -> Result<Vec<bool>, StepError>
where
    F: Fn(&'a PlanItem) -> Fut,
    Fut: Future<Output = Result<bool, StepError>>,
{
    let act = &act;
    join_all(items.into_iter().map(|item| async move {
        if deadline.near() || stop_requested() {
            return Ok(false);
        }
        deadline.bound(act(item)).await
    }))
    .await
    .into_iter()
    .collect()
}
