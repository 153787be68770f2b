//! The run store for one machine: run state in memory, the audit trail on disk as JSON lines
//! (`<dir>/<run_id>.audit.jsonl`, each record flushed to disk before the call it precedes), and
//! each finished run's report beside it (`<run_id>.result.json`).

use crate::error::StoreError;
use crate::model::{
    AuditRecord, ItemId, ItemStatus, OrgSettings, PlanItem, Report, Run, RunFailure, RunId,
    RunStatus,
};
use crate::ports::{BatchProgress, Plan, RunStore, IDEMPOTENCY_WINDOW};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct RunState {
    run: Run,
    items: BTreeMap<ItemId, PlanItem>,
    batches_done: BTreeSet<u32>,
}

pub struct FileRunStore {
    dir: PathBuf,
    orgs: BTreeMap<String, OrgSettings>,
    runs: Mutex<HashMap<RunId, RunState>>,
    idempotency: Mutex<HashMap<String, (RunId, DateTime<Utc>)>>,
    /// Ids (`run/record`) of the audit records written; the lock also serializes appends so
    /// concurrent batches never interleave partial lines.
    audit_file: Mutex<HashSet<String>>,
}

impl FileRunStore {
    pub fn open(
        dir: impl Into<PathBuf>,
        orgs: Vec<OrgSettings>,
    ) -> Result<FileRunStore, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(FileRunStore {
            dir,
            orgs: orgs
                .into_iter()
                .map(|o| (o.company_id.clone(), o))
                .collect(),
            runs: Mutex::new(HashMap::new()),
            idempotency: Mutex::new(HashMap::new()),
            audit_file: Mutex::new(HashSet::new()),
        })
    }

    pub fn audit_path(&self, run_id: &RunId) -> PathBuf {
        self.dir.join(format!("{run_id}.audit.jsonl"))
    }

    pub fn result_path(&self, run_id: &RunId) -> PathBuf {
        self.dir.join(format!("{run_id}.result.json"))
    }

    fn with_run<T>(
        &self,
        run_id: &RunId,
        f: impl FnOnce(&mut RunState) -> T,
    ) -> Result<T, StoreError> {
        let mut runs = self.runs.lock().expect("run store lock");
        let state = runs
            .get_mut(run_id)
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        state.run.updated_at = Utc::now();
        Ok(f(state))
    }
}

/// Reads an audit file, keeping the last record for each record id (a redelivered step may
/// write one twice).
pub fn read_audit_file(path: &Path) -> Result<Vec<AuditRecord>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut by_id: BTreeMap<String, AuditRecord> = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: AuditRecord = serde_json::from_str(line)
            .map_err(|e| StoreError::backend(format!("{} line {}: {e}", path.display(), n + 1)))?;
        by_id.insert(record.record_id.clone(), record);
    }
    Ok(by_id.into_values().collect())
}

#[async_trait]
impl RunStore for FileRunStore {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        Ok(self.orgs.get(company_id).cloned())
    }

    async fn company_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.orgs.keys().cloned().collect())
    }

    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
    ) -> Result<Option<RunId>, StoreError> {
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        let now = Utc::now();
        match keys.get(key) {
            Some((existing, expires)) if *expires > now => Ok(Some(existing.clone())),
            _ => {
                keys.insert(key.to_string(), (run_id.clone(), now + IDEMPOTENCY_WINDOW));
                Ok(None)
            }
        }
    }

    async fn create_run(&self, run: &Run) -> Result<(), StoreError> {
        let mut runs = self.runs.lock().expect("run store lock");
        if runs.contains_key(&run.run_id) {
            return Err(StoreError::backend(format!(
                "run {} already exists",
                run.run_id
            )));
        }
        runs.insert(
            run.run_id.clone(),
            RunState {
                run: run.clone(),
                items: BTreeMap::new(),
                batches_done: BTreeSet::new(),
            },
        );
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        Ok(self
            .runs
            .lock()
            .expect("run store lock")
            .get(run_id)
            .map(|s| s.run.clone()))
    }

    async fn transition(
        &self,
        run_id: &RunId,
        from: &[RunStatus],
        to: RunStatus,
    ) -> Result<bool, StoreError> {
        self.with_run(run_id, |s| {
            let moved = from.contains(&s.run.status);
            if moved {
                s.run.status = to;
                s.run.status_changed_at = Utc::now();
            }
            moved
        })
    }

    async fn save_plan(&self, run_id: &RunId, plan: &Plan) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            if s.run.status != RunStatus::Discovering {
                return Err(StoreError::backend(format!(
                    "run {run_id} is {}, not discovering",
                    s.run.status.as_str()
                )));
            }
            s.run.user = Some(plan.user.clone());
            s.run.indirect_access = plan.indirect_access.clone();
            s.run.batches_total = plan.batches_total;
            s.run.scan_errors = plan.scan_errors.clone();
            s.run.not_checked = plan.not_checked.clone();
            s.items = plan.items.iter().map(|i| (i.id, i.clone())).collect();
            s.run.status = RunStatus::Removing;
            s.run.status_changed_at = Utc::now();
            Ok(())
        })?
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        self.with_run(run_id, |s| s.items.values().cloned().collect())
    }

    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |s| match s.items.get_mut(&item) {
            Some(i) => {
                i.status = i.status.merge(status.clone());
                Ok(())
            }
            None => Err(StoreError::backend(format!(
                "run {run_id} has no item {item}"
            ))),
        })?
    }

    async fn complete_batch(
        &self,
        run_id: &RunId,
        batch_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        self.with_run(run_id, |s| {
            let newly_counted = s.batches_done.insert(batch_id);
            s.run.batches_done = s.batches_done.len() as u32;
            BatchProgress {
                newly_counted,
                done: s.run.batches_done,
                total: s.run.batches_total,
            }
        })
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| StoreError::backend(e.to_string()))?;
        line.push(b'\n');
        let mut written = self.audit_file.lock().expect("audit lock");
        if !written.insert(format!("{}/{}", record.run_id, record.record_id)) {
            return Ok(false);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.audit_path(&record.run_id))?;
        file.write_all(&line)?;
        file.sync_data()?;
        Ok(true)
    }

    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        read_audit_file(&self.audit_path(run_id))
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(report).map_err(|e| StoreError::backend(e.to_string()))?;
        fs::write(self.result_path(run_id), json)?;
        self.with_run(run_id, |s| {
            s.run.status = report.status;
            s.run.status_changed_at = Utc::now();
            s.run.result = Some(report.clone());
        })
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            // A finished run keeps its result: a late failure of a stray message changes nothing.
            if matches!(
                s.run.status,
                RunStatus::Completed | RunStatus::CompletedWithErrors
            ) {
                return;
            }
            s.run.status = RunStatus::Failed;
            s.run.status_changed_at = Utc::now();
            s.run.failure = Some(failure.clone());
        })
    }
}
