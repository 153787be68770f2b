//! The HaloPSA client over real HTTP against the simulator: the token, tickets, actions as
//! notes, the company check, errors and 429s.

use revoke365::adapters::halopsa::HaloClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{HttpSettings, RetryPolicy};
use revoke365::error::ErrorKind;
use revoke365::model::HaloIds;
use revoke365::ports::{NewTicket, Psa};
use revoke365_sim::{Fixture, SimHandle};
use revoke365_testkit::{halo_settings, sim_options, HALO_CLIENT_SECRET};
use serde_json::{json, Value};
use std::time::Duration;

fn fixture(sim: Value) -> Fixture {
    let fixture = json!({
        "tenant_id": "contoso-tenant",
        "organization": {"company_id": "contoso", "company_name": "Contoso", "psa_kind": "halo",
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

fn http() -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..HttpSettings::default()
    }
}

async fn start_with(sim: Value, secret: &str, ids: Option<HaloIds>) -> (SimHandle, HaloClient) {
    let handle = revoke365_sim::start(fixture(sim), sim_options())
        .await
        .expect("simulator starts");
    let mut settings = halo_settings(&handle.base_url, secret);
    settings.ids.outcome_id = Some(7);
    let core = HttpCore::new(http()).unwrap();
    let client = HaloClient::new(core, &settings, ids.as_ref());
    (handle, client)
}

async fn start() -> (SimHandle, HaloClient) {
    start_with(json!({}), HALO_CLIENT_SECRET, None).await
}

fn new_ticket(company: &str) -> NewTicket {
    NewTicket {
        summary: "Revoke365: remove mailbox access of John Smith [run 1f2e]".into(),
        board: "Service Desk".into(),
        company: company.into(),
        initial_description: "Requested by hr@contoso.com\nReason: <leaver>".into(),
    }
}

#[tokio::test]
async fn a_ticket_is_created_for_the_client_named_and_gets_a_hidden_action_with_its_outcome() {
    let (sim, psa) = start().await;
    let id = psa.create_ticket(&new_ticket("Contoso")).await.unwrap();
    assert_eq!(id, "48300", "the next id after the fixture's tickets");
    psa.add_note(
        &id,
        "Full Access on ceo@contoso.com: removed\nSend As: <none>",
    )
    .await
    .unwrap();

    let snapshot = sim.snapshot();
    let ticket = snapshot.ticket(&id).unwrap();
    assert_eq!(ticket.company, "Contoso");
    assert!(ticket
        .initial_description
        .as_deref()
        .unwrap()
        .contains("Reason: &lt;leaver&gt;"));
    let note = &ticket.notes[0];
    assert_eq!(note.outcome_id, Some(7));
    assert_eq!(note.hidden_from_user, Some(true));
    assert!(
        note.text
            .contains("Full Access on ceo@contoso.com: removed<br>Send As: &lt;none&gt;"),
        "{}",
        note.text
    );
    assert_eq!(
        snapshot.requests("halo POST token"),
        1,
        "one token for every call"
    );
    assert_eq!(
        snapshot.requests("halo GET clients"),
        1,
        "the name looked up"
    );
}

#[tokio::test]
async fn a_numeric_client_needs_no_lookup_and_the_run_finds_its_ticket_and_note_by_marker() {
    let (sim, psa) = start().await;
    let id = psa.create_ticket(&new_ticket("250")).await.unwrap();
    assert_eq!(sim.snapshot().requests("halo GET clients"), 0);
    assert_eq!(
        psa.find_ticket("run 1f2e").await.unwrap().as_deref(),
        Some(id.as_str())
    );
    assert_eq!(psa.find_ticket("run 9999").await.unwrap(), None);
    assert!(!psa.has_note(&id, "1f2e-note").await.unwrap());
    psa.add_note(&id, "report of 1f2e-note").await.unwrap();
    assert!(psa.has_note(&id, "1f2e-note").await.unwrap());
}

#[tokio::test]
async fn the_company_check_reads_the_tickets_client_and_finds_clients_by_name_or_id() {
    let (_sim, psa) = start().await;
    let own = psa.ticket_company("48213").await.unwrap().unwrap();
    assert!(own.is("Contoso") && own.is("250"), "{own:?}");
    let other = psa.ticket_company("48299").await.unwrap().unwrap();
    assert!(!other.is("Contoso"), "{other:?}");
    assert_eq!(psa.ticket_company("777").await.unwrap(), None);

    assert_eq!(
        psa.find_company("contoso").await.unwrap().unwrap().id,
        "250"
    );
    assert_eq!(
        psa.find_company("250").await.unwrap().unwrap().name,
        "Contoso"
    );
    assert_eq!(
        psa.find_company("Contos").await.unwrap(),
        None,
        "exact names only"
    );
    assert_eq!(psa.find_company("999").await.unwrap(), None);
    assert!(psa.check_ticket_id("T-1").is_err());
}

#[tokio::test]
async fn an_action_without_an_outcome_is_refused_with_halos_words_and_not_retried() {
    let ids = HaloIds {
        outcome_id: Some(0),
        ..HaloIds::default()
    };
    let (sim, psa) = start_with(json!({}), HALO_CLIENT_SECRET, Some(ids)).await;
    let err = psa.add_note("48213", "report").await.unwrap_err();
    assert!(
        err.to_string()
            .contains(revoke365_sim::halopsa::OUTCOME_REQUIRED),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(sim.snapshot().requests("halo POST actions"), 1);
    assert!(sim.snapshot().notes_of("48213").is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_a_rejection_and_a_revoked_token_is_replaced_once() {
    let (_sim, psa) = start_with(json!({}), "not-the-secret", None).await;
    let err = psa.find_company("Contoso").await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));

    let (sim, psa) = start().await;
    psa.find_company("Contoso").await.unwrap();
    sim.revoke_halo_tokens();
    psa.find_company("Contoso").await.unwrap();
    assert_eq!(sim.snapshot().requests("halo POST token"), 2);
}

#[tokio::test]
async fn a_hosted_instance_gets_its_tenant_on_the_token_request() {
    let handle = revoke365_sim::start(fixture(json!({"halo_tenant": "msp"})), sim_options())
        .await
        .unwrap();
    let core = HttpCore::new(http()).unwrap();
    let mut settings = halo_settings(&handle.base_url, HALO_CLIENT_SECRET);
    let without = HaloClient::new(core.clone(), &settings, None);
    let err = without.find_company("Contoso").await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth { .. }), "{err:?}");
    settings.tenant = Some("msp".into());
    let with = HaloClient::new(core, &settings, None);
    assert!(with.find_company("Contoso").await.unwrap().is_some());
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_note_is_added_once() {
    let faults = json!({"retry_after_secs": 0,
        "faults": [{"endpoint": "halo POST actions", "answer": "429", "times": 2}]});
    let (sim, psa) = start_with(faults, HALO_CLIENT_SECRET, None).await;
    psa.add_note("48213", "report").await.unwrap();
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.requests("halo POST actions"), 3);
    assert_eq!(snapshot.notes_of("48213").len(), 1);
}

#[tokio::test]
async fn the_simulator_answers_one_posted_ticket_with_the_object_and_returnall_with_an_array() {
    let (sim, psa) = start().await;
    // A token, the way the client gets one.
    psa.find_company("Contoso").await.unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/halo/auth/token", sim.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "x"),
            ("client_secret", HALO_CLIENT_SECRET),
            ("scope", "all"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let post = |query: &'static str, body: Value| {
        http.post(format!("{}/halo/api/Tickets{query}", sim.base_url))
            .header("Authorization", &bearer)
            .json(&body)
            .send()
    };
    let item = json!({"summary": "one", "client_id": 250});
    let one: Value = post("", json!([item])).await.unwrap().json().await.unwrap();
    assert!(one.is_object() && one["id"].is_u64(), "{one}");
    let all: Value = post("?returnall=true", json!([item]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all.is_array(), "{all}");
    let object = post("", item).await.unwrap();
    assert_eq!(object.status(), 400, "an object body is refused");
}

#[tokio::test]
async fn a_client_found_by_name_in_the_check_is_not_looked_up_again_for_the_ticket() {
    let (sim, psa) = start().await;
    assert!(psa.find_company("Contoso").await.unwrap().is_some());
    psa.create_ticket(&new_ticket("Contoso")).await.unwrap();
    assert_eq!(sim.snapshot().requests("halo GET clients"), 1);
}

#[tokio::test]
async fn an_outage_is_an_error_that_may_pass() {
    let (_sim, psa) = start_with(json!({"psa_fail": true}), HALO_CLIENT_SECRET, None).await;
    let err = psa.ticket_company("48213").await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Api { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}
