//! Scripted one-off faults (`sim.faults`): each answer, `times`, identity
//! matching, and that `*_after_write` faults really carry the write out.

use std::time::Duration;

use reqwest::Method;
use revoke365_sim::{FaultAnswer, Fixture, ScriptedFault};
use serde_json::{json, Value};

use crate::common::{cmdlet, real_quiet, TestSim, PETER};

fn fault(endpoint: &str, identity: Option<&str>, answer: FaultAnswer) -> ScriptedFault {
    ScriptedFault {
        endpoint: endpoint.to_string(),
        identity: identity.map(str::to_string),
        answer,
        times: 1,
        status: None,
        hang_ms: None,
    }
}

async fn with_faults(faults: Vec<ScriptedFault>) -> TestSim {
    let mut tenant = real_quiet();
    tenant.sim.faults = faults;
    TestSim::start(tenant).await
}

fn remove_full_access(mailbox: &str) -> String {
    cmdlet(
        "Remove-MailboxPermission",
        json!({"Identity": mailbox, "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
    )
}

fn remove_send_as(recipient: &str) -> String {
    cmdlet(
        "Remove-RecipientPermission",
        json!({"Identity": recipient, "Trustee": PETER, "AccessRights": ["SendAs"], "Confirm": false}),
    )
}

fn has_full_access(sim: &TestSim, mailbox: &str) -> bool {
    sim.handle
        .snapshot()
        .direct_grants_of(PETER)
        .contains(&(mailbox.to_string(), "full_access"))
}

fn has_send_as(sim: &TestSim, recipient: &str) -> bool {
    sim.handle
        .snapshot()
        .direct_grants_of(PETER)
        .contains(&(recipient.to_string(), "send_as"))
}

/// Peter's calendar permission id on a mailbox.
async fn calendar_path(sim: &TestSim, mailbox: &str) -> String {
    let path = format!("/v1.0/users/{mailbox}/calendar/calendarPermissions");
    let list = sim.graph_get(&path).await;
    let id = list
        .values()
        .iter()
        .find(|p| p["emailAddress"]["address"] == "peter@initech.com")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .expect("Peter's calendar permission");
    format!("{path}/{id}")
}

#[tokio::test]
async fn gateway_answers_have_no_effect_and_a_retry_works() {
    let mut calendar = fault(
        "graph DELETE calendarPermissions",
        Some("ceo@initech.com"),
        FaultAnswer::GatewayTimeout,
    );
    calendar.times = 2;
    let sim = with_faults(vec![
        fault(
            "exo Remove-RecipientPermission",
            Some("info@initech.com"),
            FaultAnswer::BadGateway,
        ),
        calendar,
        fault(
            "exo Remove-MailboxPermission",
            Some("support@initech.com"),
            FaultAnswer::Error500,
        ),
    ])
    .await;

    // Another identity is not claimed by the fault.
    assert_eq!(
        sim.exo(&remove_send_as("allstaff@initech.com"))
            .await
            .status,
        200
    );
    let bad_gateway = sim.exo(&remove_send_as("info@initech.com")).await;
    assert_eq!(bad_gateway.status, 502);
    assert!(bad_gateway.content_type().starts_with("text/html"));
    assert!(bad_gateway.text.contains("<title>502 Bad Gateway</title>"));
    assert!(has_send_as(&sim, "info@initech.com"), "no effect");
    let retry = sim.exo(&remove_send_as("info@initech.com")).await;
    assert_eq!(retry.status, 200);
    assert!(retry.warnings().is_empty(), "{}", retry.body);
    assert!(!has_send_as(&sim, "info@initech.com"));

    let path = calendar_path(&sim, "ceo@initech.com").await;
    for _ in 0..2 {
        let timeout = sim.graph(Method::DELETE, &path, None).await;
        assert_eq!(timeout.status, 504);
        assert!(timeout.text.contains("504 Gateway Time-out"));
    }
    assert_eq!(sim.graph(Method::DELETE, &path, None).await.status, 204);

    let error = sim.exo(&remove_full_access("support@initech.com")).await;
    assert_eq!(error.status, 500);
    assert!(error.text.is_empty());
    assert!(has_full_access(&sim, "support@initech.com"));
    assert_eq!(
        sim.exo(&remove_full_access("support@initech.com"))
            .await
            .status,
        200
    );
    assert!(!has_full_access(&sim, "support@initech.com"));

    let counters = sim.handle.snapshot().counters;
    assert_eq!(counters.injected_faults, 4);
    let answers: Vec<&str> = counters
        .injected_fault_log
        .iter()
        .map(|f| f.answer.as_str())
        .collect();
    assert_eq!(answers, ["502", "504", "504", "500"]);
    assert_eq!(
        counters.injected_fault_log[0].endpoint,
        "exo Remove-RecipientPermission"
    );
    assert_eq!(
        counters.injected_fault_log[0].identity.as_deref(),
        Some("info@initech.com")
    );
}

#[tokio::test]
async fn the_services_own_500s_say_whether_they_pass_and_change_nothing() {
    let sim = with_faults(vec![
        fault(
            "graph GET calendarPermissions",
            Some("ceo@initech.com"),
            FaultAnswer::Transient500,
        ),
        fault(
            "exo Get-MailboxPermission",
            Some("ceo@initech.com"),
            FaultAnswer::Transient500,
        ),
        fault(
            "exo Remove-MailboxPermission",
            Some("support@initech.com"),
            FaultAnswer::Permanent500,
        ),
    ])
    .await;

    let path = "/v1.0/users/ceo@initech.com/calendar/calendarPermissions";
    let graph = sim.graph_get(path).await;
    assert_eq!(graph.status, 500);
    assert_eq!(
        graph.body["error"]["code"],
        "ErrorInternalServerTransientError"
    );
    assert_eq!(sim.graph_get(path).await.status, 200, "one-off");

    let read = cmdlet(
        "Get-MailboxPermission",
        json!({"Identity": "ceo@initech.com"}),
    );
    let transient = sim.exo(&read).await;
    assert_eq!(transient.status, 500);
    let detail = transient.exo_detail();
    assert_eq!(
        detail.split('|').nth(1),
        Some("Microsoft.Exchange.Data.StorageTransientException"),
        "{detail}"
    );
    assert_eq!(sim.exo(&read).await.status, 200);

    let permanent = sim.exo(&remove_full_access("support@initech.com")).await;
    assert_eq!(permanent.status, 500);
    assert!(
        permanent
            .exo_detail()
            .contains("|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"),
        "{}",
        permanent.text
    );
    assert!(has_full_access(&sim, "support@initech.com"), "no effect");
    let answers: Vec<String> = sim
        .handle
        .snapshot()
        .counters
        .injected_fault_log
        .into_iter()
        .map(|f| f.answer)
        .collect();
    assert_eq!(answers, ["transient_500", "transient_500", "permanent_500"]);
}

#[tokio::test]
async fn unavailable_and_plain_text_throttling_answers() {
    let mut set_mailbox = fault("exo Set-Mailbox", None, FaultAnswer::ConcurrentText);
    set_mailbox.status = Some(429);
    let sim = with_faults(vec![
        fault("exo Get-Mailbox", None, FaultAnswer::ConcurrentText),
        fault(
            "graph GET calendarPermissions",
            Some(PETER),
            FaultAnswer::Unavailable,
        ),
        set_mailbox,
    ])
    .await;
    let body = cmdlet("Get-Mailbox", json!({"ResultSize": "Unlimited"}));
    let first = sim.exo(&body).await;
    assert_eq!(first.status, 500);
    assert!(first.content_type().starts_with("text/plain"));
    assert_eq!(
        first.text,
        "The request was throttled: you have reached the maximum number of concurrent requests per tenant."
    );
    assert_eq!(sim.exo(&body).await.status, 200, "times defaults to 1");

    // The fault names the UPN, the request the object id: the same mailbox.
    let id = sim.graph_get(&format!("/v1.0/users/{PETER}")).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1.0/users/{id}/calendar/calendarPermissions");
    let unavailable = sim.graph_get(&path).await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.header("retry-after"), Some("1"));
    assert_eq!(sim.graph_get(&path).await.status, 200);

    let before = sim.handle.snapshot();
    let remove = cmdlet(
        "Set-Mailbox",
        json!({"Identity": "sales@initech.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": PETER}}),
    );
    let throttled = sim.exo(&remove).await;
    assert_eq!(throttled.status, 429, "status override");
    assert!(throttled
        .text
        .contains("maximum number of concurrent requests"));
    assert_eq!(
        sim.handle.snapshot().mailboxes,
        before.mailboxes,
        "no effect"
    );
    assert_eq!(sim.handle.snapshot().counters.injected_faults, 3);
}

#[tokio::test]
async fn after_write_faults_carry_the_write_out() {
    let sim = with_faults(vec![
        fault(
            "exo Remove-MailboxPermission",
            Some("ceo@initech.com"),
            FaultAnswer::UnavailableAfterWrite,
        ),
        fault(
            "exo Remove-RecipientPermission",
            Some("info@initech.com"),
            FaultAnswer::GatewayTimeoutAfterWrite,
        ),
        fault(
            "exo Set-Mailbox",
            Some("sales@initech.com"),
            FaultAnswer::UnavailableAfterWrite,
        ),
        fault(
            "graph DELETE calendarPermissions",
            Some("ceo@initech.com"),
            FaultAnswer::GatewayTimeoutAfterWrite,
        ),
        fault(
            "cw POST notes",
            Some("4101"),
            FaultAnswer::GatewayTimeoutAfterWrite,
        ),
        fault("cw POST tickets", None, FaultAnswer::UnavailableAfterWrite),
        fault(
            "graph POST sendMail",
            None,
            FaultAnswer::UnavailableAfterWrite,
        ),
    ])
    .await;

    // The fault names the UPN; the request uses the Name.
    let answer = sim.exo(&remove_full_access("ceo")).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        !has_full_access(&sim, "ceo@initech.com"),
        "the grant is gone"
    );
    let retry = sim.exo(&remove_full_access("ceo@initech.com")).await;
    assert_eq!(retry.status, 200);
    assert!(
        retry.warnings()[0].contains("ACE doesn't exist on the object"),
        "{}",
        retry.body
    );

    let answer = sim.exo(&remove_send_as("info@initech.com")).await;
    assert_eq!(answer.status, 504);
    assert!(!has_send_as(&sim, "info@initech.com"));
    let retry = sim.exo(&remove_send_as("info@initech.com")).await;
    assert!(
        retry.warnings()[0].contains("ACE isn't present"),
        "{}",
        retry.body
    );

    let remove = cmdlet(
        "Set-Mailbox",
        json!({"Identity": "sales@initech.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": PETER}}),
    );
    assert_eq!(sim.exo(&remove).await.status, 503);
    let retry = sim.exo(&remove).await;
    assert!(retry.warnings()[0].contains("no settings of 'sales' have been modified"));

    let path = calendar_path(&sim, "ceo@initech.com").await;
    assert_eq!(sim.graph(Method::DELETE, &path, None).await.status, 504);
    let again = sim.graph(Method::DELETE, &path, None).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body["error"]["code"], "ErrorItemNotFound");

    let note = r#"{"text":"Removed.","internalAnalysisFlag":true}"#;
    let created = sim
        .cw(Method::POST, "/service/tickets/4101/notes", Some(note))
        .await;
    assert_eq!(created.status, 504);
    let ticket = r#"{"summary":"Offboard Peter Gibbons","board":{"name":"Service Desk"},"company":{"identifier":"initech"}}"#;
    assert_eq!(
        sim.cw(Method::POST, "/service/tickets", Some(ticket))
            .await
            .status,
        503
    );
    let mail = json!({"message": {"subject": "Report", "body": {"contentType": "HTML", "content": "<p/>"},
        "toRecipients": [{"emailAddress": {"address": "secops@msp.example"}}]}});
    let sent = sim
        .graph(
            Method::POST,
            "/v1.0/users/automation@initech.com/sendMail",
            Some(&mail.to_string()),
        )
        .await;
    assert_eq!(sent.status, 503);

    let snapshot = sim.handle.snapshot();
    assert_eq!(snapshot.notes_of("4101")[0].text, "Removed.");
    assert_eq!(
        snapshot.tickets_of("initech").len(),
        2,
        "the ticket was created"
    );
    assert_eq!(snapshot.mail_to("secops@msp.example").len(), 1);
    let calendar = &snapshot.mailbox("ceo@initech.com").unwrap().calendar;
    assert!(!calendar.iter().any(|g| g.user == PETER));
    assert!(!snapshot
        .mailbox("sales@initech.com")
        .unwrap()
        .send_on_behalf
        .contains(&PETER.to_string()));
    assert_eq!(snapshot.counters.injected_faults, 7);
}

#[tokio::test]
async fn hangs() {
    let mut read = fault("graph GET /users/{id}", None, FaultAnswer::Hang);
    read.hang_ms = Some(1500);
    let mut after_write = fault(
        "exo Remove-MailboxPermission",
        Some("support@initech.com"),
        FaultAnswer::HangAfterWrite,
    );
    after_write.hang_ms = Some(1500);
    let mut before_write = fault(
        "exo Remove-RecipientPermission",
        Some("allstaff@initech.com"),
        FaultAnswer::Hang,
    );
    before_write.hang_ms = Some(1500);
    let sim = with_faults(vec![read, after_write, before_write]).await;
    let (exo_token, graph_token) = sim.tokens();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();

    let user = sim.url(&format!("/v1.0/users/{PETER}"));
    let timed_out = impatient.get(&user).bearer_auth(graph_token).send().await;
    assert!(timed_out.unwrap_err().is_timeout());
    let started = std::time::Instant::now();
    let normal = impatient
        .get(&user)
        .bearer_auth(graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(normal.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(400));

    let exo = |body: String| {
        impatient
            .post(sim.invoke_url())
            .bearer_auth(exo_token)
            .header("X-AnchorMailbox", format!("UPN:{PETER}"))
            .body(body)
            .send()
    };
    // hang_after_write: the write is done before the client gives up.
    let timed_out = exo(remove_full_access("support@initech.com")).await;
    assert!(timed_out.unwrap_err().is_timeout());
    assert!(!has_full_access(&sim, "support@initech.com"));
    // hang: nothing is done yet when the client gives up.
    let timed_out = exo(remove_send_as("allstaff@initech.com")).await;
    assert!(timed_out.unwrap_err().is_timeout());
    assert!(has_send_as(&sim, "allstaff@initech.com"));
    assert_eq!(sim.handle.snapshot().counters.injected_faults, 3);
    // The server drops a request whose client went away: it is never carried out.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(has_send_as(&sim, "allstaff@initech.com"));
}

#[test]
fn scripted_faults_are_validated() {
    let base = |faults: Value| {
        let mut tenant: Value =
            serde_json::from_str(&std::fs::read_to_string(crate::common::REAL).unwrap()).unwrap();
        tenant["sim"]["faults"] = faults;
        Fixture::from_json(&tenant.to_string())
    };
    let cases = [
        (
            json!([{"endpoint": "exo Remove-Mailbox", "answer": "502"}]),
            "not an endpoint key",
        ),
        (
            json!([{"endpoint": "exo Get-Mailbox", "answer": "hang"}]),
            "hang_ms",
        ),
        (
            json!([{"endpoint": "exo Get-Mailbox", "answer": "502", "hang_ms": 5}]),
            "hang_ms",
        ),
        (
            json!([{"endpoint": "exo Get-Mailbox", "answer": "502", "times": 0}]),
            "times",
        ),
        (
            json!([{"endpoint": "exo Get-Mailbox", "answer": "418"}]),
            "unknown variant",
        ),
        (
            json!([{"endpoint": "graph GET calendarPermissions", "answer": "permanent_500"}]),
            "only for 'exo <Cmdlet>' endpoints",
        ),
    ];
    for (faults, expected) in cases {
        let error = base(faults.clone()).unwrap_err();
        assert!(error.contains(expected), "{faults}: {error}");
    }
    let ok = base(
        json!([{"endpoint": "cw POST notes", "identity": "4101", "answer": "504_after_write", "times": 2, "status": 502}]),
    );
    let faults = ok.unwrap().sim.faults;
    assert_eq!(faults[0].times, 2);
    assert_eq!(faults[0].answer, FaultAnswer::GatewayTimeoutAfterWrite);
}
