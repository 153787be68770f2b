//! The run store for one machine. Run state lives in one SQLite file, `<dir>/revoke365.db`
//! (runs, their items, counted batches and shards, scan facts, re-read chunks, side effects and
//! idempotency keys), so that a run stopped in any way — Ctrl-C, a killed process, a crash —
//! can be resumed from what is on disk. The audit trail stays beside it as JSON lines
//! (`<dir>/<run_id>.audit.jsonl`, each record flushed to disk before the call it precedes), with
//! each finished run's report (`<run_id>.result.json`).
//!
//! The first release kept only those two files: a run that has them and no row is imported
//! from them the first time it is asked for (see [`legacy_run`]).

use super::db::{db_error, from_json, to_json};
use crate::adapters::page_token;
use crate::error::StoreError;
use crate::model::{
    AuditManifest, AuditPhase, AuditRecord, AuditResult, Interruption, ItemId, ItemStatus,
    OrgSettings, PlanItem, Report, ResolvedUser, RestoreReport, RevocationRequest, Run, RunFailure,
    RunFilter, RunId, RunPage, RunStatus, RunSummary, MAX_RUN_PAGE,
};
use crate::ports::{
    AuditTrail, EffectLog, IdempotencyKeys, OrgStore, RunItems, RunLeases, RunRecords, StoreIndexes,
};
use crate::ports::{
    BatchProgress, Claim, Effect, EffectState, KeyHolder, RereadChunk, ScanFacts,
    IDEMPOTENCY_WINDOW,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

mod audit;
mod claims;
mod effects;
mod idempotency;
mod indexes;
mod items;
mod org;
mod runs;

/// The database file in the data directory.
pub const DB_FILE: &str = "revoke365.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    company_id TEXT NOT NULL,
    user_email TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run        TEXT NOT NULL,
    origin     TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (company_id, user_email);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at, run_id);
CREATE INDEX IF NOT EXISTS runs_by_company_created ON runs (company_id, created_at, run_id);
CREATE TABLE IF NOT EXISTS items (
    run_id  TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    state   TEXT NOT NULL,
    item    TEXT NOT NULL,
    PRIMARY KEY (run_id, item_id)
);
CREATE TABLE IF NOT EXISTS counted (
    run_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    part   INTEGER NOT NULL,
    PRIMARY KEY (run_id, kind, part)
);
CREATE TABLE IF NOT EXISTS facts (
    run_id TEXT NOT NULL,
    part   TEXT NOT NULL,
    facts  TEXT NOT NULL,
    PRIMARY KEY (run_id, part)
);
CREATE TABLE IF NOT EXISTS reread (
    run_id TEXT NOT NULL,
    chunk  INTEGER NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
CREATE TABLE IF NOT EXISTS effects (
    run_id TEXT NOT NULL,
    effect TEXT NOT NULL,
    state  TEXT NOT NULL,
    PRIMARY KEY (run_id, effect)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reserved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_runs (
    key    TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    until  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_marks (
    key   TEXT PRIMARY KEY,
    until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_contain_budget (
    company_id TEXT NOT NULL,
    hour       TEXT NOT NULL,
    taken      INTEGER NOT NULL,
    PRIMARY KEY (company_id, hour)
);
CREATE TABLE IF NOT EXISTS alert_watermarks (
    company_id TEXT NOT NULL,
    feed       TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (company_id, feed)
);
PRAGMA user_version = 1;
";

pub struct SqliteRunStore {
    dir: PathBuf,
    orgs: BTreeMap<String, OrgSettings>,
    db: Mutex<Connection>,
    /// Per run, the ids of the audit records in its file (read from it on first use); the lock
    /// also serializes appends so that concurrent batches never interleave partial lines.
    audit: Mutex<HashMap<RunId, WrittenAudit>>,
    /// Where the permission index is kept apart (a sandbox fixture); none: by company alone.
    index_scope: Option<String>,
    /// The key that seals audit manifests, under `keys/` (apart from the trail's files).
    seal: super::audit_key::FileAuditSeal,
}

/// What a run's audit file holds, for conditional appends: its record ids, and the places
/// (`chain`, `seq`) its chained records take.
#[derive(Default)]
struct WrittenAudit {
    ids: HashSet<String>,
    places: HashSet<(String, u64)>,
}

impl WrittenAudit {
    fn of(records: Vec<AuditRecord>) -> WrittenAudit {
        let mut written = WrittenAudit::default();
        for r in records {
            if let (Some(chain), Some(seq)) = (r.chain, r.seq) {
                written.places.insert((chain, seq));
            }
            written.ids.insert(r.record_id);
        }
        written
    }
}

/// Held while this process works on a run: an exclusive lock on `<dir>/<run_id>.lock`, which
/// the operating system releases when the process ends in any way (Ctrl-C, SIGKILL, a crash).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// What [`SqliteRunStore::open`] cannot get past.
fn status_text(status: RunStatus) -> &'static str {
    status.as_str()
}

fn item_state(status: &ItemStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl SqliteRunStore {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(
        dir: impl Into<PathBuf>,
        orgs: Vec<OrgSettings>,
    ) -> Result<SqliteRunStore, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let path = dir.join(DB_FILE);
        let db = Connection::open(&path)
            .map_err(|e| db_error(&format!("cannot open {}", path.display()), e))?;
        // Run state names people and mailboxes: the owner's only.
        #[cfg(unix)]
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        // WAL with NORMAL sync survives a killed process (only a machine crash may lose the
        // last commits); the busy timeout lets two CLI processes share the file.
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| db.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|_| db.busy_timeout(std::time::Duration::from_secs(10)))
            .and_then(|_| db.execute_batch(SCHEMA))
            .and_then(|_| db.execute_batch(super::schema::INDEX_SCHEMA))
            .map_err(|e| db_error(&format!("cannot set up {}", path.display()), e))?;
        let seal = super::audit_key::FileAuditSeal::new(&dir);
        let store = SqliteRunStore {
            dir,
            orgs: orgs
                .into_iter()
                .map(|o| (o.company_id.clone(), o))
                .collect(),
            db: Mutex::new(db),
            audit: Mutex::new(HashMap::new()),
            index_scope: None,
            seal,
        };
        store.import_legacy_runs()?;
        Ok(store)
    }

    /// Imports every run of the first release in the directory (audit files with no row), so
    /// that an interrupted one is found by user and company like any other.
    fn import_legacy_runs(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name.strip_suffix(".audit.jsonl") else {
                continue;
            };
            let run_id = RunId(id.to_string());
            if self.read_run(&self.conn(), &run_id)?.is_none() {
                if let Err(e) = self.import_legacy(&run_id) {
                    tracing::warn!(run_id = %run_id, error = %e, "an audit file with no run could not be read as a first-release run");
                }
            }
        }
        Ok(())
    }

    /// Keeps this store's permission index apart under `scope`: a sandbox fixture's snapshots
    /// and sweep journal are its own, though another fixture in the same data directory has
    /// the same company id (runs and their history stay shared).
    pub fn with_index_scope(mut self, scope: &str) -> SqliteRunStore {
        self.index_scope = Some(scope.to_string());
        self
    }

    /// The key the permission index files `company_id` under.
    pub(super) fn index_key(&self, company_id: &str) -> String {
        match &self.index_scope {
            Some(scope) => format!("{company_id}#{scope}"),
            None => company_id.to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
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

    fn lock_path(&self, run_id: &RunId) -> PathBuf {
        self.dir.join(format!("{run_id}.lock"))
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the run for this process; `None` while another live process holds it.
    // File locks are std since 1.89; the toolchain the project builds with has them.
    #[allow(clippy::incompatible_msrv)]
    pub fn lock_run(&self, run_id: &RunId) -> Result<Option<RunLock>, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(run_id))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// A finished run needs no lock file any more: removed while `lock` is held.
    pub fn drop_lock(&self, run_id: &RunId, lock: RunLock) {
        let _ = fs::remove_file(self.lock_path(run_id));
        drop(lock);
    }

    /// Whether a live process (this one included) works on the run.
    pub fn is_held(&self, run_id: &RunId) -> bool {
        if !self.lock_path(run_id).exists() {
            return false;
        }
        matches!(self.lock_run(run_id), Ok(None))
    }

    /// Whether `run` was stopped before its end and nobody works on it: `resume` may take it.
    pub fn is_resumable(&self, run: &Run) -> bool {
        !run.status.is_terminal() && !self.is_held(&run.run_id)
    }

    /// Runs of this user and company that stopped before their end and that no live process
    /// works on, oldest first. `user_email` matches the address a run was asked for, or the
    /// UPN or any address of the user it resolved to: one person, however they were named.
    pub fn resumable_runs(
        &self,
        company_id: &str,
        user_email: &str,
    ) -> Result<Vec<Run>, StoreError> {
        let runs: Vec<Run> = {
            let db = self.conn();
            let mut stmt = db
                .prepare(
                    "SELECT run FROM runs WHERE company_id = ?1 \
                     AND (user_email = ?2 OR lower(json_extract(run, '$.user.upn')) = ?2 \
                          OR EXISTS (SELECT 1 FROM json_each(run, '$.user.addresses') \
                                     WHERE lower(value) = ?2)) \
                     AND status NOT IN ('completed', 'completed_with_errors', 'failed', 'cancelled') \
                     ORDER BY created_at",
                )
                .map_err(|e| db_error("list runs", e))?;
            let rows = stmt
                .query_map(params![company_id, user_email.to_ascii_lowercase()], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(|e| db_error("list runs", e))?;
            let mut runs = Vec::new();
            for row in rows {
                runs.push(from_json(
                    "run",
                    &row.map_err(|e| db_error("list runs", e))?,
                )?);
            }
            runs
        };
        Ok(runs.into_iter().filter(|r| self.is_resumable(r)).collect())
    }

    /// Records where a run was started from (the CLI's `--config` or `--sandbox`), so that
    /// `resume` can find it again.
    pub fn set_origin(&self, run_id: &RunId, origin: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE runs SET origin = ?2 WHERE run_id = ?1",
                params![run_id.0, origin],
            )
            .map_err(|e| db_error("set origin", e))?;
        Ok(())
    }

    pub fn origin(&self, run_id: &RunId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT origin FROM runs WHERE run_id = ?1",
                params![run_id.0],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(|e| db_error("read origin", e))?
            .flatten())
    }

    /// Marks a run stopped before its end (`interrupted`), remembering the step it was at.
    /// A run that finished meanwhile keeps its end.
    pub fn interrupt(&self, run_id: &RunId, reason: &str) -> Result<Option<Run>, StoreError> {
        self.update_run(run_id, |run| {
            if run.status.is_terminal() {
                return;
            }
            if run.status != RunStatus::Interrupted {
                run.interruption = Some(Interruption {
                    at: Utc::now(),
                    during: run.status,
                    reason: reason.to_string(),
                });
                run.status = RunStatus::Interrupted;
                run.status_changed_at = Utc::now();
            }
            run.lease_holder = None;
            run.lease_until = None;
        })
    }

    /// Puts an interrupted (or killed) run back at the step it stopped at, with no lease held,
    /// so that the step's message can be delivered again. Items whose outcome reached the
    /// audit trail but not the store (a process killed between the two) take it from there.
    /// A run stopped during discovery starts discovery again: nothing had been removed.
    pub fn reopen(&self, run_id: &RunId) -> Result<Run, StoreError> {
        let run = self
            .update_run(run_id, |run| {
                let during = match run.interruption.take() {
                    Some(i) => i.during,
                    None => run.status,
                };
                run.status = match during {
                    RunStatus::Discovering | RunStatus::Interrupted => RunStatus::Accepted,
                    other => other,
                };
                run.status_changed_at = Utc::now();
                run.lease_holder = None;
                run.lease_until = None;
            })?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        if run.status == RunStatus::Accepted {
            let db = self.conn();
            for table in ["items", "counted", "facts"] {
                db.execute(
                    &format!("DELETE FROM {table} WHERE run_id = ?1"),
                    params![run_id.0],
                )
                .map_err(|e| db_error("reset discovery", e))?;
            }
            drop(db);
            return self
                .update_run(run_id, |r| {
                    r.shards_total = 0;
                    r.shards_done = 0;
                })?
                .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()));
        }
        self.settle_from_audit(run_id)?;
        Ok(run)
    }

    /// A run no process works on any more takes the outcomes its audit trail holds (a killed
    /// process may have written an outcome there and not to the store): its history and its
    /// partial result count what it really did. A run still held is left to its process.
    pub fn settle_if_stopped(&self, run: &Run) -> Result<(), StoreError> {
        if self.is_resumable(run) && run.status != RunStatus::Accepted {
            self.settle_from_audit(&run.run_id)?;
        }
        Ok(())
    }

    /// Gives pending items the outcome the audit trail recorded for them.
    fn settle_from_audit(&self, run_id: &RunId) -> Result<(), StoreError> {
        let outcomes: HashMap<ItemId, ItemStatus> = read_audit_file(&self.audit_path(run_id))?
            .into_iter()
            .filter(|r| r.phase == AuditPhase::Outcome)
            .filter_map(|r| Some((r.item_id?, outcome_status(&r)?)))
            .collect();
        let db = self.conn();
        for (id, status) in outcomes {
            let item: Option<String> = db
                .query_row(
                    "SELECT item FROM items WHERE run_id = ?1 AND item_id = ?2 AND state = 'pending'",
                    params![run_id.0, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db_error("read item", e))?;
            if let Some(text) = item {
                let mut item: PlanItem = from_json("item", &text)?;
                item.status = status;
                write_item(&db, run_id, &item)?;
            }
        }
        Ok(())
    }

    /// Makes a run look as if nothing had touched it since `at` (tests of the sweeper).
    pub fn backdate(&self, run_id: &RunId, at: DateTime<Utc>) {
        let _ = self.update_run_at(run_id, Some(at), |run| {
            run.lease_until = run.lease_until.map(|u| u.min(at));
        });
    }

    /// Counts of a run's items by state (`pending`, `removed`, `failed`, ...): what progress
    /// output shows.
    pub fn item_counts(&self, run_id: &RunId) -> Result<BTreeMap<String, u64>, StoreError> {
        let db = self.conn();
        let mut stmt = db
            .prepare("SELECT state, COUNT(*) FROM items WHERE run_id = ?1 GROUP BY state")
            .map_err(|e| db_error("count items", e))?;
        let rows = stmt
            .query_map(params![run_id.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
            })
            .map_err(|e| db_error("count items", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_error("count items", e))
    }

    /// The removal batches of a run already counted as done.
    pub fn counted_batches(&self, run_id: &RunId) -> Result<HashSet<u32>, StoreError> {
        let db = self.conn();
        let mut stmt = db
            .prepare("SELECT part FROM counted WHERE run_id = ?1 AND kind = 'batch'")
            .map_err(|e| db_error("read batches", e))?;
        let rows = stmt
            .query_map(params![run_id.0], |r| r.get::<_, u32>(0))
            .map_err(|e| db_error("read batches", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_error("read batches", e))
    }

    fn read_run(&self, db: &Connection, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        let text: Option<String> = db
            .query_row(
                "SELECT run FROM runs WHERE run_id = ?1",
                params![run_id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error("read run", e))?;
        text.map(|t| from_json("run", &t)).transpose()
    }

    fn update_run(
        &self,
        run_id: &RunId,
        f: impl FnOnce(&mut Run),
    ) -> Result<Option<Run>, StoreError> {
        self.update_run_at(run_id, None, f)
    }

    /// Changes a run in one transaction (other processes may share the file).
    fn update_run_at(
        &self,
        run_id: &RunId,
        at: Option<DateTime<Utc>>,
        f: impl FnOnce(&mut Run),
    ) -> Result<Option<Run>, StoreError> {
        let mut db = self.conn();
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error("begin", e))?;
        let Some(mut run) = self.read_run(&tx, run_id)? else {
            return Ok(None);
        };
        f(&mut run);
        run.updated_at = at.unwrap_or_else(Utc::now);
        write_run(&tx, &run)?;
        tx.commit().map_err(|e| db_error("commit run", e))?;
        Ok(Some(run))
    }

    /// Like [`Self::update_run`] for trait methods: an unknown run is an error.
    /// Appends one record's line to the run's audit file unless a record with its id is there
    /// (`None`); the lock keeps concurrent batches' lines whole. The file is returned unflushed.
    fn append_line(
        &self,
        record: &AuditRecord,
        path: &Path,
        line: &[u8],
    ) -> Result<Option<File>, StoreError> {
        let mut written = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        let audit = match written.entry(record.run_id.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            // A resumed run's file already holds records: they are not written again.
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(WrittenAudit::of(read_audit_file(path)?))
            }
        };
        if audit.ids.contains(&record.record_id) {
            return Ok(None);
        }
        if let (Some(chain), Some(seq)) = (&record.chain, record.seq) {
            if !audit.places.insert((chain.clone(), seq)) {
                return Err(StoreError::ChainPlaceTaken {
                    chain: chain.clone(),
                    seq,
                });
            }
        }
        audit.ids.insert(record.record_id.clone());
        let mut file = owner_only().create(true).append(true).open(path)?;
        file.write_all(line)?;
        Ok(Some(file))
    }

    /// The run's result beside its audit file, readable without the database.
    fn write_result_file<T: Serialize>(
        &self,
        run_id: &RunId,
        result: &T,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(result).map_err(|e| StoreError::backend(e.to_string()))?;
        owner_only()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.result_path(run_id))?
            .write_all(&json)?;
        Ok(())
    }

    fn with_run<T>(&self, run_id: &RunId, f: impl FnOnce(&mut Run) -> T) -> Result<T, StoreError> {
        let mut out = None;
        self.update_run(run_id, |run| out = Some(f(run)))?;
        out.ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))
    }

    /// Imports a run of the first release from its files, if it has them.
    fn import_legacy(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        let Some((run, items)) = legacy_run(&self.dir, run_id)? else {
            return Ok(None);
        };
        let mut db = self.conn();
        let tx = db.transaction().map_err(|e| db_error("begin", e))?;
        insert_run(&tx, &run)?;
        for item in &items {
            write_item(&tx, run_id, item)?;
        }
        tx.commit().map_err(|e| db_error("commit import", e))?;
        tracing::info!(run_id = %run_id, items = items.len(), status = run.status.as_str(), "imported a run of the first release from its files");
        Ok(Some(run))
    }

    fn mark_counted(
        &self,
        run_id: &RunId,
        kind: &str,
        part: u32,
    ) -> Result<(bool, u32), StoreError> {
        let db = self.conn();
        let newly = db
            .execute(
                "INSERT OR IGNORE INTO counted (run_id, kind, part) VALUES (?1, ?2, ?3)",
                params![run_id.0, kind, part],
            )
            .map_err(|e| db_error("count part", e))?
            == 1;
        let done: u32 = db
            .query_row(
                "SELECT COUNT(*) FROM counted WHERE run_id = ?1 AND kind = ?2",
                params![run_id.0, kind],
                |r| r.get(0),
            )
            .map_err(|e| db_error("count parts", e))?;
        Ok((newly, done))
    }
}

/// Where a page of history stopped: the last run's (created_at, run_id) as stored.
#[derive(Serialize, serde::Deserialize)]
struct HistoryPosition {
    created_at: String,
    run_id: String,
}

/// Newest first by (created_at, run_id), the order of `runs_by_created`; every filter but the
/// resolved UPN is a column. `created_at` is RFC 3339 in UTC, which sorts as text.
fn list_runs(
    db: &Connection,
    filter: &RunFilter,
    limit: usize,
    after: Option<&HistoryPosition>,
) -> Result<(Vec<Run>, bool), StoreError> {
    let mut stmt = db
        .prepare_cached(
            "SELECT run FROM runs
             WHERE (?1 IS NULL OR company_id = ?1)
               AND (?2 IS NULL OR user_email = lower(?2)
                    OR lower(json_extract(run, '$.user.upn')) = lower(?2))
               AND (?3 IS NULL OR created_at >= ?3)
               AND (?4 IS NULL OR status = ?4)
               AND (?5 IS NULL OR (created_at, run_id) < (?5, ?6))
             ORDER BY created_at DESC, run_id DESC
             LIMIT ?7",
        )
        .map_err(|e| db_error("list runs", e))?;
    let rows = stmt
        .query_map(
            params![
                filter.company_id,
                filter.user,
                filter.since.map(|t| t.to_rfc3339()),
                filter.status.map(status_text),
                after.map(|a| &a.created_at),
                after.map(|a| &a.run_id),
                // One more than the page: whether there is a next one.
                (limit + 1) as i64,
            ],
            |r| r.get::<_, String>(0),
        )
        .map_err(|e| db_error("list runs", e))?;
    let mut runs = rows
        .map(|text| from_json::<Run>("run", &text.map_err(|e| db_error("list runs", e))?))
        .collect::<Result<Vec<_>, _>>()?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    Ok((runs, more))
}

fn insert_run(db: &Connection, run: &Run) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO runs (run_id, company_id, user_email, status, created_at, run) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            run.run_id.0,
            run.request.company_id,
            run.request.user_email.to_ascii_lowercase(),
            status_text(run.status),
            run.created_at.to_rfc3339(),
            to_json(run)?
        ],
    )
    .map_err(|e| db_error(&format!("create run {}", run.run_id), e))?;
    Ok(())
}

fn write_run(db: &Connection, run: &Run) -> Result<(), StoreError> {
    db.execute(
        "UPDATE runs SET status = ?2, run = ?3 WHERE run_id = ?1",
        params![run.run_id.0, status_text(run.status), to_json(run)?],
    )
    .map_err(|e| db_error("write run", e))?;
    Ok(())
}

fn write_item(db: &Connection, run_id: &RunId, item: &PlanItem) -> Result<(), StoreError> {
    db.execute(
        "INSERT OR REPLACE INTO items (run_id, item_id, state, item) VALUES (?1, ?2, ?3, ?4)",
        params![run_id.0, item.id, item_state(&item.status), to_json(item)?],
    )
    .map_err(|e| db_error("write item", e))?;
    Ok(())
}

/// The item status an outcome record says.
fn outcome_status(record: &AuditRecord) -> Option<ItemStatus> {
    let detail = record.detail.clone().unwrap_or_default();
    Some(match record.result? {
        AuditResult::Removed => ItemStatus::Removed,
        AuditResult::AlreadyGone => ItemStatus::AlreadyGone { warning: detail },
        AuditResult::Failed => ItemStatus::Failed { error: detail },
        AuditResult::DryRun => ItemStatus::WouldRemove,
        AuditResult::Restored => ItemStatus::Restored,
    })
}

/// A run of the first release, rebuilt from its audit trail and its result file: the request
/// as far as they tell it (user, company, requestor, reason, ticket, dry run), one item per
/// grant with a `before` record, its status from the outcome record (pending when there is
/// none: the call was in flight). Without a result the run is `interrupted` during removal —
/// the first release wrote every planned grant's `before` record when removal began.
pub fn legacy_run(dir: &Path, run_id: &RunId) -> Result<Option<(Run, Vec<PlanItem>)>, StoreError> {
    let records = read_audit_file(&dir.join(format!("{run_id}.audit.jsonl")))?;
    let result_path = dir.join(format!("{run_id}.result.json"));
    let report: Option<Report> = match fs::read_to_string(&result_path) {
        Ok(text) => Some(from_json(&result_path.display().to_string(), &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let Some(first) = records.iter().min_by_key(|r| r.recorded_at) else {
        return Ok(None);
    };
    let mut items: BTreeMap<ItemId, PlanItem> = BTreeMap::new();
    for r in records.iter().filter(|r| r.phase == AuditPhase::Before) {
        if let (Some(id), Some(grant)) = (r.item_id, &r.grant) {
            items.insert(
                id,
                PlanItem {
                    id,
                    grant: grant.clone(),
                    status: ItemStatus::Pending,
                },
            );
        }
    }
    for r in records.iter().filter(|r| r.phase == AuditPhase::Outcome) {
        if let (Some(item), Some(status)) = (
            r.item_id.and_then(|id| items.get_mut(&id)),
            outcome_status(r),
        ) {
            item.status = item.status.merge(status);
        }
    }
    let request = RevocationRequest {
        user_email: first.user_email.clone(),
        company_id: first.company_id.clone(),
        permission_types: None,
        target_mailboxes: Vec::new(),
        remove_from_shared: true,
        ticket_id: report.as_ref().and_then(|r| r.ticket_id.clone()),
        dry_run: report.as_ref().is_some_and(|r| r.dry_run),
        requested_by: first.requested_by.clone(),
        reason: first.reason.clone(),
        incident_id: None,
        severity: None,
        alert_source: None,
        mode: Default::default(),
        victim_mailbox: false,
        remove_recent_delegates: false,
        all_folders: false,
        notify: false,
        digest: false,
        requested_by_principal: first.requested_by_principal.clone(),
    };
    let mut run = Run::new(request);
    run.run_id = run_id.clone();
    run.created_at = first.recorded_at;
    run.user = None::<ResolvedUser>;
    match report {
        Some(report) => {
            run.status = report.status;
            run.updated_at = report.finished_at;
            run.status_changed_at = report.finished_at;
            run.result = Some(report);
        }
        None => {
            let verified = records.iter().any(|r| r.phase == AuditPhase::Verification);
            let during = if verified {
                RunStatus::Verifying
            } else {
                RunStatus::Removing
            };
            let batches =
                crate::work::removal_batch_count(&items.values().cloned().collect::<Vec<_>>());
            run.batches_total = batches;
            run.status = RunStatus::Interrupted;
            run.interruption = Some(Interruption {
                at: records
                    .iter()
                    .map(|r| r.recorded_at)
                    .max()
                    .unwrap_or(first.recorded_at),
                during,
                reason:
                    "stopped before its end (a run of the first release, read from its audit trail)"
                        .into(),
            });
        }
    }
    Ok(Some((run, items.into_values().collect())))
}

/// Reads an audit file, keeping the last record for each record id (a redelivered step may
/// write one twice).
/// Where the manifest of a run's audit chains is kept, beside its audit trail.
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

pub fn read_audit_file(path: &Path) -> Result<Vec<AuditRecord>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut by_id: BTreeMap<String, AuditRecord> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: AuditRecord = match serde_json::from_str(line) {
            Ok(r) => r,
            // A process killed mid-append leaves a torn last line: the call it preceded was
            // never made.
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => continue,
            Err(e) => {
                return Err(StoreError::backend(format!(
                    "{} line {}: {e}",
                    path.display(),
                    n + 1
                )))
            }
        };
        by_id.insert(record.record_id.clone(), record);
    }
    Ok(by_id.into_values().collect())
}
