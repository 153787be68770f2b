//! The hard tenant: inherited, Deny, SELF and orphaned-SID entries, group grants, two users
//! with one display name, a lookalike, localized calendars, a mailbox that always fails.

use crate::harness::Harness;
use crate::kit::{fast_http, fixture, grants_of, mailbox};
use revoke365::model::{IndirectAccess, RunStatus};
use serde_json::json;

const JOHN: &str = "john.smith@globexcorp.com";

#[tokio::test]
async fn removes_exactly_the_direct_grants_and_reports_the_rest() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.mailboxes();
    let lookalike_before = grants_of(&before, "john.smith2@globexcorp.com");
    let namesake_before = grants_of(&before, "jsmith.sales@globexcorp.com");

    let run = h.run(json!({"user_email": JOHN, "company_id": "globex", "requested_by": "secops@msp.example"})).await;
    assert_eq!(
        run.status,
        RunStatus::CompletedWithErrors,
        "{:?}",
        run.failure
    );
    let report = run.result.unwrap();
    let v = serde_json::to_value(&report).unwrap();
    let p = &v["permissions_removed"];
    let entries = |key: &str| -> Vec<(String, bool)> {
        p[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["mailbox"].as_str().unwrap().to_string(),
                    e["removed"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        entries("full_access"),
        [
            ("ceo@globexcorp.com".into(), true),
            ("legal@globexcorp.com".into(), false)
        ]
    );
    assert!(
        p["full_access"][1]["error"]
            .as_str()
            .unwrap()
            .contains("denied"),
        "{}",
        p["full_access"][1]
    );
    assert_eq!(entries("send_as"), []);
    assert_eq!(
        entries("send_on_behalf"),
        [("sales@globexcorp.com".into(), true)]
    );
    assert_eq!(
        entries("calendar_delegates"),
        [
            ("ceo@globexcorp.com".into(), true),
            ("cfo@globexcorp.com".into(), true)
        ]
    );
    assert_eq!(p["calendar_delegates"][0]["access_level"], "Editor");
    assert_eq!(p["calendar_delegates"][1]["access_level"], "Reviewer");
    assert_eq!(p["shared_mailboxes"].as_array().unwrap().len(), 1);
    assert_eq!(p["shared_mailboxes"][0]["mailbox"], "info@globexcorp.com");
    assert_eq!(
        p["shared_mailboxes"][0]["permissions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(v["removal_summary"]["total_permissions_removed"], 6);

    let indirect = |mailbox: &str, permission: &str, via: &str| IndirectAccess {
        mailbox: mailbox.into(),
        permission: permission.into(),
        via: via.into(),
    };
    assert_eq!(
        report.indirect_access,
        vec![
            indirect("ceo@globexcorp.com", "FullAccess", "inheritance"),
            indirect("cfo@globexcorp.com", "FullAccess", "group Finance Team"),
            indirect("cfo@globexcorp.com", "SendAs", "group Finance Team"),
        ]
    );
    assert_eq!(v["verification"]["remaining_full_access"], 1);
    assert_eq!(
        v["verification"]["remaining"],
        json!([{"mailbox": "legal@globexcorp.com", "permission": "FullAccess", "shared": false}])
    );
    assert_eq!(v["success"], false);

    // The tenant: only the failing mailbox still holds a direct grant of John's.
    let after = h.mailboxes();
    assert_eq!(
        grants_of(&after, JOHN),
        vec![("legal@globexcorp.com".to_string(), "full_access")]
    );
    // Lookalike and namesake untouched; inherited, Deny, SID and group entries untouched.
    assert_eq!(
        grants_of(&after, "john.smith2@globexcorp.com"),
        lookalike_before
    );
    assert_eq!(
        grants_of(&after, "jsmith.sales@globexcorp.com"),
        namesake_before
    );
    for upn in [
        "ceo@globexcorp.com",
        "cfo@globexcorp.com",
        "hr@globexcorp.com",
    ] {
        let (b, a) = (mailbox(&before, upn), mailbox(&after, upn));
        let untouched = |m: &serde_json::Value| -> Vec<serde_json::Value> {
            m["full_access"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["user"] != JOHN || g["inherited"] == true || g["deny"] == true)
                .cloned()
                .collect()
        };
        assert_eq!(untouched(a), untouched(b), "{upn}");
        let deny_send_as = |m: &serde_json::Value| {
            m["send_as"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["deny"] == true)
                .count()
        };
        assert_eq!(deny_send_as(a), deny_send_as(b), "{upn}");
    }
    // The user's own mailbox is never touched.
    assert_eq!(mailbox(&after, JOHN), mailbox(&before, JOHN));

    // Ticket note and email say what failed and what is indirect.
    let state = h.state();
    let ticket = state["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| Some(t["id"].as_str().unwrap()) == report.ticket_id.as_deref())
        .unwrap();
    let note = ticket["notes"][0]["text"].as_str().unwrap();
    assert!(
        note.contains("ATTENTION")
            && note.contains("legal@globexcorp.com")
            && note.contains("FAILED"),
        "{note}"
    );
    assert!(note.contains("via group Finance Team"), "{note}");
    let mail = &state["sent_mail"][0];
    assert!(mail["subject"].as_str().unwrap().contains("ACTION NEEDED"));
    assert!(mail["body"]
        .as_str()
        .unwrap()
        .contains("legal@globexcorp.com"));
}

#[tokio::test]
async fn unknown_user_or_lookalike_only_fails_before_any_removal() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.state();
    // john.smyth@ does not exist; john.smith@ and john.smith2@ are only lookalikes.
    let run = h
        .run(json!({"user_email": "john.smyth@globexcorp.com", "company_id": "globex"}))
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert!(failure.code.is_bad_input());
    assert_eq!(failure.field.as_deref(), Some("user_email"));
    assert!(
        failure.message.contains("john.smyth@globexcorp.com")
            && failure.message.contains("not found")
    );
    let after = h.state();
    assert_eq!(after["mailboxes"], before["mailboxes"]);
    assert_eq!(after["sent_mail"], json!([]));
    let mutations: u64 = after["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("Remove-") || k.contains("DELETE") || k.contains("Set-Mailbox"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(mutations, 0);
}

#[tokio::test]
async fn target_mailbox_outside_the_tenant_fails_before_any_removal() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.mailboxes();
    let run = h.run(json!({"user_email": JOHN, "company_id": "globex", "target_mailboxes": ["ceo@globexcorp.com", "ceo@othercorp.com"]})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert_eq!(failure.field.as_deref(), Some("target_mailboxes"));
    assert!(failure.message.contains("ceo@othercorp.com"));
    assert_eq!(h.mailboxes(), before);
}
