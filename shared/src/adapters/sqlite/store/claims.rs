//! Claims and leases: who holds a run, and what is stalled.

use super::*;

#[async_trait]
impl RunLeases for SqliteRunStore {
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        working: RunStatus,
        holder: &str,
        lease: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        self.with_run(run_id, |run| {
            let now = Utc::now();
            let free = run.lease_until.is_none_or(|until| until <= now)
                || run.lease_holder.as_deref() == Some(holder);
            if run.status == from || (run.status == working && free) {
                run.status = working;
                run.status_changed_at = now;
                run.lease_holder = Some(holder.to_string());
                run.lease_until = Some(now + lease);
                Claim::Acquired
            } else if run.status == working {
                Claim::Busy {
                    holder: run.lease_holder.clone().unwrap_or_default(),
                    until: run.lease_until.unwrap_or(now),
                }
            } else {
                Claim::NotHere(run.status)
            }
        })
    }

    async fn release(&self, run_id: &RunId, holder: &str) -> Result<(), StoreError> {
        self.with_run(run_id, |run| {
            if run.lease_holder.as_deref() == Some(holder) {
                run.lease_until = Some(Utc::now());
            }
        })
    }

    async fn stalled_runs(&self, before: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let texts: Vec<String> = {
            let db = self.conn();
            let mut stmt = db
                .prepare("SELECT run FROM runs WHERE status IN ('accepted', 'discovering', 'removing', 'verifying')")
                .map_err(|e| db_error("list runs", e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| db_error("list runs", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| db_error("list runs", e))?
        };
        let now = Utc::now();
        Ok(texts
            .iter()
            .map(|t| from_json::<Run>("run", t))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|r| r.updated_at < before && r.lease_until.is_none_or(|u| u < now))
            .collect())
    }

    async fn count_redrive(&self, run_id: &RunId) -> Result<u32, StoreError> {
        self.with_run(run_id, |run| {
            run.redrives += 1;
            run.redrives
        })
    }
}
