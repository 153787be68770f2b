//! Undo on the serverless path: `POST /revocations/{id}/restore` through the real handlers,
//! against LocalStack and DynamoDB Local.

use crate::aws_kit::{Env, JOHN};
use revoke365_testkit::fixture;
use serde_json::{json, Value};

async fn finished_run(env: &Env) -> String {
    let (status, accepted) = env
        .http(
            "POST",
            "/revocations",
            Some(json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    run_id
}

async fn restore(env: &Env, run_id: &str, body: Value) -> (i64, Value) {
    env.http(
        "POST",
        &format!("/revocations/{run_id}/restore"),
        Some(body),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_through_the_handlers_puts_back_what_the_run_removed() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let before = env.sim.snapshot();
    let run_id = finished_run(&env).await;

    let (status, accepted) = restore(&env, &run_id, json!({"reason": "rehired"})).await;
    assert_eq!(status, 202, "{accepted}");
    let restore_id = accepted["run_id"].as_str().unwrap().to_string();
    assert_eq!(accepted["status_url"], format!("/revocations/{restore_id}"));
    env.pump_steps(1).await;

    let body = env.get(&restore_id).await;
    assert_eq!(body["kind"], "restore");
    assert_eq!(body["restored_from"], run_id.as_str());
    assert_eq!(body["status"], "completed", "{body}");
    let result = &body["result"];
    assert_eq!(result["kind"], "restore");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["restored"].as_array().unwrap().len(), 8);
    assert_eq!(result["verification"]["all_restored"], true);
    assert_eq!(
        env.sim.snapshot().mailboxes,
        before.mailboxes,
        "the tenant as it was"
    );
    // 8 intents, 8 restore outcomes, 1 verification.
    assert_eq!(env.audit_count(&restore_id).await, 17);
    let state = env.sim.snapshot();
    let notes: usize = state.tickets.iter().map(|t| t.notes.len()).sum();
    assert_eq!(notes, 2, "the restore added its note to the run's ticket");
    assert_eq!(state.sent_mail.len(), 2);
    assert_eq!(env.get(&run_id).await["kind"], "revoke");

    // Twice is harmless: everything is there already.
    let (status, again) = restore(&env, &run_id, json!({})).await;
    assert_eq!(status, 202);
    env.pump_steps(1).await;
    let second = env.get(again["run_id"].as_str().unwrap()).await;
    assert!(
        second["result"]["restored"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["note"] == "already present: nothing was added"),
        "{second}"
    );
    assert_eq!(env.sim.snapshot().mailboxes, before.mailboxes);

    // Refused: a restore of a restore (409), an unknown run (404), a bad option (400).
    let (status, refused) = restore(&env, &restore_id, json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conflict");
    let (status, _) = restore(&env, "no-such-run", json!({})).await;
    assert_eq!(status, 404);
    let (status, bad) = restore(&env, &run_id, json!({"permission_types": ["mail"]})).await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["field"], "permission_types");
    let (status, bad) = restore(&env, &run_id, json!({"include_victim_mailbox": "yes"})).await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["field"], "include_victim_mailbox");
    assert_eq!(
        env.run_count().await,
        3,
        "the refused restores created no run"
    );

    // A mailbox the run removed nothing on fails the restore, naming the field, before
    // anything is put back.
    let (status, typo) = restore(
        &env,
        &run_id,
        json!({"target_mailboxes": ["ceo@acmecorp.co"]}),
    )
    .await;
    assert_eq!(status, 202, "{typo}");
    env.pump_steps(1).await;
    let failed = env.get(typo["run_id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure"]["field"], "mailbox", "{failed}");
    assert!(failed["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("ceo@acmecorp.com"));
    assert!(failed.get("result").is_none_or(Value::is_null), "{failed}");
}
