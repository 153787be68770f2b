//! The whole job on the Acme tenant with each PSA a company can use: HaloPSA, Autotask, and
//! none at all; the note's content is read back from the simulator.

use revoke365::model::{PsaKind, RunStatus};
use revoke365::steps::IntakeError;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";
/// The fixtures' own ticket for Acme.
const ACME_TICKET: &str = "48213";

fn request(extra: Value) -> Value {
    let mut body = json!({"user_email": JOHN, "company_id": "acme",
        "requested_by": "hr.manager@acmecorp.com", "reason": "Leaver"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    body
}

/// What every PSA's note must say about the Acme run.
fn assert_reports_the_run(note: &str, run_id: &str) {
    assert!(
        note.contains("Revoke365 mailbox access removal: SUCCESS"),
        "{note}"
    );
    assert!(note.contains(run_id), "{note}");
    assert!(note.contains("ceo@acmecorp.com"), "{note}");
    assert!(note.contains("8 direct grants removed"), "{note}");
}

#[tokio::test]
async fn a_halo_company_gets_a_new_ticket_and_a_hidden_action_with_the_report() {
    let h = Harness::start(fixture("acme-halo-tenant.json"), fast_http(10)).await;
    assert_eq!(h.org.psa_kind, PsaKind::Halo);
    let report = h.report(request(json!({}))).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let id = report.ticket_id.clone().expect("a ticket");

    let after = h.snapshot();
    let ticket = after.ticket(&id).expect("the new ticket");
    assert_eq!(ticket.company, "Acme Corp");
    assert!(
        ticket.summary.contains(&report.run_id),
        "{}",
        ticket.summary
    );
    let [note] = ticket.notes.as_slice() else {
        panic!("one note: {:?}", ticket.notes)
    };
    assert_eq!(note.outcome_id, Some(7));
    assert_eq!(note.hidden_from_user, Some(true));
    assert!(note.text.starts_with("<p"), "Halo gets HTML: {}", note.text);
    assert_reports_the_run(&note.text, &report.run_id);
    assert_eq!(after.requests("halo POST token"), 1);
    assert_eq!(after.mail_to("secops@msp.example").len(), 1);
}

#[tokio::test]
async fn a_halo_run_naming_its_companys_ticket_notes_it_there() {
    let h = Harness::start(fixture("acme-halo-tenant.json"), fast_http(10)).await;
    let report = h.report(request(json!({"ticket_id": ACME_TICKET}))).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.ticket_id.as_deref(), Some(ACME_TICKET));
    let after = h.snapshot();
    assert_reports_the_run(&after.notes_of(ACME_TICKET)[0].text, &report.run_id);
    assert_eq!(after.requests("halo POST tickets"), 0);
}

#[tokio::test]
async fn an_autotask_company_gets_a_new_ticket_in_its_queue_and_a_titled_note() {
    let h = Harness::start(fixture("acme-autotask-tenant.json"), fast_http(10)).await;
    assert_eq!(h.org.psa_kind, PsaKind::Autotask);
    let report = h.report(request(json!({}))).await;
    assert!(report.success, "{:?}", report.errors);
    let id = report.ticket_id.clone().expect("a ticket");

    let after = h.snapshot();
    let ticket = after.ticket(&id).expect("the new ticket");
    assert_eq!(ticket.company, "Acme Corp");
    let [note] = ticket.notes.as_slice() else {
        panic!("one note: {:?}", ticket.notes)
    };
    assert_eq!(
        note.title.as_deref(),
        Some("Revoke365 mailbox access removal: SUCCESS — all access removed and verified")
    );
    assert_eq!((note.note_type, note.publish), (Some(1), Some(1)));
    assert_reports_the_run(&note.text, &report.run_id);
    // A handful of calls: the shared budget is 10,000 an hour for every integration.
    let calls: u64 = after
        .counters
        .requests
        .iter()
        .filter(|(key, _)| key.starts_with("autotask "))
        .map(|(_, n)| n)
        .sum();
    // The zone, the company check, the ticket, the note.
    assert_eq!(calls, 4, "Autotask calls: {:?}", after.counters.requests);
    assert_eq!(after.requests("autotask GET zoneInformation"), 1);
}

fn without_psa() -> Value {
    let mut tenant = fixture("acme-tenant.json");
    tenant["organization"]["psa_kind"] = json!("none");
    tenant
}

#[tokio::test]
async fn a_company_without_a_psa_gets_its_report_by_email_and_no_ticket() {
    let h = Harness::start(without_psa(), fast_http(10)).await;
    let run = h.run(request(json!({}))).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.failure);
    let report = run.result.unwrap();
    assert!(report.success, "{:?}", report.errors);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.ticket_id, None);
    let why = report.no_ticket.as_deref().expect("the result says why");
    assert!(why.contains("psa_kind = \"none\""), "{why}");

    let after = h.snapshot();
    assert_eq!(after.tickets.len(), 1, "only the fixture's own ticket");
    assert!(after.notes_of(ACME_TICKET).is_empty());
    let psa_calls = after
        .counters
        .requests
        .keys()
        .filter(|k| k.starts_with("cw ") || k.starts_with("halo ") || k.starts_with("autotask "))
        .count();
    assert_eq!(psa_calls, 0, "{:?}", after.counters.requests);
    let mail = after.mail_to("secops@msp.example");
    assert_eq!(mail.len(), 1);
    assert!(mail[0].body.contains("ceo@acmecorp.com"));
    assert!(
        mail[0].body.contains("none: this company has no PSA"),
        "the email says why there is no ticket"
    );
}

#[tokio::test]
async fn a_ticket_id_for_a_company_without_a_psa_is_refused_before_any_run() {
    let h = Harness::start(without_psa(), fast_http(10)).await;
    let refused = h
        .engine
        .run(&request(json!({"ticket_id": ACME_TICKET})), None)
        .await;
    match refused {
        Err(IntakeError::Invalid(e)) => {
            assert_eq!(e.field, "ticket_id");
            assert!(e.to_string().contains("no PSA"), "{e}");
        }
        other => panic!("refused at intake, got {other:?}"),
    }
    assert!(h.snapshot().sent_mail.is_empty(), "nothing ran");
}
