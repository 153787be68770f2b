//! A tenant simulator on loopback, the real HTTP clients pointed at it, and the embedded
//! queue and store: the whole engine on one machine, as the CLI runs it.

use crate::tenant::{fast_recheck, sim_options, CLIENT_SECRET};
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::{ClientCredential, HttpSettings, Recheck, Secret, ServiceUrls};
use revoke365::engine::LocalEngine;
use revoke365::model::{OrgSettings, Report, Run};
use revoke365::steps::NoProgress;
use revoke365_sim::{SimHandle, Snapshot};
use serde_json::Value;
use std::sync::Arc;

/// Who the harness acts as: the CLI's operator, as `revoke365` names the OS account (a
/// restore's own list is empty in the fixtures, which allows the local operator alone).
pub const OPERATOR: &str = "os-user:operator";

/// The real clients, pointed at the simulator at `base_url`.
fn connector_at(base_url: &str, http: HttpSettings, recheck: Recheck) -> Arc<HttpConnector> {
    Arc::new(HttpConnector {
        core: HttpCore::new(http).unwrap(),
        urls: ServiceUrls::all_at(base_url),
        m365_client_id: "test-client".into(),
        m365_credential: ClientCredential::Secret(Secret::new(CLIENT_SECRET)),
        psa: crate::tenant::psa_accounts(base_url),
        recheck,
        shard_time: DEFAULT_SHARD_TIME,
        webhook_secret: Some(Secret::new(crate::tenant::WEBHOOK_SECRET)),
    })
}

pub struct Harness {
    pub sim: SimHandle,
    pub store: Arc<SqliteRunStore>,
    pub engine: LocalEngine,
    pub connector: Arc<HttpConnector>,
    pub org: OrgSettings,
    /// The store's files; removed when the harness is dropped.
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(fixture: Value, http: HttpSettings) -> Harness {
        Harness::start_with(fixture, http, fast_recheck()).await
    }

    /// With verification's second look at lagging grants set as given.
    pub async fn start_with(fixture: Value, http: HttpSettings, recheck: Recheck) -> Harness {
        let org = OrgSettings::from_fixture(&fixture).expect("fixture organization");
        let sim = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&fixture.to_string()).expect("fixture loads"),
            sim_options(),
        )
        .await
        .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteRunStore::open(dir.path(), vec![org.clone()]).unwrap());
        let connector = connector_at(&sim.base_url, http, recheck);
        let engine = LocalEngine {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::default()),
            connector: connector.clone(),
            progress: Arc::new(NoProgress),
            stop: Default::default(),
        };
        Harness {
            sim,
            store,
            engine,
            connector,
            org,
            _dir: dir,
        }
    }

    /// Another engine on the same store, tenant and clients, with a stop signal of its own:
    /// a new process, as `resume` finds the run.
    pub fn fresh_engine(&self) -> LocalEngine {
        self.engine_on(self.connector.clone())
    }

    /// [`Harness::fresh_engine`] with clients of their own, set as `http` says (a process run
    /// with another `--concurrency`).
    pub fn fresh_engine_with(&self, http: HttpSettings) -> LocalEngine {
        self.engine_on(connector_at(
            &self.sim.base_url,
            http,
            self.connector.recheck,
        ))
    }

    fn engine_on(&self, connector: Arc<HttpConnector>) -> LocalEngine {
        LocalEngine {
            store: self.store.clone(),
            queue: Arc::new(MemoryQueue::default()),
            connector,
            progress: Arc::new(NoProgress),
            stop: Default::default(),
        }
    }

    /// Removals recorded so far in every audit trail of the store (`result: removed`
    /// outcomes): how a test knows where a run has got to, to stop it there.
    pub fn audited_removals(&self) -> usize {
        std::fs::read_dir(self.store.dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".audit.jsonl"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .matches("\"result\":\"removed\"")
                    .count()
            })
            .sum()
    }

    pub async fn run(&self, body: Value) -> Run {
        self.engine
            .run(&body, None)
            .await
            .expect("request accepted")
    }

    /// [`Harness::run`] as the CLI's operator: what the access review's own runs are
    /// (`digest` is theirs alone).
    pub async fn run_as_operator(&self, body: Value) -> Run {
        self.engine
            .run_watched(Some(OPERATOR), &body, None, |_| {})
            .await
            .expect("request accepted")
    }

    /// Restores what run `source` removed (`body`: the restore options); the restore run as
    /// it ended.
    pub async fn restore(&self, source: &revoke365::model::RunId, body: Value) -> Run {
        self.engine
            .restore_watched(Some(OPERATOR), source, &body, None, |_| {})
            .await
            .expect("restore accepted")
    }

    /// A backup restore (`body`: company, mailbox, as_of and options); the run as it ended,
    /// or intake's refusal.
    pub async fn restore_backup(&self, body: Value) -> Result<Run, revoke365::steps::IntakeError> {
        self.engine
            .restore_backup_watched(Some(OPERATOR), &body, None, |_| {})
            .await
    }

    /// Runs a request that must finish with a report.
    pub async fn report(&self, body: Value) -> Report {
        let run = self.run(body).await;
        run.result.unwrap_or_else(|| {
            panic!(
                "run ended {:?} without a result: {:?}",
                run.status, run.failure
            )
        })
    }

    /// The simulator's state, typed.
    pub fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }
}
