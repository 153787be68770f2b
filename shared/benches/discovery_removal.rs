//! Discovery + removal + verification on a generated tenant of 2,000 mailboxes, with 20 ms
//! simulated latency per call and a concurrency cap of 10: prints wall time, requests per
//! endpoint and the ideal bound (requests × latency ÷ cap) side by side.
//!
//! `cargo bench -p revoke365-shared --bench discovery_removal [-- MAILBOXES LATENCY_MS CAP]`

// The integration tests' kit: the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/it/kit.rs"]
mod kit;

use harness::Harness;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DOMAIN: &str = "bench.example";

/// A tenant where the leaver holds one kind of grant on every tenth mailbox and every
/// mailbox has grants for someone else.
fn generated_tenant(mailboxes: usize, latency_ms: u64, cap: usize) -> Value {
    let leaver = format!("leaver@{DOMAIN}");
    let mut users = vec![
        json!({"upn": leaver, "display_name": "Leaving User"}),
        json!({"upn": format!("other@{DOMAIN}"), "display_name": "Other User"}),
    ];
    let mut boxes = Vec::new();
    for i in 0..mailboxes {
        let upn = format!("mbx{i:05}@{DOMAIN}");
        users.push(json!({"upn": upn, "display_name": format!("Mailbox {i}")}));
        let mut m = json!({"upn": upn, "display_name": format!("Mailbox {i}"),
            "type": if i % 50 == 7 { "SharedMailbox" } else { "UserMailbox" },
            "full_access": [{"user": format!("other@{DOMAIN}")}],
            "calendar": [{"user": format!("other@{DOMAIN}"), "access_rights": "Reviewer"}]});
        match i % 40 {
            0 => m["full_access"]
                .as_array_mut()
                .unwrap()
                .push(json!({"user": leaver})),
            10 => m["calendar"]
                .as_array_mut()
                .unwrap()
                .push(json!({"user": leaver, "access_rights": "Editor", "delegate": true})),
            20 => m["send_as"] = json!([leaver]),
            30 => m["send_on_behalf"] = json!([leaver]),
            _ => {}
        }
        if i % 50 == 7 {
            m["full_access"]
                .as_array_mut()
                .unwrap()
                .push(json!({"user": leaver}));
        }
        boxes.push(m);
    }
    json!({
        "tenant_id": "b3a7c1d2-0000-4000-8000-00000000bench",
        "organization": {"company_id": "bench", "company_name": "Bench Ltd", "m365_permission_ticket_board": "Service Desk",
            "m365_permission_removal_scope": [], "m365_permission_notification_recipients": ["secops@msp.example"],
            "notification_sender": format!("mbx00001@{DOMAIN}")},
        "users": users, "groups": [], "mailboxes": boxes,
        "psa_tickets": [{"id": "1", "company_id": "bench", "summary": "bench"}],
        "sim": {"latency_ms": latency_ms, "concurrency_cap": cap, "page_size": 1000, "retry_after_secs": 1}
    })
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (mailboxes, latency_ms, cap) = (arg(0, 2000) as usize, arg(1, 20), arg(2, 10) as usize);
    let h = Harness::start(
        generated_tenant(mailboxes, latency_ms, cap),
        kit::fast_http(cap),
    )
    .await;
    let started = Instant::now();
    let report = h.report(json!({"user_email": format!("leaver@{DOMAIN}"), "company_id": "bench", "ticket_id": "1"})).await;
    let wall = started.elapsed();
    assert!(
        report.success,
        "bench run must succeed: {:?}",
        report.errors
    );

    let state = h.state();
    let requests = state["requests"].as_object().unwrap();
    let mut rows: Vec<(&String, u64)> = requests
        .iter()
        .map(|(k, v)| (k, v.as_u64().unwrap()))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    // Only Graph and Exchange calls pay the latency and count against the cap.
    let tenant_calls: u64 = rows
        .iter()
        .filter(|(k, _)| k.starts_with("graph") || k.starts_with("exo"))
        .map(|(_, n)| n)
        .sum();
    let bound = Duration::from_millis(tenant_calls * latency_ms / cap as u64);

    println!("discovery + removal + verification: {mailboxes} mailboxes, {latency_ms} ms latency, cap {cap}");
    println!(
        "grants removed: {}",
        report.removal_summary.total_permissions_removed
    );
    println!("{:<40} {:>8}", "endpoint", "requests");
    for (k, n) in &rows {
        println!("{k:<40} {n:>8}");
    }
    println!("{:<40} {:>8}", "tenant calls (graph + exo)", tenant_calls);
    println!(
        "peak in flight: {}   429s: {}   503s: {}",
        state["peak_in_flight"], state["throttled_429"], state["injected_503"]
    );
    println!("wall time:   {:>8.2} s", wall.as_secs_f64());
    println!(
        "ideal bound: {:>8.2} s  (tenant calls × latency ÷ cap)",
        bound.as_secs_f64()
    );
    println!(
        "ratio:       {:>8.2}x",
        wall.as_secs_f64() / bound.as_secs_f64().max(f64::EPSILON)
    );
}
