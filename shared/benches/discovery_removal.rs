//! Discovery + removal + verification on a generated tenant whose limits the client is not
//! told: by default 4,000 mailboxes, 100 ms per call, Exchange capped at 20 requests in
//! flight, Graph at 40 overall and 4 per mailbox (429 above them). Prints wall time, calls
//! per service, reads per mailbox, the limits the client learnt and the 429s, each beside the
//! bound it is held to:
//! - wall ≤ 1.3 × max(Exchange calls × latency ÷ Exchange cap, Graph calls × latency ÷ Graph cap)
//! - ≤ 1.2 Exchange reads and ≤ 1.1 Graph reads per mailbox
//! - 429 answers ≤ 2 % of calls
//!
//! `cargo bench -p revoke365-shared --bench discovery_removal [-- MAILBOXES LATENCY_MS EXO_CAP GRAPH_CAP GRAPH_MAILBOX_CAP]`

use revoke365::config::HttpSettings;
use revoke365_testkit::bench::{arg, verdict};
use revoke365_testkit::generated::{generated_tenant, leaver_grants, Caps, LEAVER};
use revoke365_testkit::Harness;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    // `REVOKE365_LOG=info` shows when each step starts and ends.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("REVOKE365_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let mailboxes = arg(0, 4000) as usize;
    let latency_ms = arg(1, 100);
    let caps = Caps {
        exchange: arg(2, 20),
        graph: arg(3, 40),
        graph_mailbox: arg(4, 4),
    };
    let tenant = generated_tenant(mailboxes, 0, latency_ms, &caps);
    let tenant_id = tenant["tenant_id"].as_str().unwrap_or_default().to_string();
    // The client's defaults: it is not told the tenant's limits.
    let h = Harness::start(tenant, HttpSettings::default()).await;
    // `REVOKE365_BENCH_TIMELINE=1` prints the calls in flight and the learnt limits over time.
    let timeline = std::env::var_os("REVOKE365_BENCH_TIMELINE")
        .map(|_| timeline::Timeline::sample(h.connector.core.clone(), tenant_id));
    let started = Instant::now();
    let report = h
        .report(json!({"user_email": LEAVER, "company_id": "bench", "ticket_id": "1"}))
        .await;
    let wall = started.elapsed();
    if let Some(timeline) = timeline {
        timeline.print();
    }
    assert!(
        report.success,
        "bench run must succeed: {:?}",
        report.errors
    );
    assert_eq!(
        report.removal_summary.total_permissions_removed as usize,
        leaver_grants(mailboxes)
    );

    let state = h.sim.snapshot();
    let mut rows: Vec<(&String, u64)> = state
        .counters
        .requests
        .iter()
        .map(|(k, v)| (k, *v))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let calls = |prefix: &str| -> u64 {
        rows.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    let reads = |filter: &dyn Fn(&str) -> bool| -> u64 {
        rows.iter().filter(|(k, _)| filter(k)).map(|(_, n)| n).sum()
    };
    let exchange_calls = calls("exo ");
    let graph_calls = calls("graph ");
    let exchange_reads = reads(&|k| k.starts_with("exo Get-"));
    let graph_reads = reads(&|k| k.starts_with("graph GET"));
    let latency = Duration::from_millis(latency_ms);
    let bound = (latency * exchange_calls as u32 / caps.exchange as u32)
        .max(latency * graph_calls as u32 / caps.graph as u32);
    let throttled = state.counters.throttled_429;
    let per_mailbox = |n: u64| n as f64 / mailboxes as f64;

    println!(
        "discovery + removal + verification: {mailboxes} mailboxes, {latency_ms} ms per call; \
         tenant caps (not told to the client): Exchange {}, Graph {} overall / {} per mailbox",
        caps.exchange, caps.graph, caps.graph_mailbox
    );
    println!(
        "grants removed: {}",
        report.removal_summary.total_permissions_removed
    );
    println!("{:<44} {:>8}", "endpoint", "requests");
    for (k, n) in &rows {
        println!("{k:<44} {n:>8}");
    }
    println!("{:<44} {:>8}", "Exchange calls", exchange_calls);
    println!("{:<44} {:>8}", "Graph calls", graph_calls);
    for (tenant, service, learned) in h.connector.core.learned_limits() {
        println!(
            "learned limit {service:<10} ({tenant}): {:>4}   peak in flight {:>4}   throttled {:>4}",
            learned.limit, learned.peak_in_flight, learned.throttled
        );
    }
    println!(
        "peak in flight at the tenant: Exchange {}, Graph {}, Graph per mailbox {}",
        state.counters.peak_in_flight_exchange,
        state.counters.peak_in_flight_graph,
        state.counters.peak_in_flight_graph_mailbox
    );
    let total_calls = exchange_calls + graph_calls;
    let throttled_share = throttled as f64 / total_calls.max(1) as f64;
    println!(
        "429 answers: {throttled} of {total_calls} calls = {:.2} %   (bound 2 %: {})",
        throttled_share * 100.0,
        verdict(throttled_share <= 0.02)
    );
    println!(
        "Exchange reads per mailbox: {:.3}   (bound 1.2: {})",
        per_mailbox(exchange_reads),
        verdict(per_mailbox(exchange_reads) <= 1.2)
    );
    println!(
        "Graph reads per mailbox:    {:.3}   (bound 1.1: {})",
        per_mailbox(graph_reads),
        verdict(per_mailbox(graph_reads) <= 1.1)
    );
    println!("wall time:   {:>8.2} s", wall.as_secs_f64());
    println!(
        "ideal bound: {:>8.2} s  (max over services of calls × latency ÷ cap)",
        bound.as_secs_f64()
    );
    let ratio = wall.as_secs_f64() / bound.as_secs_f64().max(f64::EPSILON);
    println!(
        "ratio:       {ratio:>8.2}x   (bound 1.3x: {})",
        verdict(ratio <= 1.3)
    );
}

/// Where the wall time goes: the calls in flight and the learnt limits, every 100 ms.
mod timeline {
    use revoke365::adapters::http::HttpCore;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const SERVICES: [&str; 2] = ["exchange", "graph"];
    /// Samples per printed row (one each 5 ms).
    const PER_ROW: usize = 20;

    /// In flight and limit per service, one sample.
    type Sample = [(usize, usize); 2];

    pub struct Timeline {
        samples: Arc<Mutex<Vec<Sample>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Timeline {
        pub fn sample(core: Arc<HttpCore>, tenant: String) -> Timeline {
            let samples = Arc::new(Mutex::new(Vec::new()));
            let kept = samples.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                loop {
                    tick.tick().await;
                    let sample = SERVICES.map(|service| {
                        let limit = core.learned(&tenant, service).map_or(0, |l| l.limit);
                        (core.in_flight(&tenant, service), limit)
                    });
                    kept.lock().unwrap().push(sample);
                }
            });
            Timeline { samples, task }
        }

        pub fn print(self) {
            self.task.abort();
            println!(
                "{:>6} {:>18} {:>18}",
                "s", "Exchange in flight", "Graph in flight"
            );
            let samples = self.samples.lock().unwrap();
            for (row, chunk) in samples.chunks(PER_ROW).enumerate() {
                let mean = |i: usize| {
                    chunk.iter().map(|s| s[i].0).sum::<usize>() as f64 / chunk.len() as f64
                };
                let limit = |i: usize| chunk.last().map_or(0, |s: &Sample| s[i].1);
                println!(
                    "{:>6.1} {:>10.1} / {:<5} {:>10.1} / {:<5}",
                    row as f64 * 0.1,
                    mean(0),
                    limit(0),
                    mean(1),
                    limit(1)
                );
            }
        }
    }
}
