//! Runs the steps in one process: the in-process queue delivers each message to
//! [`dispatch`](crate::steps::dispatch) concurrently, as SQS would, until the queue is empty —
//! or until the process is asked to stop ([`StopSignal`]), when the run is left `interrupted`
//! in the on-disk store for [`LocalEngine::resume`].

use crate::adapters::memory_queue::MemoryQueue;
use crate::adapters::sqlite::store::{RunLock, SqliteRunStore};
use crate::config::RetryPolicy;
use crate::error::StoreError;
use crate::messages::{Step, StepMessage};
use crate::model::{Report, ReportInputs, Run, RunId, RunStatus, Scope, Verification};
use crate::ports::{Connector, ProgressObserver, Queue};
use crate::ports::{RunItems, RunRecords, RunStore};
use crate::steps::{
    abandon, dispatch, intake_as, intake_backup, intake_restore, next_messages, stoppable,
    Delivery, IntakeError,
};
use chrono::Utc;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Redelivery of a message whose step failed for now: three deliveries (SQS's
/// maxReceiveCount) before the run is failed with its error.
const REDELIVERY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
};

/// How long calls already sent may take to finish once the engine is asked to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Asks a running engine to stop: no new removal starts, calls in flight finish (for at most
/// [`STOP_GRACE`]), every outcome is recorded, and the run is left `interrupted`.
#[derive(Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
    reason: Arc<std::sync::Mutex<Option<String>>>,
}

impl StopSignal {
    pub fn stop(&self, reason: &str) {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(|| reason.to_string());
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "stopped".into())
    }

    async fn stopped(&self) {
        let notified = self.notify.notified();
        if self.is_stopped() {
            return;
        }
        notified.await;
    }
}

/// Why `resume` cannot take a run.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no run {0} in this data directory")]
    NotFound(RunId),
    #[error("run {0} has already ended ({1}); there is nothing to resume")]
    Finished(RunId, &'static str),
    #[error("run {0} is being worked on by another revoke365 process")]
    Busy(RunId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct LocalEngine {
    pub store: Arc<SqliteRunStore>,
    pub queue: Arc<MemoryQueue>,
    pub connector: Arc<dyn Connector>,
    pub progress: Arc<dyn ProgressObserver>,
    pub stop: StopSignal,
}

impl LocalEngine {
    /// Validates and accepts a request, then runs it to the end (or until stopped); returns
    /// the run as it ended. `origin` is remembered for `resume`.
    pub async fn run(&self, body: &Value, origin: Option<&str>) -> Result<Run, IntakeError> {
        self.run_watched(None, body, origin, |_| {}).await
    }

    /// [`Self::run`] for `principal` (checked against the company's allow-list and recorded on
    /// the run), telling `accepted` the run's id before its first step (progress output).
    pub async fn run_watched(
        &self,
        principal: Option<&str>,
        body: &Value,
        origin: Option<&str>,
        accepted: impl FnOnce(&RunId),
    ) -> Result<Run, IntakeError> {
        let run = intake_as(
            self.store.as_ref(),
            self.queue.as_ref(),
            principal,
            body,
            None,
        )
        .await?
        .run;
        self.drive_accepted(run, origin, accepted).await
    }

    /// A restore of `source` (see [`intake_restore`]) for `principal`, run to its end like
    /// [`Self::run_watched`].
    pub async fn restore_watched(
        &self,
        principal: Option<&str>,
        source: &RunId,
        body: &Value,
        origin: Option<&str>,
        accepted: impl FnOnce(&RunId),
    ) -> Result<Run, IntakeError> {
        let run = intake_restore(
            self.store.as_ref(),
            self.queue.as_ref(),
            principal,
            source,
            body,
        )
        .await?
        .run;
        self.drive_accepted(run, origin, accepted).await
    }

    /// A backup restore (see [`intake_backup`]) for `principal`, run to its end like
    /// [`Self::run_watched`].
    pub async fn restore_backup_watched(
        &self,
        principal: Option<&str>,
        body: &Value,
        origin: Option<&str>,
        accepted: impl FnOnce(&RunId),
    ) -> Result<Run, IntakeError> {
        let run = intake_backup(self.store.as_ref(), self.queue.as_ref(), principal, body)
            .await?
            .run;
        self.drive_accepted(run, origin, accepted).await
    }

    /// Runs an accepted run to its end (or until stopped), remembering `origin` for resume.
    async fn drive_accepted(
        &self,
        run: Run,
        origin: Option<&str>,
        accepted: impl FnOnce(&RunId),
    ) -> Result<Run, IntakeError> {
        accepted(&run.run_id);
        let lock = self.store.lock_run(&run.run_id)?;
        if let Some(origin) = origin {
            self.store.set_origin(&run.run_id, origin)?;
        }
        let run = self.drive(&run.run_id).await?;
        self.unlock(&run, lock);
        Ok(run)
    }

    /// Removes a finished run's lock file.
    fn unlock(&self, run: &Run, lock: Option<RunLock>) {
        if let (true, Some(lock)) = (run.status.is_terminal(), lock) {
            self.store.drop_lock(&run.run_id, lock);
        }
    }

    /// Goes on with a run that stopped before its end (interrupted, or its process killed):
    /// grants already removed are not removed again; grants whose removal was in flight are
    /// tried again, and one the tenant no longer shows counts as removed by this run.
    pub async fn resume(&self, run_id: &RunId) -> Result<Run, ResumeError> {
        let Some(lock) = self.store.lock_run(run_id)? else {
            return Err(ResumeError::Busy(run_id.clone()));
        };
        let run = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| ResumeError::NotFound(run_id.clone()))?;
        if run.status.is_terminal() {
            return Err(ResumeError::Finished(run_id.clone(), run.status.as_str()));
        }
        let run = self.store.reopen(run_id)?;
        info!(run_id = %run_id, status = run.status.as_str(), "resuming");
        for message in self.resume_messages(&run).await? {
            self.queue
                .send(message)
                .await
                .map_err(|e| StoreError::backend(e.to_string()))?;
        }
        let run = self.drive(run_id).await?;
        self.unlock(&run, Some(lock));
        Ok(run)
    }

    /// The messages that take a reopened run on from its step.
    async fn resume_messages(&self, run: &Run) -> Result<Vec<StepMessage>, StoreError> {
        let id = &run.run_id;
        Ok(match run.status {
            RunStatus::Removing => {
                let items = self.store.items(id).await?;
                let counted = self.store.counted_batches(id)?;
                let left: Vec<StepMessage> = next_messages(run, &items)
                    .into_iter()
                    .filter(|m| match &m.step {
                        Step::Remove(b) => !counted.contains(&b.batch_id),
                        Step::Victim(v) => !counted.contains(&v.batch_id),
                        _ => true,
                    })
                    .collect();
                if left.is_empty() {
                    vec![StepMessage::new(id.clone(), Step::Verify)]
                } else {
                    left
                }
            }
            RunStatus::Verifying => vec![StepMessage::new(id.clone(), Step::Verify)],
            _ => vec![StepMessage::new(id.clone(), Step::Discover)],
        })
    }

    /// Runs the queue to the end; if stopped meanwhile, leaves the run `interrupted`.
    async fn drive(&self, run_id: &RunId) -> Result<Run, StoreError> {
        let stopped = !self.run_until_idle().await;
        if stopped {
            let reason = self.stop.reason();
            info!(run_id = %run_id, %reason, "run interrupted");
            self.store.interrupt(run_id, &reason)?;
        }
        self.store
            .get_run(run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))
    }

    /// Delivers queued messages until none is left and none is being handled (`true`), or
    /// until asked to stop (`false`): then messages still queued are dropped (the store
    /// knows what is left), steps in flight get [`STOP_GRACE`] to finish their calls and
    /// record their outcomes, and are cut off after it.
    pub async fn run_until_idle(&self) -> bool {
        let mut in_flight = JoinSet::new();
        loop {
            if self.stop.is_stopped() {
                break;
            }
            let queued = self.queue.drain().await;
            let nothing_queued = queued.is_empty();
            for message in queued {
                in_flight.spawn(stoppable(
                    self.stop.flag.clone(),
                    deliver(self.clone_parts(), message),
                ));
            }
            tokio::select! {
                next = in_flight.join_next() => {
                    if next.is_none() && nothing_queued {
                        return true;
                    }
                }
                // A step may queue messages before it ends (discovery's scan shards): they
                // start at once.
                Some(message) = self.queue.next(), if !in_flight.is_empty() => {
                    in_flight.spawn(stoppable(
                        self.stop.flag.clone(),
                        deliver(self.clone_parts(), message),
                    ));
                }
                _ = self.stop.stopped() => break,
            }
        }
        let finished = tokio::time::timeout(STOP_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            warn!(
                left = in_flight.len(),
                "calls still in flight after the grace period; cut off (resume re-checks them)"
            );
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
        }
        let dropped = self.queue.drain().await.len();
        info!(dropped, "stopped; queued messages left for resume");
        false
    }

    fn clone_parts(&self) -> Parts {
        Parts {
            store: self.store.clone(),
            queue: self.queue.clone(),
            connector: self.connector.clone(),
            progress: self.progress.clone(),
            stop: self.stop.clone(),
        }
    }
}

/// What an interrupted run has done so far, in the shape of every run's result: status
/// `interrupted`, not successful, what was removed counted, nothing verified yet.
pub async fn partial_report(store: &dyn RunStore, run: &Run) -> Result<Report, StoreError> {
    let items = store.items(&run.run_id).await?;
    let org = store.org_settings(&run.request.company_id).await?;
    let company = org
        .as_ref()
        .map(|o| o.company_name.clone())
        .unwrap_or_default();
    let org_scope = org
        .map(|o| o.m365_permission_removal_scope)
        .unwrap_or_default();
    let during = run
        .interruption
        .as_ref()
        .map(|i| i.during.as_str())
        .unwrap_or(run.status.as_str());
    let mut report = Report::build(ReportInputs {
        run,
        company_name: &company,
        scope: Scope::of(&run.request, &org_scope),
        items: &items,
        verification: Verification::unverified(&items),
        ticket_id: run.request.ticket_id.clone(),
        errors: vec![format!(
            "interrupted while {during}: not verified; grants not yet processed are still in place until the run is resumed"
        )],
        indirect_access: Vec::new(),
        not_checked: Vec::new(),
        finished_at: run.interruption.as_ref().map(|i| i.at).unwrap_or_else(Utc::now),
    });
    report.status = RunStatus::Interrupted;
    report.success = false;
    Ok(report)
}

struct Parts {
    store: Arc<SqliteRunStore>,
    queue: Arc<MemoryQueue>,
    connector: Arc<dyn Connector>,
    progress: Arc<dyn ProgressObserver>,
    stop: StopSignal,
}

/// Handles one message with bounded redelivery of transient failures; a message that cannot
/// be handled is abandoned on its run, with the reason, instead of vanishing. Once the engine
/// is stopped, a failed step is left as it is: resume takes it from the store.
async fn deliver(p: Parts, message: StepMessage) {
    let mut attempt = 1;
    loop {
        let result = dispatch(
            p.store.as_ref(),
            p.queue.as_ref(),
            p.connector.as_ref(),
            p.progress.as_ref(),
            &message,
            &Delivery::local(),
        )
        .await;
        match result {
            Ok(()) => return,
            Err(e) if p.stop.is_stopped() => {
                info!(run_id = %message.run_id, kind = message.kind(), error = %e, "step stopped");
                return;
            }
            Err(e) if e.is_transient() && REDELIVERY.allows_another(attempt) => {
                warn!(run_id = %message.run_id, kind = message.kind(), attempt, error = %e, "step failed; redelivering");
                tokio::select! {
                    _ = tokio::time::sleep(REDELIVERY.delay(attempt, None)) => {}
                    _ = p.stop.stopped() => return,
                }
                attempt += 1;
            }
            Err(e) => {
                let reason = format!("{} step failed after {attempt} tries: {e}", message.kind());
                abandon(
                    p.store.as_ref(),
                    p.queue.as_ref(),
                    p.connector.as_ref(),
                    &message.run_id,
                    Some(&message.step),
                    &reason,
                )
                .await;
                return;
            }
        }
    }
}
