use reqwest::Method;
use serde_json::json;

use crate::common::{fixture, TestSim, ACME};

#[tokio::test]
async fn tickets_and_notes() {
    let sim = TestSim::acme().await;
    let create = r#"{"summary":"Mailbox access removed: John Smith","board":{"name":"Service Desk"},"company":{"identifier":"AcmeCorp"},"initialDescription":"Revoke365 run"}"#;
    let ticket = sim.cw(Method::POST, "/service/tickets", Some(create)).await;
    assert_eq!(ticket.status, 201, "{}", ticket.body);
    assert_eq!(ticket.body["id"], 48214);
    assert_eq!(ticket.body["board"]["name"], "Service Desk");
    assert_eq!(ticket.body["company"]["identifier"], "AcmeCorp");
    assert_eq!(ticket.body["status"]["name"], "New");

    let note = r#"{"text":"Removed 8 grants.","detailDescriptionFlag":false,"internalAnalysisFlag":true,"resolutionFlag":false}"#;
    let created = sim
        .cw(Method::POST, "/service/tickets/48213/notes", Some(note))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["ticketId"], 48213);
    assert_eq!(created.body["internalAnalysisFlag"], true);
    assert!(created.body["dateCreated"].as_str().unwrap().ends_with('Z'));

    let no_flag = r#"{"text":"x","detailDescriptionFlag":false,"internalAnalysisFlag":false,"resolutionFlag":false}"#;
    let rejected = sim
        .cw(Method::POST, "/service/tickets/48213/notes", Some(no_flag))
        .await;
    assert_eq!(rejected.status, 400);
    assert_eq!(rejected.body["code"], "InvalidObject");
    assert_eq!(
        sim.cw(Method::POST, "/service/tickets/99999/notes", Some(note))
            .await
            .status,
        404
    );
    assert_eq!(
        sim.cw(Method::POST, "/service/tickets/OFF-1/notes", Some(note))
            .await
            .status,
        400
    );

    let fetched = sim.cw(Method::GET, "/service/tickets/48213", None).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["summary"], "Offboard John Smith");
    let notes = sim
        .cw(Method::GET, "/service/tickets/48213/notes", None)
        .await;
    assert_eq!(notes.body.as_array().unwrap().len(), 1);
    let missing = sim.cw(Method::GET, "/service/tickets/1", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({"code": "NotFound", "message": "Ticket with id 1 not found"})
    );

    let state = sim.state();
    let tickets = state["tickets"].as_array().unwrap();
    assert_eq!(tickets[0]["id"], "48213");
    assert_eq!(tickets[0]["notes"][0]["text"], "Removed 8 grants.");
    assert_eq!(tickets[1]["id"], "48214");
    assert_eq!(tickets[1]["company"], "AcmeCorp");
    assert_eq!(state["requests"]["cw POST notes"], 4);
    assert_eq!(state["requests"]["cw POST tickets"], 1);
    assert_eq!(state["requests"]["cw GET ticket"], 2);
}

#[tokio::test]
async fn ticket_validation() {
    let sim = TestSim::acme().await;
    let long = "x".repeat(101);
    let cases = [
        (
            format!(
                r#"{{"summary":"{long}","board":{{"name":"Service Desk"}},"company":{{"identifier":"AcmeCorp"}}}}"#
            ),
            "summary",
        ),
        (
            r#"{"board":{"name":"Service Desk"},"company":{"identifier":"AcmeCorp"}}"#.to_string(),
            "summary",
        ),
        (
            r#"{"summary":"s","board":{"name":"Nope"},"company":{"identifier":"AcmeCorp"}}"#
                .to_string(),
            "board",
        ),
        (
            r#"{"summary":"s","board":{"name":"Service Desk"},"company":{"identifier":"Initech"}}"#
                .to_string(),
            "company",
        ),
    ];
    for (body, field) in cases {
        let answer = sim.cw(Method::POST, "/service/tickets", Some(&body)).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.body["code"], "InvalidObject");
        assert_eq!(answer.body["errors"][0]["field"], field);
    }
}

#[tokio::test]
async fn credentials_are_checked() {
    let options = revoke365_sim::SimOptions {
        client_secret: None,
        cw_private_key: Some("priv".into()),
        ..Default::default()
    };
    let sim = TestSim::start_with(fixture(ACME), options).await;
    let url = sim.url("/v4_6_release/apis/3.0/service/tickets/48213");
    let client_id = "5f0c1c9e-3b0b-4a51-9a7c-111111111111";
    let attempts = [
        (None, Some(client_id)),
        (Some("Basic QWNtZU1TUCtwdWI6cHJpdg=="), None), // no clientId
        (Some("Basic QWNtZU1TUHB1Yjpwcml2"), Some(client_id)), // "AcmeMSPpub:priv": no '+'
        (Some("Basic QWNtZU1TUCtwdWI6d3Jvbmc="), Some(client_id)), // wrong private key
        (Some("Bearer abc"), Some(client_id)),
    ];
    for (authorization, client) in attempts {
        let mut request = sim.http.get(&url);
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(client) = client {
            request = request.header("clientId", client);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?} {client:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "Unauthorized");
    }
    assert_eq!(
        sim.cw(Method::GET, "/service/tickets/48213", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn psa_failure_mode() {
    let mut tenant = fixture(ACME);
    tenant.sim.psa_fail = true;
    let sim = TestSim::start(tenant).await;
    let answer = sim.cw(Method::GET, "/service/tickets/48213", None).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body["code"], "Unexpected");
}
