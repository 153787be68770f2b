//! The serverless path end to end: the real handlers against LocalStack and DynamoDB Local,
//! with the tenant simulator (see [`crate::aws_kit`]).

use crate::aws_kit::{Env, JOHN};
use revoke365::adapters::aws::resources::resources;
use revoke365::lambda::intake::handle_intake_event;
use revoke365::lambda::steps::handle_step_records;
use revoke365::model::RunStatus;
use revoke365::ports::OrgStore;
use revoke365_sim::snapshot::FULL_ACCESS;
use revoke365_testkit::{fixture, with_sim};
use serde_json::{json, Value};
use std::time::Duration;

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"})
}

#[tokio::test(flavor = "multi_thread")]
async fn api_gateway_request_runs_to_a_verified_result() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (status, accepted) = env
        .http("POST", "/revocations", Some(request()), Some("form-4711"))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    assert_eq!(accepted["status_url"], format!("/revocations/{run_id}"));
    // The same Idempotency-Key returns the same run.
    let (again, repeat) = env
        .http("POST", "/revocations", Some(request()), Some("form-4711"))
        .await;
    assert_eq!(
        (again, repeat["run_id"].as_str().unwrap()),
        (202, run_id.as_str())
    );

    let (_, progress) = env
        .http("GET", &format!("/revocations/{run_id}"), None, None)
        .await;
    assert_eq!(progress["status"], "accepted");
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_queue_record_runs_and_a_bad_record_fails_alone_into_the_dlq() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    env.sqs
        .send_message()
        .queue_url(&env.offboarding_url)
        .message_body(request().to_string())
        .send()
        .await
        .unwrap();
    env.sqs
        .send_message()
        .queue_url(&env.offboarding_url)
        .message_body(json!({"user_email": "nobody", "company_id": "acme"}).to_string())
        .send()
        .await
        .unwrap();
    let max = resources().queues.offboarding.max_receive_count as usize;
    let mut accepted_runs = 0;
    for _ in 0..=max + 1 {
        let Some((event, handles)) = env.receive(&env.offboarding_url).await else {
            break;
        };
        let event_json = serde_json::to_value(&event).unwrap();
        let response = handle_intake_event(&env.intake, event_json).await.unwrap();
        let failed: Vec<String> = response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
            .collect();
        accepted_runs += event.records.len() - failed.len();
        env.settle(&env.offboarding_url, &event, &handles, &failed)
            .await;
    }
    assert_eq!(accepted_runs, 1);
    assert_eq!(env.run_count().await, 1, "the bad record created no run");
    assert_eq!(
        env.dlq_depths().await[0],
        1,
        "the bad record is in the offboarding DLQ"
    );
    env.pump_steps(1).await;
    let runs = env
        .ddb
        .scan()
        .table_name(&env.names.runs_table)
        .send()
        .await
        .unwrap();
    let run_id = runs
        .items
        .unwrap()
        .iter()
        .find_map(|i| {
            (i["sk"].as_s().unwrap() == "RUN").then(|| i["run_id"].as_s().unwrap().clone())
        })
        .unwrap();
    let mut depths = env.dlq_depths().await;
    depths[0] = 0;
    assert_eq!(depths, vec![0, 0, 0, 0]);
    env.sqs
        .purge_queue()
        .queue_url(&env.dlq_urls[0])
        .send()
        .await
        .unwrap();
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn security_alert_runs_with_incident_details() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            revoke365_testkit::events_dir().join("eventbridge-security-alert.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut detail = request();
    detail["incident_id"] = json!("INC-2026-0042");
    detail["severity"] = json!("high");
    event["detail"] = detail;
    let out = handle_intake_event(&env.intake, event.clone())
        .await
        .unwrap();
    let run_id = out["run_id"].as_str().unwrap().to_string();
    // EventBridge may deliver twice: the event id makes it the same run.
    let again = handle_intake_event(&env.intake, event).await.unwrap();
    assert_eq!(again["run_id"], run_id.as_str());
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let state = env.sim.snapshot();
    let ticket = state
        .tickets
        .iter()
        .find(|t| !t.notes.is_empty())
        .expect("the ticket with the note");
    assert!(ticket
        .initial_description
        .as_deref()
        .expect("a description")
        .contains("INC-2026-0042"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_api_input_is_a_400_naming_the_field_and_creates_nothing() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    for (body, field) in [
        (
            json!({"user_email": "john", "company_id": "acme"}),
            "user_email",
        ),
        (
            json!({"user_email": JOHN, "company_id": "acme", "permission_types": ["everything"]}),
            "permission_types",
        ),
        (
            json!({"user_email": JOHN, "company_id": "initech"}),
            "company_id",
        ),
        (
            json!({"user_email": JOHN, "company_id": "acme", "dry_run": "no"}),
            "dry_run",
        ),
    ] {
        let (status, err) = env.http("POST", "/revocations", Some(body), None).await;
        assert_eq!(status, 400);
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, _) = env
        .http(
            "GET",
            "/revocations/00000000-0000-0000-0000-000000000000",
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(env.run_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_delivered_twice_still_counts_exactly() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(2).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_503s_at_thirty_percent_are_retried_to_an_exact_result() {
    let env = Env::start(
        with_sim(
            fixture("acme-tenant.json"),
            json!({"rate_503": 0.3, "seed": 1234, "retry_after_secs": 0}),
        ),
        10,
    )
    .await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    assert!(env.sim.snapshot().counters.injected_503 > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_handler_that_dies_halfway_is_finished_by_redelivery() {
    // One request at a time and 150 ms per call: the handler can be killed between removals.
    let env = Env::start(
        with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 150})),
        1,
    )
    .await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    // Discovery only: the listing and its scan shard.
    let (discovery_url, discovery) = &env.steps[0];
    while let Some((event, handles)) = env.receive(discovery_url).await {
        assert!(
            handle_step_records(discovery, event.clone(), env.deadline())
                .await
                .batch_item_failures
                .is_empty()
        );
        env.settle(discovery_url, &event, &handles, &[]).await;
    }

    // The Full Access batch (ceo, finance, billing, support): kill its handler after two removals.
    let (removal_url, removal) = &env.steps[1];
    let mut killed = false;
    while let Some((event, handles)) = env.receive(removal_url).await {
        let is_full_access = event
            .records
            .iter()
            .any(|r| r.body.as_deref().unwrap().contains("\"full_access\""));
        if is_full_access && !killed {
            let removals = || env.sim.snapshot().requests("exo Remove-MailboxPermission");
            let handler = handle_step_records(removal, event.clone(), env.deadline());
            tokio::pin!(handler);
            loop {
                tokio::select! {
                    _ = &mut handler => panic!("the handler finished before it could be killed"),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => if removals() >= 3 { break },
                }
            }
            killed = true;
            // The process died: none of its messages was deleted; they all come back.
            let unacknowledged: Vec<String> = event
                .records
                .iter()
                .map(|r| r.message_id.clone().unwrap())
                .collect();
            env.settle(removal_url, &event, &handles, &unacknowledged)
                .await;
            // Killed halfway: some of the four Full Access grants gone, some not.
            let left = env
                .sim
                .snapshot()
                .direct_grants_of(JOHN)
                .iter()
                .filter(|(_, k)| *k == FULL_ACCESS)
                .count();
            assert!(
                (1..4).contains(&left),
                "{left} of 4 Full Access grants left"
            );
            continue;
        }
        let failed: Vec<String> = handle_step_records(removal, event.clone(), env.deadline())
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        env.settle(removal_url, &event, &handles, &failed).await;
    }
    assert!(killed);
    env.pump_steps(1).await;
    let body = env.assert_acme_run_done(&run_id).await;
    assert_eq!(
        body["result"]["permissions_removed"]["full_access"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_lands_in_the_dlq_and_leaves_its_run_as_it_was() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    let before = env.get(&run_id).await;
    let (discovery_url, _) = &env.steps[0];
    // Drop the real discover message; send a message no step understands.
    env.sqs
        .purge_queue()
        .queue_url(discovery_url)
        .send()
        .await
        .unwrap();
    env.sqs
        .send_message()
        .queue_url(discovery_url)
        .message_body(json!({"v": 1, "run_id": run_id, "kind": "explode"}).to_string())
        .send()
        .await
        .unwrap();
    let max = resources().queues.discovery.max_receive_count as usize;
    let mut receives = 0;
    while receives <= max + 2 {
        env.pump_steps(1).await;
        receives += 1;
        if env.dlq_depths().await[1] == 1 {
            break;
        }
    }
    assert_eq!(
        env.dlq_depths().await,
        vec![0, 1, 0, 0],
        "the poison message is in the discovery DLQ"
    );
    // A message that is not ours fails no run: the run is as intake left it (the stalled-run
    // sweep is what re-drives a run whose step never came).
    let after = env.get(&run_id).await;
    assert_eq!(after["status"], before["status"], "{after}");
    assert_ne!(
        after["status"],
        serde_json::to_value(RunStatus::Failed).unwrap()
    );
    assert!(after["failure"].is_null(), "{after}");
    assert_eq!(
        env.sim.snapshot().direct_grants_of(JOHN).len(),
        8,
        "nothing was removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_rotated_mid_run_is_read_again_without_a_redeploy() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    // The listing runs with the secret as it was (read and cached by the discovery function).
    let (discovery_url, discovery) = &env.steps[0];
    let (event, handles) = env.receive(discovery_url).await.unwrap();
    assert!(event.records[0]
        .body
        .as_deref()
        .unwrap()
        .contains("\"discover\""));
    let response = handle_step_records(discovery, event.clone(), env.deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    env.settle(discovery_url, &event, &handles, &[]).await;
    // Rotation: the tenant takes only the new client secret and refuses every token issued
    // with the old one; Secrets Manager holds the new value.
    env.sm
        .put_secret_value()
        .secret_id(&env.names.secret_id)
        .secret_string(crate::aws_kit::secret_json("rotated-secret-2").to_string())
        .send()
        .await
        .unwrap();
    env.sim.rotate_client_secret("rotated-secret-2");
    // The warm discovery function reads its shard with the cached secret, is refused, reads the
    // secret again and carries on: nothing was redeployed, nothing dead-lettered.
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    assert!(env.sim.snapshot().counters.revoked_token_401 >= 1);
}

/// A company moved to another tenant between intake and the run's first step: the step
/// refuses to act on the tenant the settings now name, fails the run with `tenant_changed`
/// (field `tenant_id`) and calls neither tenant nor PSA.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_refuses_a_company_whose_tenant_changed_since_intake() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    let mut org = env
        .intake
        .store
        .org_settings("acme")
        .await
        .unwrap()
        .unwrap();
    let recorded = org.tenant_id.clone();
    org.tenant_id = "0b0b0b0b-1c1c-4d4d-8e8e-9f9f9f9f9f9f".into();
    env.intake.store.put_org_settings(&org).await.unwrap();
    let calls_before: u64 = env.sim.snapshot().counters.requests.values().sum();

    env.pump_steps(1).await;

    let run = env.get(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["failure"]["code"], "tenant_changed", "{run}");
    assert_eq!(run["failure"]["field"], "tenant_id", "{run}");
    let message = run["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains(&recorded) && message.contains(&org.tenant_id),
        "{message}"
    );
    let snapshot = env.sim.snapshot();
    assert_eq!(
        snapshot.counters.requests.values().sum::<u64>(),
        calls_before,
        "no call to any tenant or PSA: {:?}",
        snapshot.counters.requests
    );
    assert_eq!(snapshot.direct_grants_of(JOHN).len(), 8, "nothing removed");
    assert_eq!(
        env.dlq_depths().await,
        vec![0, 0, 0, 0],
        "the step was consumed"
    );
}
