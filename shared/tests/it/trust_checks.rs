//! Checks before anything is removed (the ticket is this company's, the sender has a mailbox,
//! the recipients are addresses, the credentials work and carry their roles), and failures
//! that are never silent: a run that fails after intake still notes its ticket and mails.

use revoke365::model::{FailureCode, Run, RunStatus};
use revoke365::ports::{Connector, MailboxState};
use revoke365_sim::Snapshot;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";
/// A ticket of another customer in the same PSA.
const GLOBEX_TICKET: &str = "7001";
/// Acme's own ticket in the fixture.
const ACME_TICKET: &str = "48213";

/// The Acme tenant, whose PSA also holds a ticket of another company.
fn acme() -> Value {
    let mut fx = fixture("acme-tenant.json");
    fx["psa_tickets"].as_array_mut().unwrap().push(
        json!({"id": GLOBEX_TICKET, "company_id": "GlobexCorp", "summary": "Globex printer"}),
    );
    fx
}

/// Sets `organization.<key>` in a fixture.
fn with_org(mut fx: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        fx["organization"][k] = v.clone();
    }
    fx
}

fn request(extra: Value) -> Value {
    let mut body =
        json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Runs `body` on a tenant made from `fx` and returns the run, the tenant before and after.
async fn run_on(fx: Value, body: Value) -> (Run, Snapshot, Snapshot) {
    let h = Harness::start(fx, fast_http(10)).await;
    let before = h.snapshot();
    let run = h.run(body).await;
    (run, before, h.snapshot())
}

/// The run failed with `code` naming `field`, and nothing in the tenant changed.
fn refused(run: &Run, code: FailureCode, field: &str, before: &Snapshot, after: &Snapshot) {
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.result);
    let failure = run.failure.as_ref().expect("a failure");
    assert_eq!(failure.code, code, "{failure:?}");
    assert_eq!(failure.field.as_deref(), Some(field), "{failure:?}");
    assert!(run.result.is_none(), "no report: nothing was done");
    assert_eq!(
        after.direct_grants_of(JOHN),
        before.direct_grants_of(JOHN),
        "nothing was removed"
    );
    assert!(!after.direct_grants_of(JOHN).is_empty());
    assert_eq!(after.mailboxes, before.mailboxes, "no mailbox changed");
}

/// The failure note of `run`: on a ticket of Acme's, saying what failed and the run id.
fn failure_note_on_acme_ticket(after: &Snapshot, run: &Run) -> String {
    let run_id = run.run_id.to_string();
    let with_note: Vec<_> = after
        .tickets
        .iter()
        .filter(|t| t.notes.iter().any(|n| n.text.contains(&run_id)))
        .collect();
    assert_eq!(with_note.len(), 1, "{:#?}", after.tickets);
    let ticket = with_note[0];
    assert_eq!(ticket.company, "AcmeCorp", "the note is on Acme's ticket");
    let note = &ticket.notes[0].text;
    assert!(note.contains("FAILED"), "{note}");
    assert!(note.contains("Nothing had been removed yet"), "{note}");
    ticket.id.clone()
}

/// The one failure email to the org's recipients, naming the run.
fn failure_mail(after: &Snapshot, run: &Run) {
    let mails = after.mail_to("secops@msp.example");
    assert_eq!(mails.len(), 1, "{:#?}", after.sent_mail);
    assert!(mails[0].subject.contains("FAILED"), "{}", mails[0].subject);
    assert!(mails[0].body.contains(&run.run_id.to_string()));
}

// ---------------------------------------------------------------------------------------------
// The clients' new reads, on the wire

#[tokio::test]
async fn the_clients_read_a_tickets_company_the_company_the_roles_and_the_mailbox() {
    let fx = with_sim(
        acme(),
        json!({"missing_roles": ["Calendars.ReadWrite"], "rest_disabled_mailboxes": ["finance@acmecorp.com"]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let conns = h.connector.connect(&h.org).await.unwrap();
    let psa = conns.notify().psa;
    let ours = psa.ticket_company(ACME_TICKET).await.unwrap().unwrap();
    assert_eq!(
        (ours.id.as_str(), ours.identifier.as_str()),
        ("250", "AcmeCorp")
    );
    assert!(ours.is("acmecorp") && ours.is("250") && !ours.is("Acme"));
    let theirs = psa.ticket_company(GLOBEX_TICKET).await.unwrap().unwrap();
    assert_eq!(theirs.identifier, "GlobexCorp");
    assert!(!theirs.is(&h.org.psa_company));
    assert_eq!(psa.ticket_company("99999").await.unwrap(), None);
    assert_eq!(
        psa.find_company("ACMECORP").await.unwrap().map(|c| c.name),
        Some("Acme Corp".to_string())
    );
    assert_eq!(
        psa.find_company("250").await.unwrap().map(|c| c.identifier),
        Some("AcmeCorp".to_string())
    );
    assert_eq!(psa.find_company("Initech").await.unwrap(), None);

    let directory = conns.tenant().directory;
    let roles = directory.app_roles().await.unwrap();
    let graph = roles.graph.unwrap();
    assert!(graph.iter().any(|r| r == "User.Read.All"), "{graph:?}");
    assert!(
        !graph.iter().any(|r| r == "Calendars.ReadWrite"),
        "{graph:?}"
    );
    assert_eq!(roles.exchange.unwrap(), ["Exchange.ManageAsApp"]);
    assert_eq!(
        directory
            .mailbox_state("support@acmecorp.com")
            .await
            .unwrap(),
        MailboxState::Usable {
            purpose: Some("shared".into())
        }
    );
    match directory
        .mailbox_state("finance@acmecorp.com")
        .await
        .unwrap()
    {
        MailboxState::NotUsable { reason } => {
            assert!(
                reason.starts_with("MailboxNotEnabledForRESTAPI"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The ticket

#[tokio::test]
async fn a_ticket_of_another_company_is_refused_before_any_removal_and_never_written_to() {
    let (run, before, after) = run_on(acme(), request(json!({"ticket_id": GLOBEX_TICKET}))).await;
    refused(
        &run,
        FailureCode::TicketNotForCompany,
        "ticket_id",
        &before,
        &after,
    );
    let message = &run.failure.as_ref().unwrap().message;
    assert!(message.contains("another company"), "{message}");
    assert!(
        !message.contains("Globex"),
        "another customer is never named: {message}"
    );
    assert!(
        after.notes_of(GLOBEX_TICKET).is_empty(),
        "no note on the other company's ticket"
    );
    // The failure note goes to a new ticket on Acme's board instead, and the email goes out.
    let ticket = failure_note_on_acme_ticket(&after, &run);
    assert_ne!(ticket, GLOBEX_TICKET);
    assert_ne!(ticket, ACME_TICKET);
    assert_eq!(after.ticket(&ticket).unwrap().board, "Service Desk");
    failure_mail(&after, &run);
    assert!(run.failure.unwrap().notification_errors.is_empty());
}

#[tokio::test]
async fn a_ticket_that_does_not_exist_is_refused() {
    let (run, before, after) = run_on(acme(), request(json!({"ticket_id": "99999"}))).await;
    refused(
        &run,
        FailureCode::TicketNotFound,
        "ticket_id",
        &before,
        &after,
    );
    failure_note_on_acme_ticket(&after, &run);
    failure_mail(&after, &run);
}

#[tokio::test]
async fn the_company_identifier_is_compared_in_any_case() {
    let fx = with_org(acme(), json!({"psa_company": "acmecorp"}));
    let h = Harness::start(fx, fast_http(10)).await;
    let report = h.report(request(json!({"ticket_id": ACME_TICKET}))).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.ticket_id.as_deref(), Some(ACME_TICKET));
    assert_eq!(h.snapshot().direct_grants_of(JOHN), vec![]);
    assert_eq!(h.snapshot().notes_of(ACME_TICKET).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The sender and the recipients

#[tokio::test]
async fn a_sender_without_a_mailbox_is_refused_and_the_unsent_email_is_on_record() {
    let fx = with_sim(
        acme(),
        json!({"rest_disabled_mailboxes": ["automation@acmecorp.com"]}),
    );
    let (run, before, after) = run_on(fx, request(json!({"ticket_id": ACME_TICKET}))).await;
    refused(
        &run,
        FailureCode::SenderInvalid,
        "notification_sender",
        &before,
        &after,
    );
    let failure = run.failure.as_ref().unwrap();
    assert!(
        failure.message.contains("MailboxNotEnabledForRESTAPI"),
        "{}",
        failure.message
    );
    // The ticket is told; the email cannot go, and the run's record says so.
    assert_eq!(failure_note_on_acme_ticket(&after, &run), ACME_TICKET);
    assert!(after.sent_mail.is_empty());
    assert_eq!(failure.notification_errors.len(), 1, "{failure:?}");
    assert!(
        failure.notification_errors[0].contains("email"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_sender_that_is_not_a_user_is_refused() {
    let fx = with_org(acme(), json!({"notification_sender": "robot@acmecorp.com"}));
    let (run, before, after) = run_on(fx, request(json!({}))).await;
    refused(
        &run,
        FailureCode::SenderInvalid,
        "notification_sender",
        &before,
        &after,
    );
    assert!(run
        .failure
        .unwrap()
        .message
        .contains("'robot@acmecorp.com' is not a user"));
}

#[tokio::test]
async fn a_recipient_that_is_not_an_address_is_refused() {
    let fx = with_org(
        acme(),
        json!({"m365_permission_notification_recipients": ["secops@msp.example", "helpdesk"]}),
    );
    let (run, before, after) = run_on(fx, request(json!({}))).await;
    refused(
        &run,
        FailureCode::RecipientInvalid,
        "m365_permission_notification_recipients",
        &before,
        &after,
    );
    assert!(run.failure.unwrap().message.contains("'helpdesk'"));
}

// ---------------------------------------------------------------------------------------------
// Credentials and roles

#[tokio::test]
async fn rejected_microsoft_365_credentials_are_refused() {
    let fx = with_sim(acme(), json!({"m365_credentials_rejected": true}));
    let (run, before, after) = run_on(fx, request(json!({"ticket_id": ACME_TICKET}))).await;
    refused(
        &run,
        FailureCode::CredentialsInvalid,
        "m365_credentials",
        &before,
        &after,
    );
    // The PSA still hears of it; the email cannot go without a token.
    failure_note_on_acme_ticket(&after, &run);
    assert!(!run.failure.unwrap().notification_errors.is_empty());
}

#[tokio::test]
async fn a_token_lacking_a_role_is_refused_naming_the_role() {
    let fx = with_sim(acme(), json!({"missing_roles": ["GroupMember.Read.All"]}));
    let (run, before, after) = run_on(fx, request(json!({}))).await;
    refused(
        &run,
        FailureCode::CredentialsInvalid,
        "m365_app_roles",
        &before,
        &after,
    );
    let message = run.failure.as_ref().unwrap().message.clone();
    assert!(message.contains("GroupMember.Read.All"), "{message}");
    assert!(!message.contains("User.Read.All"), "{message}");
    failure_mail(&after, &run);
}

#[tokio::test]
async fn mail_send_missing_from_the_token_does_not_stop_the_removal() {
    // Mail.Send may be granted on the sender's mailbox alone (RBAC for Applications), which
    // the token does not show: the run goes on, and an email that then fails is reported.
    let fx = with_sim(acme(), json!({"missing_roles": ["Mail.Send"]}));
    let h = Harness::start(fx, fast_http(10)).await;
    let report = h.report(request(json!({"ticket_id": ACME_TICKET}))).await;
    assert_eq!(h.snapshot().direct_grants_of(JOHN), vec![]);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert!(!report.success);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.to_lowercase().contains("email")),
        "{:?}",
        report.errors
    );
    assert!(h.snapshot().sent_mail.is_empty());
}

#[tokio::test]
async fn an_app_without_an_exchange_role_is_refused() {
    let fx = with_sim(acme(), json!({"forbidden_cmdlets": ["Get-Recipient"]}));
    let (run, before, after) = run_on(fx, request(json!({}))).await;
    refused(
        &run,
        FailureCode::CredentialsInvalid,
        "exchange_role",
        &before,
        &after,
    );
}

#[tokio::test]
async fn rejected_psa_credentials_are_refused_and_the_email_still_goes() {
    let fx = with_sim(acme(), json!({"psa_credentials_rejected": true}));
    let (run, before, after) = run_on(fx, request(json!({"ticket_id": ACME_TICKET}))).await;
    refused(
        &run,
        FailureCode::CredentialsInvalid,
        "psa_credentials",
        &before,
        &after,
    );
    failure_mail(&after, &run);
    let failure = run.failure.unwrap();
    assert!(after.notes_of(ACME_TICKET).is_empty());
    assert_eq!(failure.notification_errors.len(), 1, "{failure:?}");
}

// ---------------------------------------------------------------------------------------------
// Contain runs (security alerts)

#[tokio::test]
async fn a_contain_run_removes_despite_psa_and_mail_problems_and_records_them() {
    let fx = with_sim(
        acme(),
        json!({"rest_disabled_mailboxes": ["automation@acmecorp.com"]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let run = h
        .run(request(
            json!({"ticket_id": GLOBEX_TICKET, "incident_id": "INC-7", "severity": "high"}),
        ))
        .await;
    let report = run.result.clone().expect("a contain run goes on");
    let after = h.snapshot();
    assert_eq!(after.direct_grants_of(JOHN), vec![], "every grant removed");
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert!(!report.success, "the problems make it unsuccessful");
    let errors = report.errors.join("\n");
    assert!(errors.contains("ticket_id"), "{errors}");
    assert!(errors.contains("notification_sender"), "{errors}");
    // Never on the other company's ticket: a new one of Acme's holds the report.
    assert!(after.notes_of(GLOBEX_TICKET).is_empty());
    let ticket = report.ticket_id.clone().unwrap();
    assert_ne!(ticket, GLOBEX_TICKET);
    assert_eq!(after.ticket(&ticket).unwrap().company, "AcmeCorp");
    assert!(after.notes_of(&ticket)[0]
        .text
        .contains(&run.run_id.to_string()));
}

#[tokio::test]
async fn a_contain_run_still_stops_when_nothing_could_be_removed() {
    let fx = with_sim(acme(), json!({"missing_roles": ["Exchange.ManageAsApp"]}));
    let (run, before, after) = run_on(fx, request(json!({"incident_id": "INC-8"}))).await;
    refused(
        &run,
        FailureCode::CredentialsInvalid,
        "m365_app_roles",
        &before,
        &after,
    );
}

// ---------------------------------------------------------------------------------------------
// No silent failures

#[tokio::test]
async fn a_run_for_an_unknown_user_notes_its_ticket_and_mails() {
    let h = Harness::start(acme(), fast_http(10)).await;
    let run = h
        .run(json!({"user_email": "nobody@acmecorp.com", "company_id": "acme", "ticket_id": ACME_TICKET}))
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.clone().unwrap();
    assert_eq!(failure.code, FailureCode::UserNotFound);
    let after = h.snapshot();
    assert_eq!(failure_note_on_acme_ticket(&after, &run), ACME_TICKET);
    assert!(after.notes_of(ACME_TICKET)[0]
        .text
        .contains("nobody@acmecorp.com"));
    failure_mail(&after, &run);
    assert!(failure.notification_errors.is_empty());
}

#[tokio::test]
async fn an_alert_for_an_unknown_user_without_a_ticket_gets_a_new_ticket_and_mail() {
    let h = Harness::start(acme(), fast_http(10)).await;
    let run = h
        .run(json!({"user_email": "nobody@acmecorp.com", "company_id": "acme", "incident_id": "INC-9"}))
        .await;
    assert_eq!(
        run.failure.as_ref().unwrap().code,
        FailureCode::UserNotFound
    );
    let after = h.snapshot();
    let ticket = failure_note_on_acme_ticket(&after, &run);
    assert_ne!(ticket, ACME_TICKET, "a new ticket");
    failure_mail(&after, &run);
}

#[tokio::test]
async fn a_failure_the_psa_cannot_take_is_on_the_runs_record() {
    // The PSA answers 500 to everything: the ticket cannot be checked (which does not stop
    // the run), and the failure note cannot be written.
    let fx = with_sim(acme(), json!({"psa_fail": true}));
    let h = Harness::start(fx, fast_http(10)).await;
    let run = h
        .run(json!({"user_email": "nobody@acmecorp.com", "company_id": "acme", "ticket_id": ACME_TICKET}))
        .await;
    let failure = run.failure.clone().unwrap();
    assert_eq!(failure.code, FailureCode::UserNotFound);
    assert_eq!(failure.notification_errors.len(), 1, "{failure:?}");
    assert!(
        failure.notification_errors[0].contains(ACME_TICKET),
        "{failure:?}"
    );
    failure_mail(&h.snapshot(), &run);
    // What the store keeps is what GET /revocations/{id} shows.
    let stored = serde_json::to_value(&run).unwrap();
    assert_eq!(
        stored["failure"]["notification_errors"],
        json!(failure.notification_errors)
    );
}

/// The API waits a few seconds at most for the tenant to confirm the user: a slower tenant gets
/// the request accepted unchecked (its run checks again and tells the company's board), a
/// quick one refuses the typo before any run.
#[tokio::test]
async fn the_check_before_intake_does_not_wait_for_a_slow_tenant() {
    use revoke365::steps::{check_before_intake, IntakeError};
    use std::time::{Duration, Instant};
    let h = Harness::start(with_sim(acme(), json!({"latency_ms": 1500})), fast_http(10)).await;
    let typo = request(json!({"user_email": "john.smyth@acmecorp.com"}));
    let started = Instant::now();
    let hurried = check_before_intake(
        h.store.as_ref(),
        h.connector.as_ref(),
        None,
        &typo,
        Some(Duration::from_millis(300)),
    )
    .await;
    assert!(hurried.is_ok(), "{hurried:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let patient =
        check_before_intake(h.store.as_ref(), h.connector.as_ref(), None, &typo, None).await;
    match patient {
        Err(IntakeError::Rejected(refused)) => {
            assert_eq!(refused.code, FailureCode::UserNotFound);
            assert_eq!(refused.field.as_deref(), Some("user_email"));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The serverless path: intake answers 202 before any call; discovery refuses.

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::aws_kit::Env;
    use revoke365::lambda::intake::handle_intake_event;

    async fn post(env: &Env, body: Value) -> String {
        let (status, accepted) = env.http("POST", "/revocations", Some(body), None).await;
        assert_eq!(status, 202, "{accepted}");
        accepted["run_id"].as_str().unwrap().to_string()
    }

    /// A run id in a path names keys and files: anything that is not one is a 400 naming
    /// `run_id` on every route that takes one, before the store is asked.
    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_a_path_whose_run_id_is_not_one_is_refused() {
        let env = Env::start(acme(), 10).await;
        let long = "a".repeat(65);
        for (method, path) in [
            ("GET", "/revocations/..%2F..%2Fetc"),
            ("GET", "/revocations/a.b/audit"),
            ("POST", "/revocations/x%20y/restore"),
            ("POST", "/revocations/x;y/cancel"),
            ("GET", &format!("/revocations/{long}")),
        ] {
            let (status, body) = env.http(method, path, None, None).await;
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert_eq!(body["error"]["field"], "run_id", "{body}");
        }
    }

    /// The API's caller is there to be told: a mistyped user, a ticket that does not exist or
    /// is another company's is a 4xx naming the field, and no run, ticket, note or email.
    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_the_api_refuses_a_mistyped_user_or_a_wrong_ticket_before_any_run() {
        let env = Env::start(acme(), 10).await;
        let before = env.sim.snapshot();
        for (extra, status, code, field) in [
            (
                json!({"user_email": "john.smyth@acmecorp.com"}),
                404,
                "user_not_found",
                "user_email",
            ),
            (
                json!({"ticket_id": "99999"}),
                404,
                "ticket_not_found",
                "ticket_id",
            ),
            (
                json!({"ticket_id": GLOBEX_TICKET}),
                422,
                "ticket_not_for_company",
                "ticket_id",
            ),
        ] {
            let (answer, body) = env
                .http("POST", "/revocations", Some(request(extra.clone())), None)
                .await;
            assert_eq!(answer, status, "{extra}: {body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert_eq!(body["error"]["field"], field, "{body}");
            assert!(!body.to_string().contains("GlobexCorp"), "{body}");
        }
        assert_eq!(env.run_count().await, 0, "no run was created");
        assert!(!env.steps_pending().await, "nothing was queued");
        let after = env.sim.snapshot();
        assert_eq!(after.tickets, before.tickets, "no ticket, no note");
        assert!(after.sent_mail.is_empty());
    }

    /// An offboarding-queue record has no caller waiting: a mistyped user naming another
    /// company's ticket fails the run before any removal, told on a new ticket on Acme's
    /// board and by email — never as a note on the other company's ticket.
    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_a_queued_request_for_a_mistyped_user_is_told_on_the_orgs_board() {
        let env = Env::start(acme(), 10).await;
        let body =
            request(json!({"user_email": "john.smyth@acmecorp.com", "ticket_id": GLOBEX_TICKET}));
        env.sqs
            .send_message()
            .queue_url(&env.offboarding_url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
        let (event, handles) = env.receive(&env.offboarding_url).await.expect("the record");
        let answer = handle_intake_event(&env.intake, serde_json::to_value(&event).unwrap())
            .await
            .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "accepted: {answer}");
        env.settle(&env.offboarding_url, &event, &handles, &[])
            .await;
        assert_eq!(env.run_count().await, 1);
        env.pump_steps(1).await;
        let after = env.sim.snapshot();
        assert!(
            after.notes_of(GLOBEX_TICKET).is_empty(),
            "not on Globex's ticket"
        );
        let told: Vec<_> = after
            .tickets
            .iter()
            .filter(|t| {
                t.notes
                    .iter()
                    .any(|n| n.text.contains("john.smyth@acmecorp.com"))
            })
            .collect();
        assert_eq!(told.len(), 1, "{:#?}", after.tickets);
        assert_ne!(told[0].id, GLOBEX_TICKET);
        assert_ne!(told[0].id, ACME_TICKET, "a new ticket");
        assert_eq!(told[0].company, "AcmeCorp");
        assert_eq!(told[0].board, "Service Desk");
        assert!(
            told[0].notes[0].text.contains("FAILED"),
            "{}",
            told[0].notes[0].text
        );
        let mails = after.mail_to("secops@msp.example");
        assert_eq!(mails.len(), 1);
        assert!(mails[0].subject.contains("FAILED"), "{}", mails[0].subject);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_an_alert_for_an_unknown_user_notes_a_new_ticket_and_mails() {
        let env = Env::start(acme(), 10).await;
        let mut event = revoke365_testkit::fixture("eventbridge-security-alert.json");
        event["detail"]["user_email"] = json!("nobody@acmecorp.com");
        let accepted = handle_intake_event(&env.intake, event).await.unwrap();
        let run_id = accepted["run_id"].as_str().unwrap().to_string();
        env.pump_steps(1).await;
        let body = env.get(&run_id).await;
        assert_eq!(body["status"], "failed", "{body}");
        assert_eq!(body["failure"]["code"], "user_not_found", "{body}");
        assert!(
            body["failure"].get("notification_errors").is_none(),
            "{body}"
        );
        let after = env.sim.snapshot();
        let notes: Vec<_> = after
            .tickets
            .iter()
            .flat_map(|t| t.notes.iter())
            .filter(|n| n.text.contains(&run_id))
            .collect();
        assert_eq!(notes.len(), 1, "{:#?}", after.tickets);
        assert!(notes[0].text.contains("INC-2026-0042"), "{}", notes[0].text);
        let mails = after.mail_to("secops@msp.example");
        assert_eq!(mails.len(), 1);
        assert!(mails[0].body.contains(&run_id));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_a_failure_that_could_not_be_mailed_shows_in_get_revocations() {
        let fx = with_sim(
            acme(),
            json!({"rest_disabled_mailboxes": ["automation@acmecorp.com"]}),
        );
        let env = Env::start(fx, 10).await;
        let run_id = post(&env, request(json!({"ticket_id": ACME_TICKET}))).await;
        env.pump_steps(1).await;
        let body = env.get(&run_id).await;
        assert_eq!(body["failure"]["code"], "sender_invalid", "{body}");
        assert_eq!(body["failure"]["field"], "notification_sender", "{body}");
        let errors = body["failure"]["notification_errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        assert!(errors[0].as_str().unwrap().contains("email"), "{body}");
        let after = env.sim.snapshot();
        assert!(after.sent_mail.is_empty());
        assert!(after.notes_of(ACME_TICKET)[0].text.contains(&run_id));
    }
}
