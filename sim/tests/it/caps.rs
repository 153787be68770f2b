//! Per-service concurrency caps: Exchange (with `$batch` steps), Graph, and
//! Graph per mailbox; their 429 bodies and counters.

use reqwest::Method;
use revoke365_sim::ThrottleBody;
use serde_json::json;

use crate::common::{cmdlet, futures_join, real_quiet, TestSim, PETER};

const TEXT: &str =
    "You have reached the maximum number of concurrent requests per tenant. Please wait and try again.";

/// A raw Exchange request, for answers that are not JSON.
async fn exo_raw(
    sim: &TestSim,
    token: &str,
    body: String,
) -> (u16, Option<String>, Option<String>, String) {
    let response = sim
        .http
        .post(sim.invoke_url())
        .bearer_auth(token)
        .header("X-AnchorMailbox", format!("UPN:{PETER}"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    (
        status,
        content_type,
        retry_after,
        response.text().await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_cap_with_the_plain_text_body() {
    let mut tenant = real_quiet();
    tenant.sim.exchange_concurrency_cap = Some(2);
    tenant.sim.exchange_throttle_body = ThrottleBody::Text;
    tenant.sim.latency_ms = 700;
    tenant.sim.retry_after_secs = 3;
    let sim = TestSim::start(tenant).await;
    let token = sim.token(crate::common::EXO_SCOPE).await;
    let body = cmdlet("Get-Mailbox", json!({"Identity": "ceo@initech.com"}));
    let exchange = futures_join((0..5).map(|_| exo_raw(&sim, &token, body.clone())));
    // Graph is not capped by the Exchange cap.
    let user = format!("/v1.0/users/{PETER}");
    let graph = futures_join((0..3).map(|_| sim.graph_get(&user)));
    let (exchange, graph) = tokio::join!(exchange, graph);
    assert!(graph.iter().all(|a| a.status == 200));
    let throttled: Vec<_> = exchange.iter().filter(|a| a.0 == 429).collect();
    assert_eq!(throttled.len(), 3, "{exchange:?}");
    for (_, content_type, retry_after, text) in &throttled {
        assert!(content_type.as_deref().unwrap().starts_with("text/plain"));
        assert_eq!(retry_after.as_deref(), Some("3"));
        assert_eq!(text, TEXT);
    }
    let state = sim.handle.snapshot().counters;
    assert_eq!(state.throttled_429_exchange, 3);
    assert_eq!(state.throttled_429_graph, 0);
    assert_eq!(state.throttled_429, 3);
    // A throttled request counts while it is answered: the peak is over the cap.
    assert!((3..=5).contains(&state.peak_in_flight_exchange));
    assert_eq!(state.peak_in_flight_graph, 3);
    assert!(state.peak_in_flight >= 5, "{}", state.peak_in_flight);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_cap_counts_batch_steps_and_answers_json_by_default() {
    let mut tenant = real_quiet();
    tenant.sim.exchange_concurrency_cap = Some(2);
    tenant.sim.latency_ms = 700;
    let sim = TestSim::start(tenant).await;
    let url = sim.invoke_url();
    let steps: Vec<_> = ["ceo", "finance", "it", "info"]
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": i.to_string(), "method": "POST", "url": url,
            "headers": {"X-AnchorMailbox": format!("UPN:{m}@initech.com")},
            "body": {"CmdletInput": {"CmdletName": "Get-MailboxPermission", "Parameters": {"Identity": format!("{m}@initech.com")}}}}))
        .collect();
    let batch = sim
        .exo_at(
            &sim.url(&format!("/adminapi/beta/{}/$batch", sim.tenant)),
            &json!({"requests": steps}).to_string(),
        )
        .await;
    assert_eq!(batch.status, 200);
    let responses = batch.body["responses"].as_array().unwrap();
    let throttled: Vec<_> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 2, "{}", batch.body);
    for step in throttled {
        assert_eq!(step["body"]["error"]["code"], "TooManyRequests");
        assert_eq!(step["headers"]["Retry-After"], "1");
    }
    let counters = sim.handle.snapshot().counters;
    assert_eq!(counters.throttled_429_exchange, 2);
    assert!((3..=4).contains(&counters.peak_in_flight_exchange));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_cap() {
    let mut tenant = real_quiet();
    tenant.sim.graph_concurrency_cap = Some(2);
    tenant.sim.latency_ms = 700;
    let sim = TestSim::start(tenant).await;
    let mailboxes = ["ceo", "it", "info", "sales", "support"];
    let paths: Vec<String> = mailboxes
        .iter()
        .map(|m| format!("/v1.0/users/{m}@initech.com/calendar/calendarPermissions"))
        .collect();
    let graph = futures_join(paths.iter().map(|p| sim.graph_get(p)));
    let body = cmdlet("Get-Mailbox", json!({"Identity": "ceo@initech.com"}));
    let exchange = futures_join((0..3).map(|_| sim.exo(&body)));
    let (graph, exchange) = tokio::join!(graph, exchange);
    assert!(
        exchange.iter().all(|a| a.status == 200),
        "Exchange is not capped"
    );
    let throttled: Vec<_> = graph.iter().filter(|a| a.status == 429).collect();
    assert_eq!(throttled.len(), 3);
    for answer in throttled {
        assert_eq!(answer.body["error"]["code"], "TooManyRequests");
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
    let counters = sim.handle.snapshot().counters;
    assert_eq!(counters.throttled_429_graph, 3);
    assert_eq!(counters.throttled_429_exchange, 0);
    assert!((3..=5).contains(&counters.peak_in_flight_graph));
    assert_eq!(counters.peak_in_flight_graph_mailbox, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_mailbox_cap_counts_upn_and_object_id_as_one_mailbox() {
    let mut tenant = real_quiet();
    tenant.sim.graph_mailbox_concurrency_cap = Some(1);
    tenant.sim.latency_ms = 700;
    let sim = TestSim::start(tenant).await;
    let id = sim.graph_get(&format!("/v1.0/users/{PETER}")).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let paths = [
        format!("/v1.0/users/{PETER}/calendar/calendarPermissions"),
        format!("/v1.0/users/{id}/calendar/calendarPermissions"),
        format!(
            "/v1.0/users/{}/transitiveMemberOf/microsoft.graph.group",
            PETER.to_uppercase()
        ),
        "/v1.0/users/ceo@initech.com/calendar/calendarPermissions".to_string(),
        "/v1.0/users/it@initech.com".to_string(),
    ];
    let answers = futures_join(paths.iter().map(|p| sim.graph_get(p))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        &statuses[3..],
        [200, 200],
        "other mailboxes are not throttled"
    );
    let counters = sim.handle.snapshot().counters;
    assert!((2..=3).contains(&counters.peak_in_flight_graph_mailbox));
    assert_eq!(counters.throttled_429_graph, 2);
    // Sequential requests on the same mailbox pass.
    for path in &paths[..2] {
        assert_eq!(sim.graph(Method::GET, path, None).await.status, 200);
    }
}
