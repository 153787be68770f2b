//! HaloPSA and Autotask as their APIs answer: the shapes and refusals the clients must handle.

use reqwest::Method;
use serde_json::json;

use crate::common::{fixture, TestSim, ACME};

#[tokio::test]
async fn halo_takes_arrays_answers_one_item_with_the_object_and_wants_an_outcome() {
    let sim = TestSim::acme().await;
    let ticket = json!([{"summary": "Offboard", "client_id": 250, "details_html": "<p>x</p>"}]);
    let created = sim
        .halo(Method::POST, "/Tickets", Some(&ticket.to_string()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], 48214);
    assert_eq!(created.body["client_name"], "AcmeCorp");

    let unknown_client = json!([{"summary": "x", "client_id": 9}]).to_string();
    let refused = sim
        .halo(Method::POST, "/Tickets", Some(&unknown_client))
        .await;
    assert_eq!(refused.status, 400);

    let no_outcome = json!([{"ticket_id": 48213, "note_html": "report"}]).to_string();
    let refused = sim.halo(Method::POST, "/Actions", Some(&no_outcome)).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!(revoke365_sim::halopsa::OUTCOME_REQUIRED)
    );
    let action = json!([{"ticket_id": 48213, "outcome_id": 7, "note_html": "report", "hiddenfromuser": true}]);
    let added = sim
        .halo(Method::POST, "/Actions", Some(&action.to_string()))
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let listed = sim
        .halo(Method::GET, "/Actions?ticket_id=48213", None)
        .await;
    assert_eq!(listed.body["record_count"], 1);
    assert_eq!(listed.body["actions"][0]["outcome_id"], 7);
    assert_eq!(listed.body["actions"][0]["hiddenfromuser"], true);

    let missing = sim.halo(Method::GET, "/Tickets/999", None).await;
    assert_eq!(missing.status, 404);
    let clients = sim.halo(Method::GET, "/Client?search=acme", None).await;
    assert_eq!(clients.body["clients"][0]["id"], 250);
}

#[tokio::test]
async fn halo_refuses_a_request_without_a_token_it_issued() {
    let sim = TestSim::acme().await;
    let answer = sim
        .http
        .get(sim.url("/halo/api/Tickets/48213"))
        .header("Authorization", "Bearer made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

#[tokio::test]
async fn autotask_answers_a_missing_item_with_null_and_a_rejected_object_with_500() {
    let sim = TestSim::acme().await;
    let zone = sim
        .http
        .get(sim.url("/atservicesrest/v1.0/zoneInformation?user=api@msp.example"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        zone["url"],
        format!("{}/ww5/atservicesrest/", sim.handle.base_url)
    );

    let missing = sim.autotask(Method::GET, "/Tickets/999", None).await;
    assert_eq!(
        (missing.status, &missing.body),
        (200, &json!({"item": null}))
    );
    let own = sim.autotask(Method::GET, "/Tickets/48213", None).await;
    assert_eq!(own.body["item"]["companyID"], 250);

    let untitled = json!({"companyID": 250, "status": 1, "priority": 2}).to_string();
    let refused = sim
        .autotask(Method::POST, "/Tickets", Some(&untitled))
        .await;
    assert_eq!(refused.status, 500);
    assert_eq!(refused.body["errors"][0], "Missing Required Field: title");
    let ticket =
        json!({"companyID": 250, "title": "Offboard", "status": 1, "priority": 2}).to_string();
    let created = sim.autotask(Method::POST, "/Tickets", Some(&ticket)).await;
    assert_eq!(created.body, json!({"itemId": 48214}));

    let search =
        urlencoding::encode(r#"{"filter":[{"op":"eq","field":"companyName","value":"acmecorp"}]}"#);
    let found = sim
        .autotask(
            Method::GET,
            &format!("/Companies/query?search={search}"),
            None,
        )
        .await;
    assert_eq!(found.body["items"][0]["id"], 250);
    assert_eq!(found.body["pageDetails"]["count"], 1);
}

#[tokio::test]
async fn a_scripted_429_refuses_a_psa_call_with_retry_after() {
    let mut fx = fixture(ACME);
    fx.sim.faults = serde_json::from_value(json!([
        {"endpoint": "autotask POST notes", "answer": "429"}
    ]))
    .unwrap();
    let sim = TestSim::start(fx).await;
    let note = json!({"title": "t", "description": "d", "noteType": 1, "publish": 1}).to_string();
    let throttled = sim
        .autotask(Method::POST, "/Tickets/48213/Notes", Some(&note))
        .await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    let added = sim
        .autotask(Method::POST, "/Tickets/48213/Notes", Some(&note))
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(sim.handle.snapshot().notes_of("48213").len(), 1);
}
