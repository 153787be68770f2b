//! A contain run's identity actions on the serverless path: the company's policy from its org
//! settings item (`contain`), the scheduled poll through the discovery function's handler, the
//! run's steps through the functions, against LocalStack, DynamoDB Local and the simulator.

use crate::aws_kit::{Env, JOHN};
use revoke365::lambda::steps::handle_step_event;
use revoke365_testkit::{events_dir, fixture};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn the_org_items_policy_disables_sign_in_and_removes_mail_consents_before_the_grants() {
    let mut tenant = fixture("contain-tenant.json");
    tenant["organization"]["alerts"] = json!({"entra_id_protection": false});
    tenant["organization"]["contain"] = json!({"disable_sign_in": true});
    let env = Env::start(tenant, 10).await;
    let poll: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("scheduled-poll-alerts.json")).unwrap(),
    )
    .unwrap();
    let first = handle_step_event(&env.steps[0].1, poll, env.deadline())
        .await
        .unwrap();
    let runs = first["report"]["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{first:#}");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    let body = env.assert_acme_run_done(&run_id).await;
    let result = &body["result"];

    let state = env.sim.snapshot();
    let john = state.identity.user(JOHN).expect("John's sign-in state");
    assert!(!john.account_enabled, "the org item says disable_sign_in");
    assert_eq!(john.sessions_revoked, 1);
    let kept: Vec<&str> = state
        .identity
        .consents_of(JOHN)
        .iter()
        .map(|c| c.app.as_str())
        .collect();
    assert_eq!(kept, ["Team Polls"]);
    assert_eq!(state.identity.consents_of("jane.doe@acmecorp.com").len(), 1);
    assert!(state
        .identity
        .users
        .iter()
        .filter(|u| u.upn != JOHN)
        .all(|u| u.account_enabled && u.sessions_revoked == 0));

    let actions: Vec<(&str, &str)> = result["contain_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("revoke_sessions", "done"),
            ("disable_sign_in", "done"),
            ("remove_consent", "done"),
            ("remove_consent", "done")
        ]
    );
    assert!(result["access_ends_by"].is_string());
    // Audited in the identity chain: before and outcome of each of the four.
    assert_eq!(
        env.audit_count_of(&run_id, |id| id.starts_with("identity#"))
            .await,
        8
    );
    let mail = &state.sent_mail[0].body;
    assert!(
        mail.contains("Sign-in disabled") || mail.contains("sign-in disabled"),
        "{mail}"
    );
    assert!(mail.contains("Access ends by"), "{mail}");
}
