//! The run store for one machine: run state in memory, the audit trail on disk as JSON lines
//! (`<dir>/<run_id>.audit.jsonl`, each record flushed to disk before the call it precedes), and
//! each finished run's report beside it (`<run_id>.result.json`), and the manifest of the
//! trail's hash chains once the run verified (`<run_id>.audit-manifest.json`). Every file is
//! created readable by its owner only.

use crate::error::StoreError;
use crate::model::{
    AuditManifest, AuditRecord, ItemId, ItemStatus, OrgSettings, PlanItem, Report, ResolvedUser,
    Run, RunFailure, RunId, RunStatus,
};
use crate::ports::{
    BatchProgress, Claim, Effect, EffectState, KeyHolder, RereadChunk, RunStore, ScanFacts,
    IDEMPOTENCY_WINDOW,
};
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
    shards_done: BTreeSet<u32>,
    facts: BTreeMap<String, ScanFacts>,
    reread: BTreeMap<u32, RereadChunk>,
    effects: BTreeMap<Effect, EffectState>,
}

/// Who holds an idempotency key, for which request, since when.
struct KeyEntry {
    run_id: RunId,
    fingerprint: String,
    reserved_at: DateTime<Utc>,
}

pub struct FileRunStore {
    dir: PathBuf,
    orgs: BTreeMap<String, OrgSettings>,
    runs: Mutex<HashMap<RunId, RunState>>,
    idempotency: Mutex<HashMap<String, KeyEntry>>,
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

    pub fn manifest_path(&self, run_id: &RunId) -> PathBuf {
        audit_manifest_path(&self.dir, run_id)
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

    /// Makes a run look as if nothing had touched it since `at` (tests of the sweeper).
    pub fn backdate(&self, run_id: &RunId, at: DateTime<Utc>) {
        if let Some(state) = self.runs.lock().expect("run store lock").get_mut(run_id) {
            state.run.updated_at = at;
            state.run.lease_until = state.run.lease_until.map(|u| u.min(at));
        }
    }
}

/// Where the manifest of a run's audit chains is kept in an audit directory.
pub fn audit_manifest_path(dir: &Path, run_id: &RunId) -> PathBuf {
    dir.join(format!("{run_id}.audit-manifest.json"))
}

/// Reads the manifest of a run's audit chains; `None` when the run never anchored one.
pub fn read_audit_manifest(path: &Path) -> Result<Option<AuditManifest>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::backend(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Options that create a file readable and writable by its owner only (audit trails and
/// reports name people and mailboxes).
fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
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
        fingerprint: &str,
    ) -> Result<KeyHolder, StoreError> {
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        let now = Utc::now();
        match keys.get(key) {
            Some(e) if e.reserved_at + IDEMPOTENCY_WINDOW > now => Ok(KeyHolder::Held {
                run_id: e.run_id.clone(),
                fingerprint: e.fingerprint.clone(),
                reserved_at: e.reserved_at,
            }),
            _ => {
                keys.insert(
                    key.to_string(),
                    KeyEntry {
                        run_id: run_id.clone(),
                        fingerprint: fingerprint.to_string(),
                        reserved_at: now,
                    },
                );
                Ok(KeyHolder::Reserved)
            }
        }
    }

    async fn replace_idempotency_key(
        &self,
        key: &str,
        from: &RunId,
        to: &RunId,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        if keys.get(key).is_none_or(|e| &e.run_id != from) {
            return Ok(false);
        }
        keys.insert(
            key.to_string(),
            KeyEntry {
                run_id: to.clone(),
                fingerprint: fingerprint.to_string(),
                reserved_at: Utc::now(),
            },
        );
        Ok(true)
    }

    async fn release_idempotency_key(&self, key: &str, run_id: &RunId) -> Result<(), StoreError> {
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        if keys.get(key).is_some_and(|e| &e.run_id == run_id) {
            keys.remove(key);
        }
        Ok(())
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
                shards_done: BTreeSet::new(),
                facts: BTreeMap::new(),
                reread: BTreeMap::new(),
                effects: BTreeMap::new(),
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

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        working: RunStatus,
        holder: &str,
        lease: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        self.with_run(run_id, |s| {
            let now = Utc::now();
            let run = &mut s.run;
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
        self.with_run(run_id, |s| {
            if s.run.lease_holder.as_deref() == Some(holder) {
                s.run.lease_until = Some(Utc::now());
            }
        })
    }

    async fn stalled_runs(&self, before: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let runs = self.runs.lock().expect("run store lock");
        Ok(runs
            .values()
            .map(|s| &s.run)
            .filter(|r| {
                (r.status.is_working() || r.status == RunStatus::Accepted)
                    && r.updated_at < before
                    && r.lease_until.is_none_or(|u| u < Utc::now())
            })
            .cloned()
            .collect())
    }

    async fn count_redrive(&self, run_id: &RunId) -> Result<u32, StoreError> {
        self.with_run(run_id, |s| {
            s.run.redrives += 1;
            s.run.redrives
        })
    }

    async fn begin_scan(
        &self,
        run_id: &RunId,
        user: &ResolvedUser,
        shards_total: u32,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            s.run.user = Some(user.clone());
            s.run.shards_total = shards_total;
        })
    }

    async fn put_items(&self, run_id: &RunId, items: &[PlanItem]) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            for item in items {
                s.items.insert(item.id, item.clone());
            }
        })
    }

    async fn save_facts(
        &self,
        run_id: &RunId,
        part: &str,
        facts: &ScanFacts,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            s.facts.insert(part.to_string(), facts.clone());
        })
    }

    async fn scan_facts(&self, run_id: &RunId) -> Result<ScanFacts, StoreError> {
        self.with_run(run_id, |s| {
            let mut all = ScanFacts::default();
            for facts in s.facts.values() {
                all.merge(facts.clone());
            }
            all.settle()
        })
    }

    async fn complete_shard(
        &self,
        run_id: &RunId,
        shard_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        self.with_run(run_id, |s| {
            let newly_counted = s.shards_done.insert(shard_id);
            s.run.shards_done = s.shards_done.len() as u32;
            BatchProgress {
                newly_counted,
                done: s.run.shards_done,
                total: s.run.shards_total,
            }
        })
    }

    async fn start_removal(&self, run_id: &RunId, batches_total: u32) -> Result<bool, StoreError> {
        self.with_run(run_id, |s| {
            if s.run.status != RunStatus::Discovering {
                return false;
            }
            s.run.batches_total = batches_total;
            s.run.status = RunStatus::Removing;
            s.run.status_changed_at = Utc::now();
            s.run.lease_holder = None;
            s.run.lease_until = None;
            true
        })
    }

    async fn reread_chunks(&self, run_id: &RunId) -> Result<Vec<RereadChunk>, StoreError> {
        self.with_run(run_id, |s| s.reread.values().cloned().collect())
    }

    async fn save_reread_chunk(
        &self,
        run_id: &RunId,
        chunk: &RereadChunk,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            s.reread.insert(chunk.chunk, chunk.clone());
        })
    }

    async fn begin_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
    ) -> Result<EffectState, StoreError> {
        self.with_run(run_id, |s| match s.effects.get(&effect) {
            Some(EffectState::Started) | Some(EffectState::Unknown) => EffectState::Unknown,
            Some(done) => done.clone(),
            None => {
                s.effects.insert(effect, EffectState::Started);
                EffectState::Started
            }
        })
    }

    async fn end_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
        outcome: &EffectState,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            s.effects.insert(effect, outcome.clone());
        })
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        self.with_run(run_id, |s| s.items.values().cloned().collect())
    }

    async fn get_items(&self, run_id: &RunId, ids: &[ItemId]) -> Result<Vec<PlanItem>, StoreError> {
        self.with_run(run_id, |s| {
            ids.iter()
                .filter_map(|id| s.items.get(id).cloned())
                .collect()
        })
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
        let mut file = owner_only()
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

    async fn anchor_audit(
        &self,
        run_id: &RunId,
        manifest: &AuditManifest,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::backend(e.to_string()))?;
        let mut file = match owner_only()
            .write(true)
            .create_new(true)
            .open(self.manifest_path(run_id))
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        file.write_all(&json)?;
        file.sync_data()?;
        Ok(true)
    }

    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError> {
        read_audit_manifest(&self.manifest_path(run_id))
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(report).map_err(|e| StoreError::backend(e.to_string()))?;
        owner_only()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.result_path(run_id))?
            .write_all(&json)?;
        self.with_run(run_id, |s| {
            s.run.status = report.status;
            s.run.status_changed_at = Utc::now();
            s.run.lease_holder = None;
            s.run.lease_until = None;
            s.run.result = Some(report.clone());
        })
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        self.with_run(run_id, |s| {
            // A finished run keeps its result: a late failure of a stray message changes nothing.
            if s.run.status.is_terminal() {
                return;
            }
            s.run.status = RunStatus::Failed;
            s.run.status_changed_at = Utc::now();
            s.run.lease_holder = None;
            s.run.lease_until = None;
            s.run.failure = Some(failure.clone());
        })
    }
}
