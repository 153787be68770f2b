//! The Autotask client over real HTTP against the simulator: the zone lookup, the three auth
//! headers, tickets, notes, the company check, errors and 429s.

use revoke365::adapters::autotask::AutotaskClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{HttpSettings, RetryPolicy};
use revoke365::error::ErrorKind;
use revoke365::model::AutotaskIds;
use revoke365::ports::{NewTicket, Psa};
use revoke365_sim::{Fixture, SimHandle};
use revoke365_testkit::{autotask_settings, sim_options, AUTOTASK_SECRET, AUTOTASK_USERNAME};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn fixture(sim: Value) -> Fixture {
    let fixture = json!({
        "tenant_id": "contoso-tenant",
        "organization": {"company_id": "contoso", "company_name": "Contoso", "psa_kind": "autotask",
            "psa_company": "Contoso", "m365_permission_ticket_board": "Service Desk",
            "notification_sender": "ops@contoso.com"},
        "users": [{"upn": "john.smith@contoso.com", "display_name": "John Smith"}],
        "psa_tickets": [
            {"id": "48213", "company_id": "contoso", "summary": "Offboard John Smith"},
            {"id": "48299", "company_id": "Globex", "summary": "Globex printer"}
        ],
        "sim": sim
    });
    Fixture::from_json(&fixture.to_string()).expect("fixture")
}

fn core() -> Arc<HttpCore> {
    HttpCore::new(HttpSettings {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..HttpSettings::default()
    })
    .unwrap()
}

async fn start_with(sim: Value, secret: &str) -> (SimHandle, AutotaskClient) {
    let handle = revoke365_sim::start(fixture(sim), sim_options())
        .await
        .expect("simulator starts");
    let settings = autotask_settings(&handle.base_url, secret);
    let ids = AutotaskIds {
        queue_id: Some(8),
        ..AutotaskIds::default()
    };
    let client = AutotaskClient::new(core(), &settings, Some(&ids));
    (handle, client)
}

async fn start() -> (SimHandle, AutotaskClient) {
    start_with(
        json!({"autotask_note_title_required": true}),
        AUTOTASK_SECRET,
    )
    .await
}

fn new_ticket(company: &str) -> NewTicket {
    NewTicket {
        summary: "Revoke365: remove mailbox access of John Smith [run 7c1d]".into(),
        board: "Service Desk".into(),
        company: company.into(),
        initial_description: "Requested by hr@contoso.com".into(),
    }
}

#[tokio::test]
async fn the_zone_is_looked_up_once_and_a_ticket_gets_a_titled_note() {
    let (sim, psa) = start().await;
    let id = psa.create_ticket(&new_ticket("Contoso")).await.unwrap();
    assert_eq!(id, "48300", "the next id after the fixture's tickets");
    let text =
        "Revoke365 mailbox access removal: SUCCESS\n\nFull Access on ceo@contoso.com: removed";
    psa.add_note(&id, text).await.unwrap();

    let snapshot = sim.snapshot();
    assert_eq!(snapshot.requests("autotask GET zoneInformation"), 1);
    let ticket = snapshot.ticket(&id).unwrap();
    assert_eq!(ticket.company, "Contoso");
    let note = &ticket.notes[0];
    assert_eq!(
        note.title.as_deref(),
        Some("Revoke365 mailbox access removal: SUCCESS")
    );
    assert_eq!(note.text, text);
    assert_eq!((note.note_type, note.publish), (Some(1), Some(1)));
}

#[tokio::test]
async fn clients_built_later_on_the_same_core_reuse_the_zone() {
    let handle = revoke365_sim::start(fixture(json!({})), sim_options())
        .await
        .unwrap();
    let core = core();
    let settings = autotask_settings(&handle.base_url, AUTOTASK_SECRET);
    for _ in 0..3 {
        let psa = AutotaskClient::new(core.clone(), &settings, None);
        assert!(psa.find_company("Contoso").await.unwrap().is_some());
    }
    assert_eq!(
        handle.snapshot().requests("autotask GET zoneInformation"),
        1
    );
}

#[tokio::test]
async fn the_run_finds_its_ticket_and_note_by_marker() {
    let (_sim, psa) = start().await;
    let id = psa.create_ticket(&new_ticket("250")).await.unwrap();
    assert_eq!(
        psa.find_ticket("run 7c1d").await.unwrap().as_deref(),
        Some(id.as_str())
    );
    assert_eq!(psa.find_ticket("run 0000").await.unwrap(), None);
    assert!(!psa.has_note(&id, "7c1d-note").await.unwrap());
    psa.add_note(&id, "report of 7c1d-note").await.unwrap();
    assert!(psa.has_note(&id, "7c1d-note").await.unwrap());
}

#[tokio::test]
async fn the_company_check_reads_the_tickets_company_and_finds_companies_by_name_or_id() {
    let (_sim, psa) = start().await;
    let own = psa.ticket_company("48213").await.unwrap().unwrap();
    assert!(own.is("Contoso") && own.is("250"), "{own:?}");
    let other = psa.ticket_company("48299").await.unwrap().unwrap();
    assert!(!other.is("Contoso"), "{other:?}");
    assert_eq!(
        psa.ticket_company("777").await.unwrap(),
        None,
        "{{\"item\": null}} is no ticket"
    );
    assert_eq!(
        psa.find_company("CONTOSO").await.unwrap().unwrap().id,
        "250"
    );
    assert_eq!(
        psa.find_company("250").await.unwrap().unwrap().name,
        "Contoso"
    );
    assert_eq!(psa.find_company("999").await.unwrap(), None);
    assert_eq!(psa.find_company("Initech").await.unwrap(), None);
}

#[tokio::test]
async fn wrong_headers_and_an_unknown_api_user_are_rejections() {
    let (_sim, psa) = start_with(json!({}), "not-the-secret").await;
    let err = psa.find_company("Contoso").await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth { .. }), "{err:?}");

    let handle = revoke365_sim::start(fixture(json!({})), sim_options())
        .await
        .unwrap();
    let mut settings = autotask_settings(&handle.base_url, AUTOTASK_SECRET);
    settings.username = "someone-else@msp.example".into();
    let psa = AutotaskClient::new(core(), &settings, None);
    let err = psa.find_company("Contoso").await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("no Autotask zone"), "{err}");
}

#[tokio::test]
async fn a_rejected_object_is_a_permanent_error_with_autotasks_reasons() {
    let (sim, psa) = start().await;
    let err = psa.create_ticket(&new_ticket("999")).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("companyID"), "{err}");
    assert_eq!(sim.snapshot().requests("autotask POST tickets"), 1);
}

#[tokio::test]
async fn a_429_is_backed_off_and_the_ticket_is_created_once() {
    let faults = json!({"retry_after_secs": 0,
        "faults": [{"endpoint": "autotask POST tickets", "answer": "429", "times": 2}]});
    let (sim, psa) = start_with(faults, AUTOTASK_SECRET).await;
    let id = psa.create_ticket(&new_ticket("250")).await.unwrap();
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.requests("autotask POST tickets"), 3);
    assert_eq!(snapshot.tickets_of("Contoso").len(), 2, "48213 and {id}");
}

#[tokio::test]
async fn the_simulator_refuses_an_untitled_note_when_its_settings_require_a_title() {
    let (sim, _psa) = start().await;
    let http = reqwest::Client::new();
    let zone: Value = http
        .get(format!(
            "{}/atservicesrest/v1.0/zoneInformation?user={AUTOTASK_USERNAME}",
            sim.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}v1.0/Tickets/48213/Notes", zone["url"].as_str().unwrap());
    let answer = http
        .post(&url)
        .header("ApiIntegrationCode", "TEST-INTEGRATION")
        .header("UserName", AUTOTASK_USERNAME)
        .header("Secret", AUTOTASK_SECRET)
        .json(&json!({"description": "report", "noteType": 1, "publish": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0], "Missing Required Field: title");
    let unauthorized = http
        .post(&url)
        .header("UserName", AUTOTASK_USERNAME)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn a_company_found_by_name_in_the_check_is_not_looked_up_again_for_the_ticket() {
    let (sim, psa) = start().await;
    assert!(psa.find_company("Contoso").await.unwrap().is_some());
    psa.create_ticket(&new_ticket("Contoso")).await.unwrap();
    assert_eq!(sim.snapshot().requests("autotask GET companies query"), 1);
}

#[tokio::test]
async fn an_outage_is_an_error_that_may_pass() {
    let (_sim, psa) = start_with(json!({"psa_fail": true}), AUTOTASK_SECRET).await;
    let err = psa.ticket_company("48213").await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Api { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_transient(), "an outage is not a rejected object");
}
