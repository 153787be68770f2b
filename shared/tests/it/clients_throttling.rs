//! Concurrency limits and retries over real HTTP: the simulator answers 429 above its cap and
//! injects seeded 503s; the clients stay under the cap, or retry to success within bounds.

use revoke365::adapters::exchange::ExchangeClient;
use revoke365::adapters::graph::GraphClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{AppCredentials, HttpSettings, RetryPolicy, Secret, ServiceUrls};
use revoke365::error::{ErrorKind, RemoteError};
use revoke365::ports::{Directory, ExchangePermissions};
use revoke365_sim::{Fixture, SimHandle, SimOptions};
use std::sync::Arc;
use std::time::Duration;

const CALLS: usize = 30;

/// A small tenant whose `sim` settings each test fills in.
fn fixture(sim: &str) -> Fixture {
    let json = format!(
        r#"{{
  "tenant_id": "fabrikam-tenant",
  "organization": {{"company_id": "fabrikam", "company_name": "Fabrikam",
    "m365_permission_ticket_board": "Service Desk", "notification_sender": "ops@fabrikam.com"}},
  "users": [{{"upn": "ann@fabrikam.com", "display_name": "Ann Lee"}},
            {{"upn": "bob@fabrikam.com", "display_name": "Bob Day"}}],
  "mailboxes": [{{"upn": "bob@fabrikam.com", "full_access": [{{"user": "ann@fabrikam.com"}}]}}],
  "sim": {sim}
}}"#
    );
    Fixture::from_json(&json).expect("fixture")
}

async fn start(
    sim_settings: &str,
    tenant_concurrency: usize,
    retry: RetryPolicy,
) -> (SimHandle, Arc<ExchangeClient>, Arc<GraphClient>) {
    let sim = revoke365_sim::start(
        fixture(sim_settings),
        SimOptions {
            client_secret: None,
            cw_private_key: None,
            ..Default::default()
        },
    )
    .await
    .expect("simulator starts");
    let urls = ServiceUrls::all_at(&sim.base_url);
    let settings = HttpSettings {
        retry,
        ..HttpSettings::default()
    }
    .with_ceiling(tenant_concurrency);
    let core = HttpCore::new(settings).expect("http core");
    let creds = AppCredentials {
        tenant_id: "fabrikam-tenant".into(),
        client_id: "app".into(),
        credential: revoke365::config::ClientCredential::Secret(Secret::new("s")),
    };
    let exchange = Arc::new(ExchangeClient::new(core.clone(), &urls, creds.clone()));
    let graph = Arc::new(GraphClient::new(core, &urls, creds));
    (sim, exchange, graph)
}

fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
    }
}

/// `CALLS` concurrent reads, half Exchange and half Graph, all on the one tenant.
async fn concurrent_reads(
    exchange: &Arc<ExchangeClient>,
    graph: &Arc<GraphClient>,
) -> Vec<Result<(), RemoteError>> {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let (exchange, graph) = (exchange.clone(), graph.clone());
        calls.spawn(async move {
            if i % 2 == 0 {
                let entries = exchange.mailbox_permissions("bob@fabrikam.com").await?;
                assert!(entries.iter().any(|e| e.user == "ann@fabrikam.com"));
            } else {
                assert!(graph.find_user("ann@fabrikam.com").await?.user().is_some());
            }
            Ok(())
        });
    }
    let mut results = Vec::new();
    while let Some(done) = calls.join_next().await {
        results.push(done.expect("task"));
    }
    results
}

#[tokio::test]
async fn each_service_keeps_under_its_own_ceiling() {
    // Three in flight per service: six together, never more.
    let sim_settings = r#"{"concurrency_cap": 6, "latency_ms": 20, "retry_after_secs": 0}"#;
    let (sim, exchange, graph) = start(sim_settings, 3, quick_retries(3)).await;
    let results = concurrent_reads(&exchange, &graph).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let counters = sim.snapshot().counters;
    assert!(counters.peak_in_flight <= 6, "{counters:?}");
    assert_eq!(
        counters.peak_in_flight, 6,
        "both budgets are used, not just respected"
    );
    assert_eq!(counters.throttled_429, 0);
}

#[tokio::test]
async fn calls_above_the_cap_are_throttled_and_retried_to_success() {
    let sim_settings = r#"{"concurrency_cap": 3, "latency_ms": 20, "retry_after_secs": 0}"#;
    let (sim, exchange, graph) = start(sim_settings, 12, quick_retries(40)).await;
    let results = concurrent_reads(&exchange, &graph).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let counters = sim.snapshot().counters;
    assert!(counters.throttled_429 > 0, "{counters:?}");
    let answered =
        counters.requests["exo Get-MailboxPermission"] + counters.requests["graph GET /users/{id}"];
    assert_eq!(
        answered,
        CALLS as u64 + counters.throttled_429,
        "each 429 was retried once more"
    );
}

#[tokio::test]
async fn injected_503s_are_retried_to_success() {
    let sim_settings = r#"{"rate_503": 0.3, "seed": 11, "retry_after_secs": 0}"#;
    let (sim, exchange, graph) = start(sim_settings, 10, quick_retries(12)).await;
    let results = concurrent_reads(&exchange, &graph).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(sim.snapshot().counters.injected_503 > 0);
}

#[tokio::test]
async fn throttling_that_never_ends_is_reported_after_the_bounded_attempts() {
    let sim_settings = r#"{"rate_503": 1.0, "retry_after_secs": 0}"#;
    let (sim, exchange, _graph) = start(sim_settings, 10, quick_retries(4)).await;
    let err = exchange
        .mailbox_permissions("bob@fabrikam.com")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::Throttled {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(sim.snapshot().requests("exo Get-MailboxPermission"), 4);
}
