//! The typed state snapshot: same JSON as `GET /_sim/state`, and its helpers.

use reqwest::Method;
use revoke365_sim::Snapshot;
use serde_json::json;

use crate::common::TestSim;

#[tokio::test]
async fn snapshot_is_the_state_json_typed() {
    let sim = TestSim::acme().await;
    let over_http: serde_json::Value = sim
        .http
        .get(sim.url("/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let typed = sim.handle.snapshot();
    assert_eq!(serde_json::to_value(&typed).unwrap(), over_http);
    let parsed: Snapshot = serde_json::from_value(over_http.clone()).unwrap();
    assert_eq!(parsed, typed);
    assert_eq!(sim.state(), over_http);
    assert_eq!(typed.requests("token"), 2);
}

#[tokio::test]
async fn direct_grants_tickets_and_mail() {
    let sim = TestSim::acme().await;
    let snapshot = sim.handle.snapshot();
    let john = snapshot.direct_grants_of("John.Smith@acmecorp.com");
    let expected: Vec<(String, &str)> = [
        ("billing@acmecorp.com", "full_access"),
        ("billing@acmecorp.com", "send_as"),
        ("ceo@acmecorp.com", "full_access"),
        ("ceo@acmecorp.com", "calendar"),
        ("finance@acmecorp.com", "full_access"),
        ("info@acmecorp.com", "send_as"),
        ("sales@acmecorp.com", "send_on_behalf"),
        ("support@acmecorp.com", "full_access"),
    ]
    .into_iter()
    .map(|(a, k)| (a.to_string(), k))
    .collect();
    assert_eq!(john, expected);
    // Inherited entries are not direct grants.
    assert!(!snapshot
        .direct_grants_of("it.admin@acmecorp.com")
        .contains(&("ceo@acmecorp.com".to_string(), "full_access")));
    assert_eq!(
        snapshot.direct_grants_of("Finance Team"),
        [
            ("billing@acmecorp.com".to_string(), "send_as"),
            ("finance@acmecorp.com".to_string(), "full_access")
        ]
    );
    let ceo = snapshot.mailbox("CEO@acmecorp.com").unwrap();
    assert_eq!(ceo.kind, "UserMailbox");
    assert_eq!(ceo.calendar[1].user, "john.smith@acmecorp.com");
    assert_eq!(ceo.calendar[1].access_rights, "Editor");
    assert!(snapshot.recipient("ceo@acmecorp.com").is_none());

    let note = r#"{"text":"done","internalAnalysisFlag":true}"#;
    sim.cw(Method::POST, "/service/tickets/48213/notes", Some(note))
        .await;
    let mail = json!({"message": {"subject": "Report", "body": {"contentType": "HTML", "content": "<p>x</p>"},
        "toRecipients": [{"emailAddress": {"address": "secops@msp.example"}}]}, "saveToSentItems": true});
    let sent = sim
        .graph(
            Method::POST,
            "/v1.0/users/automation@acmecorp.com/sendMail",
            Some(&mail.to_string()),
        )
        .await;
    assert_eq!(sent.status, 202);
    let snapshot = sim.handle.snapshot();
    assert_eq!(
        snapshot.ticket("48213").unwrap().summary,
        "Offboard John Smith"
    );
    assert_eq!(snapshot.tickets_of("acmecorp").len(), 1);
    assert_eq!(snapshot.notes_of("48213")[0].text, "done");
    assert!(snapshot.notes_of("1").is_empty());
    let to_secops = snapshot.mail_to("SecOps@msp.example");
    assert_eq!(to_secops.len(), 1);
    assert_eq!(to_secops[0].from, "automation@acmecorp.com");
    assert_eq!(snapshot.requests("graph POST sendMail"), 1);
}
