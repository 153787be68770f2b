//! Alert intake on the serverless path: the scheduled `poll_alerts` job through the discovery
//! function's handler, and a Sentinel playbook's `POST /alerts/sentinel` through the intake
//! function's, against LocalStack, DynamoDB Local and the tenant simulator.

use crate::aws_kit::{Env, JOHN};
use revoke365::lambda::intake::handle_intake_event;
use revoke365::lambda::steps::handle_step_event;
use revoke365::model::{RunId, RunMode};
use revoke365::ports::RunRecords;
use revoke365::steps::POLLER_PRINCIPAL;
use revoke365_testkit::{events_dir, fixture};
use serde_json::{json, Value};

fn event(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events_dir().join(name)).unwrap()).unwrap()
}

/// The alerts tenant, its company polling Defender only (one compromised user: John).
fn defender_tenant() -> Value {
    let mut f = fixture("acme-alerts-tenant.json");
    f["organization"]["alerts"] = json!({"entra_id_protection": false});
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_poll_starts_one_contain_run_and_polling_again_starts_none() {
    let env = Env::start(defender_tenant(), 10).await;
    let poll = || async {
        // The schedule delivers to the discovery function.
        handle_step_event(
            &env.steps[0].1,
            event("scheduled-poll-alerts.json"),
            env.deadline(),
        )
        .await
        .unwrap()
    };
    let first = poll().await;
    assert_eq!(first["job"], "poll_alerts");
    let runs = first["report"]["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{first:#}");
    assert_eq!(runs[0]["user_email"], JOHN);
    assert_eq!(runs[0]["created"], true);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let run = env
        .intake
        .store
        .get_run(&RunId(run_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.request.mode, RunMode::Contain);
    assert!(run.request.victim_mailbox);
    assert_eq!(run.request.alert_source.as_deref(), Some("defender"));
    assert_eq!(run.request.incident_id.as_deref(), Some("4711"));
    assert_eq!(
        run.request.requested_by_principal.as_deref(),
        Some(POLLER_PRINCIPAL)
    );

    let again = poll().await;
    let runs = again["report"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{again:#}");
    assert_eq!(
        (runs[0]["run_id"].as_str(), &runs[0]["created"]),
        (Some(run_id.as_str()), &json!(false))
    );
    assert_eq!(env.run_count().await, 1);

    // A poll that names no company is refused, naming the field.
    let e = handle_step_event(
        &env.steps[0].1,
        json!({"v": 1, "kind": "scheduled", "job": "poll_alerts"}),
        env.deadline(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("company_id"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_payload_through_the_api_route_starts_one_run_and_a_resend_returns_it() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let sample = event("apigw-post-sentinel-alert.json");
    let post = || async {
        let response = handle_intake_event(&env.intake, sample.clone())
            .await
            .unwrap();
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        (response["statusCode"].as_i64().unwrap(), body)
    };
    let (status, first) = post().await;
    assert_eq!(status, 202, "{first}");
    let runs = first["runs"].as_array().unwrap().clone();
    assert_eq!(
        runs.len(),
        1,
        "the Account and Mailbox entities are one user: {first}"
    );
    assert_eq!(runs[0]["created"], true);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status_url"], format!("/revocations/{run_id}"));
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let run = env
        .intake
        .store
        .get_run(&RunId(run_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.request.mode, RunMode::Contain);
    assert_eq!(run.request.alert_source.as_deref(), Some("sentinel"));
    assert_eq!(run.request.incident_id.as_deref(), Some("INC-2026-0107"));
    assert_eq!(
        run.request.requested_by_principal.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/revoke365-sentinel-playbook/logicapp")
    );

    let (status, again) = post().await;
    assert_eq!(status, 202);
    assert_eq!(again["runs"][0]["run_id"], json!(run_id));
    assert_eq!(again["runs"][0]["created"], false);
    assert_eq!(env.run_count().await, 1);

    // A payload without entities is refused, naming the field.
    let mut bad = sample.clone();
    bad["body"] = json!(json!({"company_id": "acme", "incident_id": "9"}).to_string());
    let response = handle_intake_event(&env.intake, bad).await.unwrap();
    assert_eq!(response["statusCode"], 400);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["field"], "entities");
}

/// How many users of the crowd hold a grant (Full Access to the finance mailbox); the others
/// are only named by the alerts.
const CROWD_HOLDERS: usize = 7;

/// The `n`-th user of a crowd an alert names.
fn crowd(n: usize) -> String {
    format!("staff{n:03}@acmecorp.com")
}

/// Acme's tenant with the crowd's first users in the directory, each holding Full Access to
/// the finance mailbox, and `alerts` as the company's alert settings.
fn crowd_tenant(alerts: Value) -> Value {
    let mut f = fixture("acme-tenant.json");
    for n in 1..=CROWD_HOLDERS {
        f["users"]
            .as_array_mut()
            .unwrap()
            .push(json!({"upn": crowd(n), "display_name": format!("Staff {n}")}));
        let finance = f["mailboxes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|m| m["upn"] == "finance@acmecorp.com")
            .unwrap();
        finance["full_access"]
            .as_array_mut()
            .unwrap()
            .push(json!({"user": crowd(n)}));
    }
    f["organization"]["alerts"] = alerts;
    f
}

/// A playbook's incident body naming `users` as Mailbox entities, in that order.
fn incident(id: &str, severity: &str, users: impl IntoIterator<Item = String>) -> Value {
    let entities: Vec<Value> = users
        .into_iter()
        .map(|u| json!({"Type": "mailbox", "MailboxPrimaryAddress": u}))
        .collect();
    json!({"company_id": "acme", "incident_id": id, "severity": severity,
        "title": "Phishing campaign", "entities": entities})
}

fn emails(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_email"].as_str().unwrap().to_string())
        .collect()
}

/// The hourly budget counts per clock hour: a test of it starts clear of the hour's end.
async fn clear_of_the_hour_end() {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let left = 3600 - i64::from(now.minute() * 60 + now.second());
    if left < 60 {
        tokio::time::sleep(std::time::Duration::from_secs(left as u64 + 1)).await;
    }
}

impl Env {
    /// `POST /alerts/sentinel` with `body`, as the sample's playbook role: the status and body.
    async fn post_sentinel(&self, body: &Value) -> (i64, Value) {
        let mut request = event("apigw-post-sentinel-alert.json");
        request["body"] = json!(body.to_string());
        let response = handle_intake_event(&self.intake, request).await.unwrap();
        let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        (response["statusCode"].as_i64().unwrap(), answer)
    }

    /// The PSA notes and the emails carrying `reference`.
    fn told(&self, reference: &str) -> (Vec<String>, Vec<String>) {
        let state = self.sim.snapshot();
        let notes = state
            .tickets
            .iter()
            .flat_map(|t| &t.notes)
            .filter(|n| n.text.contains(reference))
            .map(|n| n.text.clone())
            .collect();
        let mails = state
            .sent_mail
            .iter()
            .filter(|m| m.body.contains(reference))
            .map(|m| m.body.clone())
            .collect();
        (notes, mails)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_naming_500_users_contains_five_and_asks_approval_for_the_rest_once() {
    let env = Env::start(crowd_tenant(json!({})), 10).await;
    clear_of_the_hour_end().await;
    let body = incident("INC-CROWD", "High", (1..=500).map(crowd));
    let (status, first) = env.post_sentinel(&body).await;
    assert_eq!(status, 202, "{first}");
    // The first five in the incident's order are contained; the other 495 await approval.
    assert_eq!(
        emails(&first["runs"]),
        (1..=5).map(crowd).collect::<Vec<_>>()
    );
    assert!(first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["created"] == true && r["status_url"].is_string()));
    assert_eq!(
        emails(&first["awaiting_approval"]),
        (6..=500).map(crowd).collect::<Vec<_>>()
    );
    assert_eq!(first["never_contain"], json!([]));
    let notice = &first["approval_notices"][0];
    let reference = notice["reference"].as_str().unwrap().to_string();
    let outcome = notice["outcome"].to_string();
    assert!(outcome.contains("approval note added"), "{outcome}");
    assert!(
        outcome.contains("approval email sent to secops@msp.example"),
        "{outcome}"
    );
    env.pump_steps(1).await;
    assert_eq!(env.run_count().await, 5);

    // The tenant: only the five contained users lost their grants.
    let state = env.sim.snapshot();
    for n in 1..=5 {
        assert_eq!(state.direct_grants_of(&crowd(n)), vec![], "{}", crowd(n));
    }
    for n in 6..=CROWD_HOLDERS {
        assert_eq!(state.direct_grants_of(&crowd(n)).len(), 1, "{}", crowd(n));
    }
    assert!(!state.direct_grants_of(JOHN).is_empty());

    // One note and one email name every user awaiting approval and say how to approve one.
    let (notes, mails) = env.told(&reference);
    assert_eq!((notes.len(), mails.len()), (1, 1));
    for text in notes.iter().chain(&mails) {
        for n in [6, 7, 250, 500] {
            assert!(text.contains(&crowd(n)), "{}", crowd(n));
        }
        assert!(text.contains("Awaiting approval (495)"));
        assert!(text.contains("revoke365 run --company-id acme --user"));
        assert!(text.contains("POST /revocations"));
    }
    // The notice's own ticket, found by its reference, in a summary every PSA takes.
    let state = env.sim.snapshot();
    let ticket = state
        .tickets
        .iter()
        .find(|t| t.summary.contains(&reference))
        .expect("the approval ticket");
    assert!(ticket.summary.chars().count() <= 100, "{}", ticket.summary);
    assert_eq!(ticket.board, "Service Desk");
    assert_eq!(ticket.notes.len(), 1);
    let mails_before = state.sent_mail.len();

    // Re-sent: the same runs, the same users waiting, no new run, no second notice.
    let (status, again) = env.post_sentinel(&body).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        again["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["run_id"].clone(), r["created"].clone()))
            .collect::<Vec<_>>(),
        first["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["run_id"].clone(), json!(false)))
            .collect::<Vec<_>>()
    );
    assert_eq!(again["awaiting_approval"], first["awaiting_approval"]);
    assert_eq!(again["approval_notices"][0]["sent_before"], true);
    env.pump_steps(1).await;
    assert_eq!(env.run_count().await, 5);
    let (notes, mails) = env.told(&reference);
    assert_eq!((notes.len(), mails.len()), (1, 1));
    assert_eq!(env.sim.snapshot().sent_mail.len(), mails_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn never_contain_users_are_reported_only_and_the_hourly_cap_holds_across_the_poller_and_sentinel(
) {
    let mut tenant = crowd_tenant(json!({
        "entra_id_protection": false,
        "max_contain_per_alert": 3,
        "max_contain_per_hour": 4,
        "never_contain": ["STAFF002@AcmeCorp.com", "exec.assistant@acmecorp.com"],
    }));
    // Staff 3 is also known as a never_contain address: the directory says so.
    let staff3 = tenant["users"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["upn"] == json!(crowd(3)))
        .unwrap();
    staff3["proxy_addresses"] = json!([
        format!("SMTP:{}", crowd(3)),
        "smtp:exec.assistant@acmecorp.com"
    ]);
    tenant["security_alerts"] = json!([{"id": "da-john", "incident_id": "4711", "severity": "high",
        "evidence": [{"user": JOHN, "roles": ["compromised"]}]}]);
    let env = Env::start(tenant, 10).await;
    clear_of_the_hour_end().await;

    // The never_contain users (by the alert's address, and by a proxy address the directory
    // knows) are reported, not contained; one run of the hour's four.
    let (status, a) = env
        .post_sentinel(&incident("INC-A", "Medium", (1..=3).map(crowd)))
        .await;
    assert_eq!(status, 202, "{a}");
    assert_eq!(emails(&a["runs"]), [crowd(1)]);
    assert_eq!(emails(&a["never_contain"]), [crowd(2), crowd(3)]);
    assert_eq!(a["awaiting_approval"], json!([]));
    let reference_a = a["approval_notices"][0]["reference"]
        .as_str()
        .unwrap()
        .to_string();

    // The poller's run is the second.
    let polled = handle_step_event(
        &env.steps[0].1,
        event("scheduled-poll-alerts.json"),
        env.deadline(),
    )
    .await
    .unwrap();
    assert_eq!(emails(&polled["report"]["runs"]), [JOHN], "{polled:#}");

    // A second incident gets the hour's last two places, within its own cap of three.
    let (status, b) = env
        .post_sentinel(&incident("INC-B", "High", (4..=7).map(crowd)))
        .await;
    assert_eq!(status, 202, "{b}");
    assert_eq!(emails(&b["runs"]), [crowd(4), crowd(5)]);
    assert_eq!(emails(&b["awaiting_approval"]), [crowd(6), crowd(7)]);
    env.pump_steps(1).await;
    assert_eq!(env.run_count().await, 4);

    let state = env.sim.snapshot();
    for n in [1, 4, 5] {
        assert_eq!(state.direct_grants_of(&crowd(n)), vec![], "{}", crowd(n));
    }
    for n in [2, 3, 6, 7] {
        assert_eq!(state.direct_grants_of(&crowd(n)).len(), 1, "{}", crowd(n));
    }
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    let (notes, mails) = env.told(&reference_a);
    assert_eq!((notes.len(), mails.len()), (1, 1));
    assert!(notes[0].contains("Never contained automatically (never_contain) (2)"));
    assert!(notes[0].contains(&crowd(2)) && notes[0].contains(&crowd(3)));
}

#[tokio::test(flavor = "multi_thread")]
async fn resolved_benign_closed_or_low_alerts_start_nothing_and_oversized_fields_answer_400() {
    let mut tenant = crowd_tenant(json!({"entra_id_protection": false}));
    tenant["security_alerts"] = json!([
        {"id": "da-resolved", "severity": "high", "status": "resolved",
            "evidence": [{"user": crowd(1), "roles": ["compromised"]}]},
        {"id": "da-benign", "severity": "high", "classification": "informationalExpectedActivity",
            "evidence": [{"user": crowd(2), "roles": ["compromised"]}]},
        {"id": "da-false", "severity": "high", "status": "inProgress", "classification": "falsePositive",
            "evidence": [{"user": crowd(3), "roles": ["compromised"]}]}
    ]);
    let env = Env::start(tenant, 10).await;
    let polled = handle_step_event(
        &env.steps[0].1,
        event("scheduled-poll-alerts.json"),
        env.deadline(),
    )
    .await
    .unwrap();
    let report = &polled["report"];
    assert_eq!(report["runs"], json!([]), "{polled:#}");
    let skipped = report["skipped"].to_string();
    assert!(
        skipped.contains("da-resolved: status 'resolved'"),
        "{skipped}"
    );
    assert!(
        skipped.contains("da-benign: classified 'informationalExpectedActivity'"),
        "{skipped}"
    );
    assert!(
        skipped.contains("da-false: classified 'falsePositive'"),
        "{skipped}"
    );

    // Sentinel: min_severity (medium) applies; a closed or benign incident starts nothing.
    let one = || incident("INC-7", "High", [crowd(1)]);
    for (change, why) in [
        (json!({"severity": "Low"}), "min_severity"),
        (json!({"status": "Closed"}), "Closed"),
        (
            json!({"classification": "BenignPositive"}),
            "BenignPositive",
        ),
        (json!({"classification": "FalsePositive"}), "FalsePositive"),
    ] {
        let mut body = one();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, answer) = env.post_sentinel(&body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["ignored"].as_str().unwrap().contains(why),
            "{answer}"
        );
        assert_eq!(answer["runs"], json!([]));
    }

    // Bad fields: 400 naming the field.
    let long = |n: usize| "x".repeat(n);
    let mut cases = vec![
        (
            incident("INC-8", "High", (1..=1001).map(crowd)),
            "entities".to_string(),
        ),
        (
            incident(&long(129), "High", [crowd(1)]),
            "incident_id".into(),
        ),
        (incident("INC-8", "Critical", [crowd(1)]), "severity".into()),
        (
            incident("INC-8", "High", [format!("{}@acmecorp.com", long(320))]),
            "entities[0].MailboxPrimaryAddress".into(),
        ),
    ];
    let mut titled = one();
    titled["title"] = json!(long(513));
    cases.push((titled, "title".into()));
    let mut no_severity = one();
    no_severity.as_object_mut().unwrap().remove("severity");
    cases.push((no_severity, "severity".into()));
    let mut status_text = one();
    status_text["status"] = json!("Resolved");
    cases.push((status_text, "status".into()));
    for (body, field) in cases {
        let (status, answer) = env.post_sentinel(&body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], json!(field), "{answer}");
    }
    assert_eq!(env.run_count().await, 0);
    let state = env.sim.snapshot();
    assert!(state.sent_mail.is_empty());
    assert_eq!(state.direct_grants_of(&crowd(1)).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hourly_budget_and_the_notice_mark_hold_under_concurrent_invocations() {
    use revoke365::ports::AlertLedger;
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let store = &env.intake.store;
    let takes = (0..12).map(|_| store.take_contain_budget("acme", "2026-12-07T14", 4));
    let taken = futures_util::future::join_all(takes).await;
    assert_eq!(taken.iter().filter(|t| *t.as_ref().unwrap()).count(), 4);
    // Another hour, another company: budgets of their own.
    assert!(store
        .take_contain_budget("acme", "2026-12-07T15", 4)
        .await
        .unwrap());
    assert!(store
        .take_contain_budget("contoso", "2026-12-07T14", 4)
        .await
        .unwrap());

    let until = chrono::Utc::now() + chrono::Duration::days(1);
    let marks = (0..6).map(|_| store.mark_alert("notice-key", until));
    let marked = futures_util::future::join_all(marks).await;
    assert_eq!(marked.iter().filter(|m| *m.as_ref().unwrap()).count(), 1);
    assert!(store.alert_marked("notice-key").await.unwrap());
    assert!(!store.alert_marked("other-key").await.unwrap());
}
