//! The serverless path at scale (feature `aws`, the emulators running): a generated
//! 10,000-mailbox tenant through the real handlers, several containers per function as the
//! event source mappings run them, against LocalStack, DynamoDB Local and the simulator. Every
//! invocation gets the deployed deadlines scaled to the simulated latency (150 s a function
//! and 45 s a shard at 300 ms a call; 10 s and 3 s at 20 ms).
//!
//! Asserts the outcome: exact counts, the tenant left as it should be, no invocation past its
//! deadline, no DynamoDB item over 400 KB, one ticket note and one email per run; a second run
//! for a user holding 6,000 grants pages through its result with `GET`. Prints the wall time to
//! the run's result beside the bound the CLI bench is held to (max over services of calls ×
//! latency ÷ cap) and the target (1.3× from 100 ms a call, 2× below), and per 5 s the scan shards running, the calls in flight
//! and the tenant's Exchange budget; the figures are in docs/speed.md.
//!
//! `infra/test.sh -p revoke365-shared --test scale -- --nocapture`; by hand at real latency:
//! `REVOKE365_SCALE_LATENCY_MS=100` or `300` (and `REVOKE365_SCALE_MAILBOXES`,
//! `REVOKE365_SCALE_ADMIN_GRANTS`, `REVOKE365_SCALE_CONTAINERS` for that many of each function).
#![cfg(feature = "aws")]

// Its own binary: it times deadlines, so it runs alone, not beside the `it` binary's tests.
// The AWS kit is `it`'s; the scale test uses only part of it.
#[allow(dead_code)]
#[path = "it/aws_kit.rs"]
mod aws_kit;

use aws_kit::{Containers, Env, PumpStats};
use aws_sdk_dynamodb::types::AttributeValue;
use revoke365::config::HttpSettings;
use revoke365_sim::Snapshot;
use revoke365_testkit::generated::{generated_tenant, leaver_grants, Caps, ADMIN, LEAVER};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const CAPS: Caps = Caps {
    exchange: 20,
    graph: 40,
    graph_mailbox: 4,
};
/// Containers each function runs at once, as the template's event sources let Lambda scale:
/// discovery and verification with the queue (no cap), removal to its `MaximumConcurrency`.
/// Used from 100 ms a call, where the ratio is measured.
const LAMBDA_SCALING: Containers = Containers {
    discovery: 16,
    removal: 10,
    verification: 16,
};
/// Below 100 ms a call (CI's 20 ms: 10 s a function, 3 s a shard) the run is about deadlines and
/// exact counts; four containers a function keep 2 cores and DynamoDB Local inside the scaled
/// margins (a third of the time left, 3.3 s there; 30 s when deployed).
const FEW: Containers = Containers {
    discovery: 4,
    removal: 4,
    verification: 4,
};

fn containers(latency_ms: u64) -> Containers {
    match std::env::var("REVOKE365_SCALE_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => Containers::each(n),
        None if latency_ms >= 100 => LAMBDA_SCALING,
        None => FEW,
    }
}
const ITEM_LIMIT: usize = 400 * 1024;
/// The wall time's target against the bound: 1.3× from 100 ms a call; 2× below, where the
/// DynamoDB round trips of each step weigh as much as the tenant's calls.
fn target(latency: Duration) -> f64 {
    if latency >= Duration::from_millis(100) {
        1.3
    } else {
        2.0
    }
}
/// The generated tenant's id, as its budget rows are keyed.
const TENANT: &str = "b3a7c1d2-0000-4000-8000-0000000000be";
/// The timelines' step.
const TIMELINE_EVERY: Duration = Duration::from_secs(5);
/// How often the requests in flight at the simulator are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The mean of each [`TIMELINE_EVERY`] of `samples`, one decimal: `"19.8 20.0 ... 4.1"`.
fn timeline(samples: impl Iterator<Item = (Duration, f64)>) -> String {
    let mut buckets: Vec<(f64, usize)> = Vec::new();
    for (at, value) in samples {
        let i = (at.as_secs_f64() / TIMELINE_EVERY.as_secs_f64()) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, (0.0, 0));
        }
        buckets[i].0 += value;
        buckets[i].1 += 1;
    }
    let means: Vec<String> = buckets
        .iter()
        .map(|(sum, n)| format!("{:.1}", sum / (*n).max(1) as f64))
        .collect();
    means.join(" ")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The settings the template deploys (`ExchangeConcurrency` 32, `GraphConcurrency` 128): the
/// tenant's caps are not told to the client.
fn deployed_http() -> HttpSettings {
    let mut http = HttpSettings::default();
    http.exchange.ceiling = 32;
    http.graph.ceiling = 128;
    http
}

/// What one run cost and took.
struct Figures {
    wall: Duration,
    exchange_calls: u64,
    graph_calls: u64,
    throttled: u64,
    throttled_exchange: u64,
    /// Requests per endpoint (`exo Get-MailboxPermission`, ...), most first.
    by_endpoint: Vec<(String, u64)>,
    pump: PumpStats,
    /// Exchange and Graph requests in flight at the simulator, sampled from the run's start.
    in_flight: Vec<(Duration, (u64, u64))>,
    /// When the queues were empty again.
    drained: Duration,
    /// The tenant's Exchange and Graph budgets: their limits and the permits leased, sampled
    /// likewise.
    budget: Vec<(Duration, (u64, u64))>,
    graph_budget: Vec<(Duration, (u64, u64))>,
}

/// The run's status as its item holds it now.
async fn run_status(env: &Env, run_id: &str) -> String {
    let item = env
        .ddb
        .get_item()
        .table_name(&env.names.runs_table)
        .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
        .key("sk", AttributeValue::S("RUN".into()))
        .projection_expression("#s")
        .expression_attribute_names("#s", "status")
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    match item.get("status") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The tenant's budget row of `service` now: (limit, permits leased).
async fn tenant_budget(env: &Env, service: &str) -> (u64, u64) {
    let row = env
        .ddb
        .get_item()
        .table_name(&env.names.runs_table)
        .key(
            "pk",
            AttributeValue::S(format!("BUDGET#{TENANT}#{service}")),
        )
        .key("sk", AttributeValue::S("BUDGET".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let number = |v: &AttributeValue| v.as_n().ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    let limit = row.get("limit").map_or(0, number);
    let leased = match row.get("leases") {
        Some(AttributeValue::M(leases)) => leases
            .values()
            .filter_map(|l| l.as_l().ok()?.first().map(number))
            .sum(),
        _ => 0,
    };
    (limit, leased)
}

fn calls(before: &Snapshot, after: &Snapshot, prefix: &str) -> u64 {
    let sum = |s: &Snapshot| -> u64 {
        s.counters
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    sum(after) - sum(before)
}

fn by_endpoint(before: &Snapshot, after: &Snapshot) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = after
        .counters
        .requests
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n - before.counters.requests.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

async fn run(env: &Env, user: &str, containers: Containers) -> (String, Figures) {
    let before = env.sim.snapshot();
    let started = Instant::now();
    let (status, accepted) = env
        .http(
            "POST",
            "/revocations",
            Some(json!({"user_email": user, "company_id": "bench", "ticket_id": "1"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    let mut in_flight = Vec::new();
    let mut budget = Vec::new();
    let mut graph_budget = Vec::new();
    let mut finished = None;
    let pumped = std::sync::atomic::AtomicBool::new(false);
    // Sampled beside the pump (never in its way): the calls in flight, the budget, and when
    // the run's status became final.
    let sampling = async {
        while !pumped.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(SAMPLE_EVERY).await;
            in_flight.push((started.elapsed(), env.sim.in_flight()));
            budget.push((started.elapsed(), tenant_budget(env, "exchange").await));
            graph_budget.push((started.elapsed(), tenant_budget(env, "graph").await));
            if finished.is_none() && run_status(env, &run_id).await == "completed" {
                finished = Some(started.elapsed());
            }
        }
    };
    let pumping = async {
        let pump = env.pump_with(containers).await;
        pumped.store(true, std::sync::atomic::Ordering::SeqCst);
        pump
    };
    let (pump, ()) = tokio::join!(pumping, sampling);
    let drained = started.elapsed();
    // The run is done when its result is there; the queues may hold no-op messages a while.
    let wall = finished.unwrap_or(drained);
    let after = env.sim.snapshot();
    let figures = Figures {
        wall,
        exchange_calls: calls(&before, &after, "exo "),
        graph_calls: calls(&before, &after, "graph "),
        throttled: after.counters.throttled_429 - before.counters.throttled_429,
        throttled_exchange: after.counters.throttled_429_exchange
            - before.counters.throttled_429_exchange,
        by_endpoint: by_endpoint(&before, &after),
        pump,
        in_flight,
        drained,
        budget,
        graph_budget,
    };
    (run_id, figures)
}

fn report(what: &str, f: &Figures, latency: Duration, invocation: Duration) {
    // The calls the run needed: a 429 is the client's own overshoot, not work the bound allows.
    let answered_exchange = f.exchange_calls - f.throttled_exchange;
    let answered_graph = f.graph_calls - (f.throttled - f.throttled_exchange);
    let bound = (latency * answered_exchange as u32 / CAPS.exchange as u32)
        .max(latency * answered_graph as u32 / CAPS.graph as u32);
    let ratio = f.wall.as_secs_f64() / bound.as_secs_f64().max(f64::EPSILON);
    let target = target(latency);
    println!("{what}");
    println!(
        "  calls: Exchange {}, Graph {}; 429 answers {} ({} from Exchange; {:.2} % of calls)",
        f.exchange_calls,
        f.graph_calls,
        f.throttled,
        f.throttled_exchange,
        100.0 * f.throttled as f64 / (f.exchange_calls + f.graph_calls).max(1) as f64
    );
    let endpoints: Vec<String> = f
        .by_endpoint
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("  by endpoint: {}", endpoints.join(", "));
    println!("  steps: {}", f.pump);
    let every = TIMELINE_EVERY.as_secs();
    let running = f.pump.running("scan", TIMELINE_EVERY);
    let running = timeline(
        running
            .into_iter()
            .enumerate()
            .map(|(i, n)| (TIMELINE_EVERY * i as u32, n)),
    );
    println!("  scan shards running, per {every} s: {running}");
    let exchange = timeline(f.in_flight.iter().map(|&(at, (e, _))| (at, e as f64)));
    let graph = timeline(f.in_flight.iter().map(|&(at, (_, g))| (at, g as f64)));
    println!(
        "  Exchange calls in flight (cap {}), per {every} s: {exchange}",
        CAPS.exchange
    );
    println!(
        "  Graph calls in flight (cap {}), per {every} s: {graph}",
        CAPS.graph
    );
    for (service, samples) in [("Exchange", &f.budget), ("Graph", &f.graph_budget)] {
        let limit = timeline(samples.iter().map(|&(at, (l, _))| (at, l as f64)));
        let leased = timeline(samples.iter().map(|&(at, (_, h))| (at, h as f64)));
        println!("  {service} budget limit, per {every} s: {limit}");
        println!("  {service} permits leased, per {every} s: {leased}");
    }
    println!(
        "  invocations {}, longest {:.2} s (deadline {:.2} s), over their deadline {}, steps continued or redelivered {}",
        f.pump.invocations,
        f.pump.longest.as_secs_f64(),
        invocation.as_secs_f64(),
        f.pump.over_deadline,
        f.pump.repeated
    );
    println!(
        "  wall {:.2} s to the result (queues empty at {:.2} s); bound {:.2} s (max over services of answered calls × latency ÷ cap); ratio {ratio:.2}x (target {target}x: {})",
        f.wall.as_secs_f64(),
        f.drained.as_secs_f64(),
        bound.as_secs_f64(),
        if ratio <= target { "within" } else { "OVER" }
    );
}

/// DynamoDB's size of an attribute value: names and strings as UTF-8, numbers as about one
/// byte per two digits, one byte per element of lists and maps on top.
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// The largest item of the runs table, and its key.
async fn largest_item(env: &Env) -> (usize, String) {
    let mut largest = (0, String::new());
    let mut start = None;
    loop {
        let page = env
            .ddb
            .scan()
            .table_name(&env.names.runs_table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let size: usize = item.iter().map(|(k, v)| k.len() + value_size(v)).sum();
            if size > largest.0 {
                let key = |k: &str| match item.get(k) {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                };
                largest = (size, format!("{} / {}", key("pk"), key("sk")));
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return largest;
        }
    }
}

/// Every grant entry of the result, read page by page through `next`; checks each page keeps
/// the full counts.
async fn all_pages(env: &Env, run_id: &str, removed: u64) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut path = format!("/revocations/{run_id}");
    let mut pages = 0;
    loop {
        let (status, body) = env.http("GET", &path, None, None).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let result = &body["result"];
        assert_eq!(
            result["removal_summary"]["total_permissions_removed"], removed,
            "every page keeps the full counts"
        );
        for list in result["permissions_removed"].as_object().unwrap().values() {
            entries.extend(list.as_array().unwrap().iter().cloned());
        }
        match body["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => return (entries, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_mailboxes_through_the_lambda_path() {
    // `REVOKE365_LOG=info` shows every step on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("REVOKE365_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let mailboxes = env_number("REVOKE365_SCALE_MAILBOXES", 10_000) as usize;
    let admin_grants = env_number("REVOKE365_SCALE_ADMIN_GRANTS", 6_000) as usize;
    let latency_ms = env_number("REVOKE365_SCALE_LATENCY_MS", 20);
    let latency = Duration::from_millis(latency_ms);
    let containers = containers(latency_ms);
    let invocation = Duration::from_secs(150) * latency_ms as u32 / 300;
    let shard = Duration::from_secs(45) * latency_ms as u32 / 300;
    let env = Env::start_tuned(
        generated_tenant(mailboxes, admin_grants, latency_ms, &CAPS),
        deployed_http(),
        invocation,
        shard,
    )
    .await;
    println!(
        "serverless scale: {mailboxes} mailboxes, {latency_ms} ms a call, tenant caps Exchange {} / Graph {} ({} per mailbox), containers {containers:?}",
        CAPS.exchange, CAPS.graph, CAPS.graph_mailbox
    );

    // The leaver: a grant on every tenth mailbox and on every shared one.
    let (leaver_run, figures) = run(&env, LEAVER, containers).await;
    report(&format!("run 1: {LEAVER}"), &figures, latency, invocation);
    let body = env.get(&leaver_run).await;
    assert_eq!(body["status"], "completed", "{}", body["failure"]);
    let result = &body["result"];
    assert_eq!(result["success"], true, "{}", result["errors"]);
    let expected = leaver_grants(mailboxes) as u64;
    assert_eq!(
        result["removal_summary"]["total_permissions_removed"],
        expected
    );
    assert_eq!(result["verification"]["all_permissions_cleared"], true);
    assert_eq!(figures.pump.over_deadline, 0, "{:?}", figures.pump);
    let state = env.sim.snapshot();
    assert_eq!(state.direct_grants_of(LEAVER), []);
    assert_eq!(
        state.direct_grants_of("other@bench.example").len(),
        2 * mailboxes
    );
    assert_eq!(state.direct_grants_of(ADMIN).len(), admin_grants);
    assert_eq!(state.sent_mail.len(), 1);
    let ticket = state.tickets.iter().find(|t| t.id == "1").unwrap();
    assert_eq!(ticket.notes.len(), 1);
    assert!(ticket.notes[0].text.contains(&leaver_run));

    // The IT admin: Full Access on 6,000 mailboxes, a result of six pages.
    let (admin_run, figures) = run(&env, ADMIN, containers).await;
    report(
        &format!("run 2: {ADMIN} ({admin_grants} grants)"),
        &figures,
        latency,
        invocation,
    );
    let body = env.get(&admin_run).await;
    assert_eq!(body["status"], "completed", "{}", body["failure"]);
    assert_eq!(
        body["result"]["success"], true,
        "{}",
        body["result"]["errors"]
    );
    assert_eq!(figures.pump.over_deadline, 0, "{:?}", figures.pump);
    let (entries, pages) = all_pages(&env, &admin_run, admin_grants as u64).await;
    let mailboxes_in_result: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["mailbox"].as_str().unwrap())
        .collect();
    assert_eq!(
        entries.len(),
        admin_grants,
        "every entry once across the pages"
    );
    assert_eq!(mailboxes_in_result.len(), admin_grants);
    assert_eq!(pages, admin_grants.div_ceil(1000));
    let state = env.sim.snapshot();
    assert_eq!(state.direct_grants_of(ADMIN), []);
    assert_eq!(
        state.direct_grants_of("other@bench.example").len(),
        2 * mailboxes
    );
    assert_eq!(state.sent_mail.len(), 2);
    let ticket = state.tickets.iter().find(|t| t.id == "1").unwrap();
    assert_eq!(ticket.notes.len(), 2);
    println!("  GET: {} entries over {pages} pages", entries.len());

    let (size, key) = largest_item(&env).await;
    println!("largest DynamoDB item: {size} bytes ({key}); limit {ITEM_LIMIT}");
    assert!(size < ITEM_LIMIT, "{key} is {size} bytes");
}
