//! Alert intake on the serverless path: the scheduled `poll_alerts` job through the discovery
//! function's handler, and a Sentinel playbook's `POST /alerts/sentinel` through the intake
//! function's, against LocalStack, DynamoDB Local and the tenant simulator.

use crate::aws_kit::{Env, JOHN};
use crate::kit::{events_dir, fixture};
use revoke365::lambda::intake::handle_intake_event;
use revoke365::lambda::steps::handle_step_event;
use revoke365::model::{RunId, RunMode};
use revoke365::ports::RunStore;
use revoke365::steps::POLLER_PRINCIPAL;
use serde_json::{json, Value};

fn event(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events_dir().join(name)).unwrap()).unwrap()
}

/// The alerts tenant, its company polling Defender only (one compromised user: John).
fn defender_tenant() -> Value {
    let mut f = fixture("acme-alerts-tenant.json");
    f["organization"]["alerts"] = json!({"entra_id_protection": false});
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_poll_starts_one_contain_run_and_polling_again_starts_none() {
    let env = Env::start(defender_tenant(), 10).await;
    let poll = || async {
        // The schedule delivers to the discovery function.
        handle_step_event(
            &env.steps[0].1,
            event("scheduled-poll-alerts.json"),
            env.deadline(),
        )
        .await
        .unwrap()
    };
    let first = poll().await;
    assert_eq!(first["job"], "poll_alerts");
    let runs = first["report"]["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{first:#}");
    assert_eq!(runs[0]["user_email"], JOHN);
    assert_eq!(runs[0]["created"], true);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let run = env
        .intake
        .store
        .get_run(&RunId(run_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.request.mode, RunMode::Contain);
    assert!(run.request.victim_mailbox);
    assert_eq!(run.request.alert_source.as_deref(), Some("defender"));
    assert_eq!(run.request.incident_id.as_deref(), Some("4711"));
    assert_eq!(
        run.request.requested_by_principal.as_deref(),
        Some(POLLER_PRINCIPAL)
    );

    let again = poll().await;
    let runs = again["report"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{again:#}");
    assert_eq!(
        (runs[0]["run_id"].as_str(), &runs[0]["created"]),
        (Some(run_id.as_str()), &json!(false))
    );
    assert_eq!(env.run_count().await, 1);

    // A poll that names no company is refused, naming the field.
    let e = handle_step_event(
        &env.steps[0].1,
        json!({"v": 1, "kind": "scheduled", "job": "poll_alerts"}),
        env.deadline(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("company_id"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_payload_through_the_api_route_starts_one_run_and_a_resend_returns_it() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let sample = event("apigw-post-sentinel-alert.json");
    let post = || async {
        let response = handle_intake_event(&env.intake, sample.clone())
            .await
            .unwrap();
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        (response["statusCode"].as_i64().unwrap(), body)
    };
    let (status, first) = post().await;
    assert_eq!(status, 202, "{first}");
    let runs = first["runs"].as_array().unwrap().clone();
    assert_eq!(
        runs.len(),
        1,
        "the Account and Mailbox entities are one user: {first}"
    );
    assert_eq!(runs[0]["created"], true);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status_url"], format!("/revocations/{run_id}"));
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let run = env
        .intake
        .store
        .get_run(&RunId(run_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.request.mode, RunMode::Contain);
    assert_eq!(run.request.alert_source.as_deref(), Some("sentinel"));
    assert_eq!(run.request.incident_id.as_deref(), Some("INC-2026-0107"));
    assert_eq!(
        run.request.requested_by_principal.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/revoke365-sentinel-playbook/logicapp")
    );

    let (status, again) = post().await;
    assert_eq!(status, 202);
    assert_eq!(again["runs"][0]["run_id"], json!(run_id));
    assert_eq!(again["runs"][0]["created"], false);
    assert_eq!(env.run_count().await, 1);

    // A payload without entities is refused, naming the field.
    let mut bad = sample.clone();
    bad["body"] = json!(json!({"company_id": "acme", "incident_id": "9"}).to_string());
    let response = handle_intake_event(&env.intake, bad).await.unwrap();
    assert_eq!(response["statusCode"], 400);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["field"], "entities");
}
