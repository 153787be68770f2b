//! The ConnectWise client over real HTTP against the simulator.

use revoke365::adapters::connectwise::ConnectWiseClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{ConnectWiseCredentials, HttpSettings, Secret};
use revoke365::error::ErrorKind;
use revoke365::ports::{NewTicket, Psa};
use revoke365_sim::snapshot::TicketSnapshot;
use revoke365_sim::{Fixture, SimHandle, SimOptions};

const PRIVATE_KEY: &str = "cw-private-key-42";

fn fixture(psa_fail: bool) -> Fixture {
    let json = format!(
        r#"{{
  "tenant_id": "contoso-tenant",
  "organization": {{"company_id": "contoso", "company_name": "Contoso", "psa_company": "ContosoLtd",
    "m365_permission_ticket_board": "Service Desk", "notification_sender": "ops@contoso.com"}},
  "users": [{{"upn": "john.smith@contoso.com", "display_name": "John Smith"}}],
  "psa_tickets": [{{"id": "48213", "company_id": "contoso", "summary": "Offboard John Smith", "board": "Service Desk"}}],
  "sim": {{"psa_fail": {psa_fail}}}
}}"#
    );
    Fixture::from_json(&json).expect("fixture")
}

async fn start(psa_fail: bool, private_key: &str) -> (SimHandle, ConnectWiseClient) {
    let options = SimOptions {
        client_secret: None,
        cw_private_key: Some(PRIVATE_KEY.into()),
        ..Default::default()
    };
    let sim = revoke365_sim::start(fixture(psa_fail), options)
        .await
        .expect("simulator starts");
    let creds = ConnectWiseCredentials {
        company: "msp".into(),
        public_key: "public".into(),
        private_key: Secret::new(private_key),
        client_id: "5f1d2a3b-0000-4000-8000-000000000000".into(),
    };
    let psa = ConnectWiseClient::new(
        HttpCore::new(HttpSettings::default()).unwrap(),
        &sim.base_url,
        creds,
    );
    (sim, psa)
}

fn ticket(sim: &SimHandle, id: &str) -> TicketSnapshot {
    sim.snapshot()
        .ticket(id)
        .cloned()
        .unwrap_or_else(|| panic!("ticket {id} in state"))
}

#[tokio::test]
async fn a_ticket_is_created_with_a_bounded_summary_and_gets_an_internal_note() {
    let (sim, psa) = start(false, PRIVATE_KEY).await;
    let summary = format!(
        "Revoke365: remove mailbox access of John Smith — {}",
        "é".repeat(80)
    );
    let new = NewTicket {
        summary,
        board: "Service Desk".into(),
        company: "ContosoLtd".into(),
        initial_description: "Requested by secops".into(),
    };
    let id = psa.create_ticket(&new).await.unwrap();
    assert_eq!(id, "48214", "the next id after the fixture's ticket");
    psa.add_note(&id, "Full Access on ceo@contoso.com: removed")
        .await
        .unwrap();

    let created = ticket(&sim, &id);
    assert_eq!(created.summary.chars().count(), 100);
    assert_eq!(
        created.notes[0].text,
        "Full Access on ceo@contoso.com: removed"
    );
    assert!(created.notes[0].internal_analysis_flag);

    let read_back = psa.get_ticket(&id).await.unwrap();
    assert_eq!(
        (read_back.id.as_str(), read_back.board.as_deref()),
        (id.as_str(), Some("Service Desk"))
    );
    assert_eq!(read_back.company.as_deref(), Some("ContosoLtd"));
    assert_eq!(read_back.summary, created.summary);
}

#[tokio::test]
async fn a_note_goes_on_an_existing_ticket() {
    let (sim, psa) = start(false, PRIVATE_KEY).await;
    psa.add_note("48213", "report").await.unwrap();
    assert_eq!(ticket(&sim, "48213").notes[0].text, "report");
    let err = psa.add_note("99999", "report").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_non_numeric_ticket_id_is_refused_before_any_request() {
    let (sim, psa) = start(false, PRIVATE_KEY).await;
    for bad in ["INC-48213", "48213 ", ""] {
        let err = psa.add_note(bad, "report").await.unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::InvalidInput {
                    field: "ticket_id",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let counters = sim.snapshot().counters;
    let psa_requests: Vec<&String> = counters
        .requests
        .keys()
        .filter(|k| k.starts_with("cw "))
        .collect();
    assert!(psa_requests.is_empty(), "{psa_requests:?}");
}

#[tokio::test]
async fn a_wrong_private_key_is_an_auth_error_without_the_key() {
    let (_sim, psa) = start(false, "not-the-key-77").await;
    let err = psa.add_note("48213", "report").await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Auth { .. }) && err.service == "connectwise",
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-key-77"));
}

#[tokio::test]
async fn a_failing_psa_is_an_api_error() {
    let (_sim, psa) = start(true, PRIVATE_KEY).await;
    let err = psa.add_note("48213", "report").await.unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::Api { status: 500, code: Some(code), .. } if code == "Unexpected"),
        "{err:?}"
    );
}
