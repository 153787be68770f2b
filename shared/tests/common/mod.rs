//! A tenant simulator on loopback, the real HTTP clients pointed at it, and the embedded
//! queue and store: the whole engine on one machine, as the CLI runs it.
#![allow(dead_code)]

use revoke365::adapters::connect::HttpConnector;
use revoke365::adapters::file_store::FileRunStore;
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::config::{ConnectWiseCredentials, HttpSettings, RetryPolicy, Secret, ServiceUrls};
use revoke365::engine::LocalEngine;
use revoke365::model::{OrgSettings, Report, Run};
use revoke365::steps::NoProgress;
use revoke365_sim::{SimHandle, SimOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const CLIENT_SECRET: &str = "test-client-secret";
pub const CW_PRIVATE_KEY: &str = "test-cw-private";

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(events_dir().join(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Sets `sim.<key>` in a fixture.
pub fn with_sim(mut fixture: Value, knobs: Value) -> Value {
    let sim = fixture
        .as_object_mut()
        .unwrap()
        .entry("sim")
        .or_insert_with(|| json!({}));
    for (k, v) in knobs.as_object().unwrap() {
        sim[k] = v.clone();
    }
    fixture
}

/// Retries fast enough for tests; the bounds stay the production ones in shape.
pub fn fast_http(concurrency: usize) -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        },
        tenant_concurrency: concurrency,
        ..HttpSettings::default()
    }
}

pub struct Harness {
    pub sim: SimHandle,
    pub store: Arc<FileRunStore>,
    pub engine: LocalEngine,
    pub connector: Arc<HttpConnector>,
    pub org: OrgSettings,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(fixture: Value, http: HttpSettings) -> Harness {
        let org = OrgSettings::from_fixture(&fixture).expect("fixture organization");
        let sim = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&fixture.to_string()).expect("fixture loads"),
            SimOptions {
                client_secret: Some(CLIENT_SECRET.into()),
                cw_private_key: Some(CW_PRIVATE_KEY.into()),
            },
        )
        .await
        .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileRunStore::open(dir.path(), vec![org.clone()]).unwrap());
        let connector = Arc::new(HttpConnector {
            core: HttpCore::new(http).unwrap(),
            urls: ServiceUrls::all_at(&sim.base_url),
            m365_client_id: "test-client".into(),
            m365_client_secret: Secret::new(CLIENT_SECRET),
            connectwise: ConnectWiseCredentials {
                company: "msp".into(),
                public_key: "pub".into(),
                private_key: Secret::new(CW_PRIVATE_KEY),
                client_id: "11111111-2222-3333-4444-555555555555".into(),
            },
        });
        let engine = LocalEngine {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::default()),
            connector: connector.clone(),
            progress: Arc::new(NoProgress),
        };
        Harness {
            sim,
            store,
            engine,
            connector,
            org,
            dir,
        }
    }

    pub async fn run(&self, body: Value) -> Run {
        self.engine.run(&body).await.expect("request accepted")
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

    pub fn state(&self) -> Value {
        self.sim.state()
    }

    pub fn mailboxes(&self) -> Value {
        self.state()["mailboxes"].clone()
    }
}

pub fn mailbox<'a>(mailboxes: &'a Value, upn: &str) -> &'a Value {
    mailboxes
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["upn"] == upn)
        .unwrap_or_else(|| panic!("no mailbox {upn}"))
}

/// Every grant in the tenant that names `user` directly (any type), as (mailbox, kind) pairs.
pub fn grants_of(mailboxes: &Value, user: &str) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for m in mailboxes.as_array().unwrap() {
        let upn = m["upn"].as_str().unwrap().to_string();
        let names = |v: &Value| {
            v["user"]
                .as_str()
                .or(v.as_str())
                .is_some_and(|u| u.eq_ignore_ascii_case(user))
        };
        for (key, kind) in [
            ("full_access", "full_access"),
            ("send_as", "send_as"),
            ("send_on_behalf", "send_on_behalf"),
            ("calendar", "calendar"),
        ] {
            for g in m[key].as_array().into_iter().flatten() {
                if names(g)
                    && !g["inherited"].as_bool().unwrap_or(false)
                    && !g["deny"].as_bool().unwrap_or(false)
                {
                    out.push((upn.clone(), kind));
                }
            }
        }
    }
    out.sort();
    out
}
