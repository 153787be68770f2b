use reqwest::Method;
use serde_json::json;

use crate::common::{fixture, futures_join, TestSim, ACME, HARD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_answers_429() {
    let mut tenant = fixture(ACME);
    tenant.sim.concurrency_cap = Some(2);
    tenant.sim.latency_ms = 300;
    let sim = TestSim::start(tenant).await;
    let requests = (0..6).map(|_| sim.graph_get("/v1.0/users/john.smith@acmecorp.com"));
    let answers = futures_join(requests).await;
    let throttled: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!throttled.is_empty(), "some requests exceed the cap");
    assert!(answers.iter().filter(|a| a.status == 200).count() >= 2);
    for answer in &throttled {
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.body["error"]["code"], "TooManyRequests");
    }
    let state = sim.state();
    assert!(
        state["peak_in_flight"].as_u64().unwrap() >= 3,
        "{}",
        state["peak_in_flight"]
    );
    assert_eq!(
        state["throttled_429"].as_u64().unwrap(),
        throttled.len() as u64
    );
    assert_eq!(state["requests"]["graph GET /users/{id}"], 6);
}

async fn statuses_with_503_rate() -> (Vec<u16>, u64) {
    let mut tenant = fixture(ACME);
    tenant.sim.rate_503 = 0.3;
    tenant.sim.seed = 7;
    let sim = TestSim::start(tenant).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let answer = sim.graph_get("/v1.0/users/jane.doe@acmecorp.com").await;
        if answer.status == 503 {
            assert_eq!(answer.header("retry-after"), Some("1"));
        }
        statuses.push(answer.status);
    }
    let injected = sim.state()["injected_503"].as_u64().unwrap();
    (statuses, injected)
}

#[tokio::test]
async fn seeded_503_rate_is_deterministic() {
    let (first, injected) = statuses_with_503_rate().await;
    let (second, _) = statuses_with_503_rate().await;
    assert_eq!(first, second, "same seed, same sequence");
    // One draw per admitted request from fastrand::Rng::with_seed(seed).
    let mut rng = fastrand::Rng::with_seed(7);
    let expected: Vec<u16> = (0..40)
        .map(|_| if rng.f64() < 0.3 { 503 } else { 200 })
        .collect();
    assert_eq!(first, expected);
    let count = first.iter().filter(|s| **s == 503).count() as u64;
    assert_eq!(injected, count);
    assert!(count > 0 && count < 40);
}

#[tokio::test]
async fn failing_mailbox_rejects_mutations_only() {
    let sim = TestSim::hard().await;
    let before = sim.state()["mailboxes"].clone();
    let mutations = [
        json!({"CmdletName": "Remove-MailboxPermission", "Parameters": {"Identity": "legal@globexcorp.com", "User": "john.smith@globexcorp.com", "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}}),
        json!({"CmdletName": "Add-MailboxPermission", "Parameters": {"Identity": "legal@globexcorp.com", "User": "john.smith2@globexcorp.com", "AccessRights": ["FullAccess"]}}),
        json!({"CmdletName": "Remove-RecipientPermission", "Parameters": {"Identity": "legal@globexcorp.com", "Trustee": "john.smith@globexcorp.com", "AccessRights": ["SendAs"], "Confirm": false}}),
        json!({"CmdletName": "Set-Mailbox", "Parameters": {"Identity": "legal@globexcorp.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": "john.smith@globexcorp.com"}}}),
    ];
    for input in mutations {
        let answer = sim.exo(&json!({"CmdletInput": input}).to_string()).await;
        assert_eq!(answer.status, 500, "{input}");
        let detail = answer.exo_detail();
        assert!(detail.ends_with("|Microsoft.Exchange.Configuration.Tasks.TaskAccessDeniedException|Access to mailbox 'legal@globexcorp.com' is denied."), "{detail}");
    }
    let read = sim.exo(r#"{"CmdletInput":{"CmdletName":"Get-MailboxPermission","Parameters":{"Identity":"legal@globexcorp.com"}}}"#).await;
    assert_eq!(read.status, 200);
    let path = "/v1.0/users/legal@globexcorp.com/calendar/calendarPermissions";
    assert_eq!(sim.graph_get(path).await.status, 200);
    let delete = sim
        .graph(
            Method::DELETE,
            &format!("{path}/am9obi5zbWl0aEBnbG9iZXhjb3JwLmNvbQ=="),
            None,
        )
        .await;
    assert_eq!(delete.status, 403);
    assert_eq!(delete.body["error"]["code"], "ErrorAccessDenied");
    let create = sim
        .graph(
            Method::POST,
            path,
            Some(r#"{"emailAddress":{"address":"john.smith@globexcorp.com"},"role":"read"}"#),
        )
        .await;
    assert_eq!(create.status, 403);
    assert_eq!(sim.state()["mailboxes"], before);
}

#[tokio::test]
async fn noop_mailbox_removals_change_nothing() {
    let mut tenant = fixture(ACME);
    tenant.sim.noop_remove_mailboxes = vec!["ceo@acmecorp.com".into(), "sales@acmecorp.com".into()];
    let sim = TestSim::start(tenant).await;
    let before = sim.state()["mailboxes"].clone();
    let removals = [
        r#"{"CmdletInput":{"CmdletName":"Remove-MailboxPermission","Parameters":{"Identity":"ceo@acmecorp.com","User":"john.smith@acmecorp.com","AccessRights":["FullAccess"],"InheritanceType":"All","Confirm":false}}}"#,
        r##"{"CmdletInput":{"CmdletName":"Set-Mailbox","Parameters":{"Identity":"sales@acmecorp.com","GrantSendOnBehalfTo":{"@odata.type":"#Exchange.GenericHashTable","remove":"john.smith@acmecorp.com"}}}}"##,
    ];
    for body in removals {
        let answer = sim.exo(body).await;
        assert_eq!(answer.status, 200, "{body}");
        assert!(answer.warnings().is_empty(), "{}", answer.body);
    }
    let path = "/v1.0/users/ceo@acmecorp.com/calendar/calendarPermissions";
    let john = sim
        .graph_get(path)
        .await
        .values()
        .iter()
        .find(|p| p["emailAddress"]["address"] == "john.smith@acmecorp.com")
        .cloned()
        .unwrap();
    let delete = sim
        .graph(
            Method::DELETE,
            &format!("{path}/{}", john["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(delete.status, 204);
    assert_eq!(sim.state()["mailboxes"], before);
}

#[tokio::test]
async fn latency_is_applied() {
    let mut tenant = fixture(HARD);
    tenant.sim.latency_ms = 150;
    let sim = TestSim::start(tenant).await;
    let started = std::time::Instant::now();
    assert_eq!(
        sim.graph_get("/v1.0/users/john.smith@globexcorp.com")
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}
