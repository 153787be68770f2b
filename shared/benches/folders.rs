//! What folder permissions cost: on a generated tenant with folders (`with_folders`: 17
//! folders a mailbox, the leaver's rights on Inbox, Tasks, a deep subfolder and a secondary
//! calendar) whose limits the client is not told, by default 500 mailboxes at 100 ms a call,
//! Exchange capped at 20, Graph at 40 overall and 4 per mailbox:
//! - a run reading the well-known folders (the default),
//! - a run reading every folder (`all_folders`),
//! - a sweep (every folder of every mailbox), then a run with its snapshot (the well-known
//!   folders and those the snapshot lists for the user).
//!
//! Each prints calls per mailbox per service and wall time beside the bound the other benches
//! use: wall ≤ 1.3 × max over services of calls × latency ÷ cap.
//!
//! `cargo bench -p revoke365-shared --bench folders [-- MAILBOXES LATENCY_MS EXO_CAP GRAPH_CAP]`

use revoke365::config::HttpSettings;
use revoke365::index::sweep;
use revoke365::model::IndexSettings;
use revoke365::ports::{Connector, NoProgress, PermissionIndex};
use revoke365_testkit::bench::{arg, verdict};
use revoke365_testkit::generated::{
    generated_tenant, leaver_folder_grants, with_folders, Caps, LEAVER,
};
use revoke365_testkit::Harness;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

struct Setup {
    mailboxes: usize,
    latency: Duration,
    caps: Caps,
}

/// Calls per service since `before`.
fn calls_since(h: &Harness, before: &BTreeMap<String, u64>) -> (u64, u64) {
    let after = h.sim.snapshot().counters.requests;
    let calls = |prefix: &str| -> u64 {
        after
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
            .sum()
    };
    (calls("exo "), calls("graph "))
}

/// One row: calls per mailbox and wall time against the bound.
fn row(s: &Setup, what: &str, wall: Duration, (exo, graph): (u64, u64), found: &str) {
    let bound = (s.latency * exo as u32 / s.caps.exchange as u32)
        .max(s.latency * graph as u32 / s.caps.graph as u32);
    let ratio = wall.as_secs_f64() / bound.as_secs_f64().max(f64::EPSILON);
    let per = |n: u64| n as f64 / s.mailboxes as f64;
    println!(
        "| {what} | {:.2} / {:.2} | {exo} / {graph} | {found} | {:.1} s / {:.1} s = {ratio:.2}× ({}) |",
        per(exo),
        per(graph),
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        verdict(ratio <= 1.3)
    );
}

fn tenant(s: &Setup) -> Value {
    with_folders(generated_tenant(
        s.mailboxes,
        0,
        s.latency.as_millis() as u64,
        &s.caps,
    ))
}

/// A run of the leaver with `extra` request fields: its calls, wall time and what it found.
async fn run(h: &Harness, extra: Value) -> (Duration, (u64, u64), String) {
    let before = h.sim.snapshot().counters.requests;
    let mut body = json!({"user_email": LEAVER, "company_id": "bench", "ticket_id": "1"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let started = Instant::now();
    let report = h.report(body).await;
    let wall = started.elapsed();
    assert!(
        report.success,
        "bench run must succeed: {:?}",
        report.errors
    );
    let p = &report.permissions_removed;
    let secondary = p
        .calendar_delegates
        .iter()
        .filter(|e| e.calendar.is_some())
        .count();
    let found = format!(
        "{} folder, {secondary} secondary calendar ({})",
        p.folder_permissions.len(),
        report.scope.folders.clone().unwrap_or_default()
    );
    (wall, calls_since(h, &before), found)
}

#[tokio::main]
async fn main() {
    let s = Setup {
        mailboxes: arg(0, 500) as usize,
        latency: Duration::from_millis(arg(1, 100)),
        caps: Caps {
            exchange: arg(2, 20),
            graph: arg(3, 40),
            graph_mailbox: 4,
        },
    };
    let (well_known, deep) = leaver_folder_grants(s.mailboxes);
    println!(
        "generated tenant with folders: {} mailboxes, {} ms a call, caps Exchange {} / Graph {} / {} per mailbox; \
         the leaver holds {well_known} rights on well-known folders and secondary calendars, {deep} on a deep folder",
        s.mailboxes,
        s.latency.as_millis(),
        s.caps.exchange,
        s.caps.graph,
        s.caps.graph_mailbox
    );
    println!("| path | calls per mailbox Exchange / Graph | calls Exchange / Graph | found | wall / bound |");
    println!("|---|---|---|---|---|");

    let h = Harness::start(tenant(&s), HttpSettings::default()).await;
    let (wall, calls, found) = run(&h, json!({})).await;
    row(&s, "run, well-known folders", wall, calls, &found);

    let h = Harness::start(tenant(&s), HttpSettings::default()).await;
    let (wall, calls, found) = run(&h, json!({"all_folders": true})).await;
    row(&s, "run, every folder (all_folders)", wall, calls, &found);

    let h = Harness::start(tenant(&s), HttpSettings::default()).await;
    let conns = h.connector.connect(&h.org).await.expect("connect");
    let before = h.sim.snapshot().counters.requests;
    let core = h.connector.core.clone();
    let learned = move || -> BTreeMap<String, usize> {
        core.learned_limits()
            .into_iter()
            .map(|(_, service, l)| (service.to_string(), l.limit))
            .collect()
    };
    let started = Instant::now();
    let snapshot = sweep(conns.tenant(), &h.org, &NoProgress, &learned)
        .await
        .expect("sweep");
    let wall = started.elapsed();
    let calls = calls_since(&h, &before);
    h.store
        .save_snapshot(&snapshot, &IndexSettings::default())
        .await
        .expect("snapshot stored");
    let folder_grants = snapshot
        .grants
        .iter()
        .filter(|g| g.folder.is_some())
        .count();
    row(
        &s,
        "sweep, every folder",
        wall,
        calls,
        &format!("{folder_grants} folder grants indexed"),
    );
    let (wall, calls, found) = run(&h, json!({})).await;
    row(&s, "run with the snapshot", wall, calls, &found);
}
