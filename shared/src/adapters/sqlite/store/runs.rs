//! Runs and their lifecycle in the SQLite file.

use super::*;

#[async_trait]
impl RunRecords for SqliteRunStore {
    async fn create_run(&self, run: &Run) -> Result<(), StoreError> {
        insert_run(&self.conn(), run)
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        if let Some(run) = self.read_run(&self.conn(), run_id)? {
            return Ok(Some(run));
        }
        self.import_legacy(run_id)
    }

    async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<RunPage, StoreError> {
        let after: Option<HistoryPosition> = after.map(page_token::decode).transpose()?;
        let limit = limit.clamp(1, MAX_RUN_PAGE);
        let (runs, more) = list_runs(&self.conn(), filter, limit, after.as_ref())?;
        let next = match runs.last() {
            Some(last) if more => Some(page_token::encode(&HistoryPosition {
                created_at: last.created_at.to_rfc3339(),
                run_id: last.run_id.0.clone(),
            })),
            _ => None,
        };
        let mut summaries = Vec::with_capacity(runs.len());
        for run in &runs {
            let mut summary = match RunSummary::counts_need_items(run) {
                true => {
                    self.settle_if_stopped(run)?;
                    RunSummary::with_items(run, &self.items(&run.run_id).await?)
                }
                false => RunSummary::of(run),
            };
            summary.needs_resume = self.is_resumable(run);
            summaries.push(summary);
        }
        Ok(RunPage {
            runs: summaries,
            next,
        })
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        self.write_result_file(run_id, report)?;
        self.with_run(run_id, |run| {
            run.end(report.status);
            run.result = Some(report.clone());
        })
    }

    async fn finish_restore(
        &self,
        run_id: &RunId,
        report: &RestoreReport,
    ) -> Result<(), StoreError> {
        self.write_result_file(run_id, report)?;
        self.with_run(run_id, |run| {
            run.end(report.status);
            run.restore_result = Some(report.clone());
        })
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        self.with_run(run_id, |run| {
            // A finished run keeps its result: a late failure of a stray message changes nothing.
            if run.status.is_terminal() {
                return;
            }
            run.status = RunStatus::Failed;
            run.status_changed_at = Utc::now();
            run.lease_holder = None;
            run.lease_until = None;
            run.failure = Some(failure.clone());
        })
    }

    async fn request_cancel(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        if self.get_run(run_id).await?.is_none() {
            return Ok(None);
        }
        self.update_run(run_id, |run| {
            if !run.status.is_terminal() {
                run.cancel_requested = true;
            }
        })
    }
}
