//! The serverless path with each PSA: a HaloPSA, an Autotask and a PSA-less company through
//! the real handlers (LocalStack, DynamoDB Local), the credentials from the one secret.

use crate::aws_kit::{Env, JOHN};
use revoke365_testkit::fixture;
use serde_json::{json, Value};

fn request(extra: Value) -> Value {
    let mut body =
        json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    body
}

/// Runs the Acme request on `env` and returns its result, checked done.
async fn run(env: &Env) -> Value {
    let (status, accepted) = env
        .http("POST", "/revocations", Some(request(json!({}))), None)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await["result"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn halo_and_autotask_companies_get_their_ticket_and_note_from_the_functions() {
    for (tenant, api_key) in [
        ("acme-halo-tenant.json", "halo POST actions"),
        ("acme-autotask-tenant.json", "autotask POST notes"),
    ] {
        let env = Env::start(fixture(tenant), 10).await;
        let result = run(&env).await;
        let ticket_id = result["ticket_id"].as_str().expect("a ticket").to_string();
        let state = env.sim.snapshot();
        let note = &state.ticket(&ticket_id).expect("the ticket").notes[0];
        assert!(
            note.text.contains(result["run_id"].as_str().unwrap()),
            "{tenant}"
        );
        assert_eq!(state.requests(api_key), 1, "{tenant}");
        assert_eq!(state.requests("cw POST tickets"), 0, "{tenant}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_company_without_a_psa_is_mailed_and_a_ticket_id_for_it_is_a_400() {
    let mut tenant = fixture("acme-tenant.json");
    tenant["organization"]["psa_kind"] = json!("none");
    let env = Env::start(tenant, 10).await;
    let (status, body) = env
        .http(
            "POST",
            "/revocations",
            Some(request(json!({"ticket_id": "48213"}))),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "ticket_id", "{body}");

    let (status, accepted) = env
        .http("POST", "/revocations", Some(request(json!({}))), None)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    let (_, body) = env
        .http("GET", &format!("/revocations/{run_id}"), None, None)
        .await;
    assert_eq!(body["status"], "completed", "{body}");
    let result = &body["result"];
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["ticket_id"], Value::Null);
    assert!(result["no_ticket"].as_str().unwrap().contains("no PSA"));
    let state = env.sim.snapshot();
    assert!(state.tickets.iter().all(|t| t.notes.is_empty()));
    assert_eq!(state.sent_mail.len(), 1);
}
