//! The permission index, measured:
//! 1. Sweep of a generated tenant (by default 10,000 mailboxes, 300 ms per call, Exchange
//!    capped at 20 in flight, Graph at 40 and 4 per mailbox; the client is not told): wall time
//!    against 1.3 × max(Exchange calls × latency ÷ cap, Graph calls × latency ÷ cap).
//! 2. A contain run, with that warm snapshot, for a user holding 50 grants:
//!    `seconds_to_sessions_revoked` ≤ 1 s (the user's sessions revoked first: a lookup and
//!    one call), `seconds_to_containment` ≤ 5 s (≈ user lookup + 50 × (re-read + removal) ×
//!    latency ÷ cap),
//!    against a live-scan run's time to its last removal; the live phase that follows must
//!    still find a grant made after the sweep.
//! 3. Lookup from a 100,000-mailbox snapshot of 500,000 grants in SQLite: ≤ 50 ms, no tenant
//!    call; the snapshot's size on disk and per grant.
//!
//! `cargo bench -p revoke365-shared --bench permission_index [-- MAILBOXES LATENCY_MS EXO_CAP GRAPH_CAP]`

use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::HttpSettings;
use revoke365::index::{lookup, sweep, AccessQuery};
use revoke365::model::{
    IndexSettings, IndexedGrant, PermissionType, Snapshot, SnapshotSummary, Trustee, TrusteeKind,
};
use revoke365::ports::{Connector, NoProgress, PermissionIndex};
#[allow(dead_code)]
use revoke365_testkit::bench::{arg, verdict};
use revoke365_testkit::generated::{generated_tenant, Caps, ADMIN, DOMAIN};
use revoke365_testkit::Harness;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INDEXED_GRANTS: usize = 50;

#[tokio::main]
async fn main() {
    let mailboxes = arg(0, 10_000) as usize;
    let latency_ms = arg(1, 300);
    let caps = Caps {
        exchange: arg(2, 20),
        graph: arg(3, 40),
        graph_mailbox: 4,
    };
    let latency = Duration::from_millis(latency_ms);
    println!("generated tenant: {mailboxes} mailboxes, {latency_ms} ms per call, caps Exchange {} / Graph {} / {} per mailbox", caps.exchange, caps.graph, caps.graph_mailbox);
    let h = Harness::start(
        generated_tenant(mailboxes, INDEXED_GRANTS, latency_ms, &caps),
        HttpSettings::default(),
    )
    .await;

    // 1. The sweep.
    let conns = h.connector.connect(&h.org).await.unwrap();
    let before = h.sim.snapshot().counters.requests;
    let core = h.connector.core.clone();
    let learned = move || -> BTreeMap<String, usize> {
        core.learned_limits()
            .into_iter()
            .map(|(_, s, l)| (s.to_string(), l.limit))
            .collect()
    };
    let started = Instant::now();
    let snapshot = sweep(conns.tenant(), &h.org, &NoProgress, &learned)
        .await
        .expect("sweep");
    let wall = started.elapsed();
    h.store
        .save_snapshot(&snapshot, &IndexSettings::default())
        .await
        .unwrap();
    let after = h.sim.snapshot().counters;
    let calls = |prefix: &str| -> u64 {
        after
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
            .sum()
    };
    let (exo, graph) = (calls("exo "), calls("graph "));
    let bound = (latency * exo as u32 / caps.exchange as u32)
        .max(latency * graph as u32 / caps.graph as u32);
    let ratio = wall.as_secs_f64() / bound.as_secs_f64();
    println!("\n== sweep");
    println!(
        "grants indexed                 {:>10}",
        snapshot.summary.grants
    );
    println!("Exchange calls / Graph calls   {exo:>10} / {graph}");
    println!(
        "learned limits                 {:?}",
        snapshot.summary.limits
    );
    println!("429 answers                    {:>10}", after.throttled_429);
    println!(
        "wall                           {:>10.2} s",
        wall.as_secs_f64()
    );
    println!(
        "bound                          {:>10.2} s   ratio {ratio:.2} (≤ 1.3: {})",
        bound.as_secs_f64(),
        verdict(ratio <= 1.3)
    );

    // 2. Containment with the warm snapshot, and a grant made after it.
    let late = format!("mbx{:05}@{DOMAIN}", mailboxes - 1);
    conns.exchange.add_full_access(&late, ADMIN).await.unwrap();
    let started = Instant::now();
    let report = h
        .report(json!({"user_email": ADMIN, "company_id": "bench", "ticket_id": "1", "mode": "contain"}))
        .await;
    let run_wall = started.elapsed();
    let c = report.containment.clone().expect("containment section");
    let seconds = c.seconds_to_containment.unwrap_or(f64::MAX);
    let late_removed = report
        .entries()
        .any(|(m, _, e)| m == late && e.permission == "FullAccess" && e.removed);
    println!("\n== containment ({INDEXED_GRANTS} indexed grants)");
    let sessions = c.seconds_to_sessions_revoked.unwrap_or(f64::MAX);
    println!(
        "seconds_to_sessions_revoked    {sessions:>10.2} s   (bound 1 s: {})",
        verdict(sessions <= 1.0)
    );
    println!("indexed grants removed first   {:>10}", c.indexed_grants);
    println!(
        "seconds_to_containment         {seconds:>10.2} s   (bound 5 s: {})",
        verdict(seconds <= 5.0)
    );
    println!(
        "whole run (live phase, verify) {:>10.2} s   ≈ time a live-scan run needs to its last removal: {:.0}× sooner",
        run_wall.as_secs_f64(),
        run_wall.as_secs_f64() / seconds.max(0.001)
    );
    println!(
        "grant made after the sweep     {:>10}",
        if late_removed {
            "removed by the live phase"
        } else {
            "MISSED"
        }
    );
    println!(
        "removed in all / success       {:>10} / {}",
        report.removal_summary.total_permissions_removed, report.success
    );

    // 3. Lookup from a large snapshot.
    lookup_bench().await;
}

async fn lookup_bench() {
    const MAILBOXES: usize = 100_000;
    const GRANTS: usize = 500_000;
    const TRUSTEES: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRunStore::open(dir.path(), Vec::new()).unwrap();
    let trustees: Vec<Trustee> = (0..TRUSTEES)
        .map(|i| Trustee {
            trustee_id: format!("00000000-0000-4000-8000-{i:012}"),
            kind: TrusteeKind::User,
            upn: Some(format!("user{i:05}@{DOMAIN}")),
            object_id: Some(format!("00000000-0000-4000-8000-{i:012}")),
            address: Some(format!("user{i:05}@{DOMAIN}")),
            display_name: Some(format!("User {i}")),
            recipient_type: Some("UserMailbox".into()),
            distinguished_name: None,
            shown_as: vec![format!("user{i:05}@{DOMAIN}")],
        })
        .collect();
    let rights = PermissionType::ALL;
    let grants: Vec<IndexedGrant> = (0..GRANTS)
        .map(|i| {
            let t = &trustees[(i * 7919) % TRUSTEES];
            IndexedGrant {
                trustee_id: t.trustee_id.clone(),
                mailbox: format!("mbx{:06}@{DOMAIN}", i % MAILBOXES),
                mailbox_display_name: format!("Mailbox {}", i % MAILBOXES),
                recipient_type: "UserMailbox".into(),
                right: rights[i % 4],
                trustee_as_shown: t.upn.clone().unwrap(),
                access_rights: vec![rights[i % 4].report_name().into()],
                calendar: None,
                folder: None,
            }
        })
        .collect();
    let snapshot = Snapshot {
        summary: SnapshotSummary {
            snapshot_id: "big".into(),
            company_id: "bench".into(),
            tenant_id: "t".into(),
            taken_at: chrono::Utc::now(),
            duration_ms: 0,
            mailboxes: MAILBOXES as u64,
            trustees: TRUSTEES as u64,
            grants: GRANTS as u64,
            calls: BTreeMap::new(),
            limits: BTreeMap::new(),
            errors: Vec::new(),
            resumed_mailboxes: 0,
        },
        trustees,
        grants,
    };
    let started = Instant::now();
    store
        .save_snapshot(&snapshot, &IndexSettings::default())
        .await
        .unwrap();
    let stored = started.elapsed();
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("revoke365.db"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let org = revoke365::model::OrgSettings::from_fixture(&json!({
        "tenant_id": "t",
        "organization": {"company_id": "bench", "company_name": "Bench", "m365_permission_ticket_board": "b",
            "notification_sender": format!("it@{DOMAIN}")}
    }))
    .unwrap();
    let mut worst_user = Duration::ZERO;
    let mut worst_mailbox = Duration::ZERO;
    let mut found = 0;
    for i in 0..20 {
        let q = AccessQuery::User(format!("user{:05}@{DOMAIN}", i * 997 % TRUSTEES));
        let t = Instant::now();
        let map = lookup(&store, &org, &q, None).await.unwrap();
        worst_user = worst_user.max(t.elapsed());
        found += map.grants.len();
        let q = AccessQuery::Mailbox(format!("mbx{:06}@{DOMAIN}", i * 4999 % MAILBOXES));
        let t = Instant::now();
        lookup(&store, &org, &q, None).await.unwrap();
        worst_mailbox = worst_mailbox.max(t.elapsed());
    }
    println!("\n== lookup ({MAILBOXES} mailboxes, {GRANTS} grants, {TRUSTEES} trustees in SQLite)");
    println!(
        "stored in                      {:>10.2} s",
        stored.as_secs_f64()
    );
    println!(
        "size on disk                   {:>10.1} MiB   ({} bytes per grant)",
        size as f64 / (1024.0 * 1024.0),
        size / GRANTS as u64
    );
    println!(
        "slowest of 20 user lookups     {:>10.2} ms   ({} grants each on average; bound 50 ms: {})",
        worst_user.as_secs_f64() * 1000.0,
        found / 20,
        verdict(worst_user <= Duration::from_millis(50))
    );
    println!(
        "slowest of 20 mailbox lookups  {:>10.2} ms   (bound 50 ms: {})",
        worst_mailbox.as_secs_f64() * 1000.0,
        verdict(worst_mailbox <= Duration::from_millis(50))
    );
    println!("tenant calls                   {:>10}", 0);
}
