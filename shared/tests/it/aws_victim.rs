//! Containment of the victim's own mailbox on the serverless path: the victim step goes
//! through the removal queue and function, its records into DynamoDB, its section into the
//! stored result; a restore through the handlers puts the mailbox back.

use crate::aws_kit::{Env, JOHN};
use revoke365_testkit::fixture;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn aws_a_victim_run_contains_the_mailbox_and_a_restore_puts_it_back() {
    let env = Env::start(fixture("victim-tenant.json"), 10).await;
    let before = env.sim.snapshot();
    let (run_id, body) = env
        .post_to_end(
            "/revocations",
            json!({"user_email": JOHN, "company_id": "acme", "victim_mailbox": true,
                        "requested_by": "soc@acmecorp.com"}),
        )
        .await;
    let result = &body["result"];
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["removal_summary"]["total_permissions_removed"], 8);
    let v = &result["victim_mailbox"];
    assert_eq!(v["forwarding"]["status"], "cleared", "{v}");
    let rules: Vec<(&str, &str)> = v["inbox_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(rules, [("Invoices", "disabled"), ("..", "disabled")]);
    assert_eq!(v["recent_delegates"][0]["age"], "unknown");
    let john = env.sim.snapshot().mailbox(JOHN).unwrap().clone();
    assert!(john.forwarding.is_empty());
    assert_eq!(
        john.inbox_rules.iter().filter(|r| r.enabled).count(),
        1,
        "only the harmless rule stays enabled"
    );
    // 8 before-states, 8 outcomes, 1 verification, and the victim chain: the survey, the
    // forwarding and two rules.
    assert_eq!(env.audit_count(&run_id).await, 21);

    let (status, again) = env
        .http(
            "POST",
            &format!("/revocations/{run_id}/restore"),
            Some(json!({"reason": "false positive", "include_victim_mailbox": true})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{again}");
    let restore_id = again["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    let restored = env.get(&restore_id).await;
    assert_eq!(restored["result"]["success"], true, "{restored}");
    assert_eq!(
        restored["result"]["victim_mailbox"]["forwarding"]["status"],
        "restored"
    );
    assert_eq!(env.sim.snapshot().mailboxes, before.mailboxes);
}
