//! Teams and the signed webhook (`[company.notify]`): the real webhook client against the
//! simulator's `/webhooks/{name}` receiver.

use hmac::{Hmac, Mac};
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::HttpSettings;
use revoke365::engine::LocalEngine;
use revoke365::messages::StepMessage;
use revoke365::model::{NotificationChannel, NotifySettings, OrgSettings, Run, RunStatus};
use revoke365::ports::{Queue, RunRecords};
use revoke365::steps::{dispatch, intake, Delivery, NoProgress};
use revoke365::StepError;
use revoke365_sim::snapshot::ReceivedWebhook;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim, WEBHOOK_SECRET};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;

const JOHN: &str = "john.smith@acmecorp.com";

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme"})
}

/// The harness's simulator and connector, with a store and engine whose company posts to
/// the simulator's `teams` and `soc` webhooks (the URLs need the simulator's port).
struct Hooked {
    h: Harness,
    store: Arc<SqliteRunStore>,
    engine: LocalEngine,
    _dir: tempfile::TempDir,
}

async fn hooked(fixture: Value, teams: bool, webhook: bool) -> Hooked {
    hooked_at(fixture, fast_http(10), |base| NotifySettings {
        teams_webhook_url: teams.then(|| format!("{base}/webhooks/teams")),
        webhook_url: webhook.then(|| format!("{base}/webhooks/soc")),
    })
    .await
}

/// With these HTTP settings and the hook URLs `urls` makes of the simulator's base URL.
async fn hooked_at(
    fixture: Value,
    http: HttpSettings,
    urls: impl Fn(&str) -> NotifySettings,
) -> Hooked {
    let h = Harness::start(fixture, http).await;
    let mut org: OrgSettings = h.org.clone();
    org.notify = Some(urls(&h.sim.base_url));
    org.validate().expect("loopback hook URLs are allowed");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteRunStore::open(dir.path(), vec![org]).unwrap());
    let engine = LocalEngine {
        store: store.clone(),
        queue: Arc::new(MemoryQueue::default()),
        connector: h.connector.clone(),
        progress: Arc::new(NoProgress),
        stop: Default::default(),
    };
    Hooked {
        h,
        store,
        engine,
        _dir: dir,
    }
}

fn posts<'a>(all: &'a [ReceivedWebhook], name: &str) -> Vec<&'a ReceivedWebhook> {
    all.iter().filter(|w| w.name == name).collect()
}

/// The signature the receiver checks: HMAC-SHA256 of `<timestamp>.<body>` with the secret.
fn expected_signature(timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Every step message delivered twice at once (as SQS may): the run as it ended.
async fn run_delivering_twice(x: &Hooked) -> Run {
    let queue = x.engine.queue.clone();
    let run = intake(x.store.as_ref(), queue.as_ref(), &request(), None)
        .await
        .unwrap()
        .run;
    loop {
        let messages: Vec<StepMessage> = queue.drain().await;
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let (one, two) = (Delivery::local(), Delivery::local());
            let deliver = |d| {
                dispatch(
                    x.store.as_ref(),
                    queue.as_ref(),
                    x.h.connector.as_ref(),
                    &NoProgress,
                    &m,
                    d,
                )
            };
            let (a, b) = tokio::join!(deliver(&one), deliver(&two));
            for result in [a, b] {
                match result {
                    Ok(()) => {}
                    Err(StepError::Busy { .. }) => queue.send(m.clone()).await.unwrap(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    x.store.get_run(&run.run_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_run_posts_one_teams_card_and_one_signed_webhook_even_when_delivered_twice() {
    let x = hooked(fixture("acme-tenant.json"), true, true).await;
    let run = run_delivering_twice(&x).await;
    assert_eq!(run.status, RunStatus::Completed);
    let report = run.result.clone().unwrap();
    assert!(report.success, "{:?}", report.errors);
    let ticket = report.ticket_id.clone().expect("a ticket");
    // Twin deliveries of one batch link their records one after another: the trail verifies
    // (it said "takes the place of another record" when both wrote at one place).
    // (The run's store is `x.store`: the harness's own store never held this run, so the
    // check there found nothing and proved nothing.)
    let audit = revoke365::steps::check_run_audit(x.store.as_ref(), &run.run_id)
        .await
        .unwrap();
    assert_eq!(
        audit.status,
        revoke365::model::AuditStatus::Intact,
        "{audit:?}"
    );

    let state = x.h.snapshot();
    assert_eq!(state.sent_mail.len(), 1);
    let teams = posts(&state.webhooks, "teams");
    assert_eq!(teams.len(), 1, "one Teams card: {:?}", state.webhooks);
    let card: Value = serde_json::from_str(&teams[0].body).unwrap();
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(content["type"], "AdaptiveCard");
    assert_eq!(
        content["body"][0]["text"],
        format!(
            "Access removal succeeded: {JOHN} ({})",
            x.h.org.company_name
        )
    );
    let facts = content["body"][1]["facts"].as_array().unwrap();
    let fact = |t: &str| {
        facts
            .iter()
            .find(|f| f["title"] == t)
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    assert_eq!(fact("Removed").as_deref(), Some("8"));
    assert_eq!(fact("Failures").as_deref(), Some("0"));
    assert_eq!(fact("Ticket"), Some(ticket.clone()));
    assert!(!teams[0].body.contains(WEBHOOK_SECRET));

    let soc = posts(&state.webhooks, "soc");
    assert_eq!(soc.len(), 1, "one webhook post");
    let post = soc[0];
    assert_eq!(post.headers["content-type"], "application/json");
    let timestamp = &post.headers["x-revoke365-timestamp"];
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "a current timestamp: {timestamp}");
    assert_eq!(
        post.headers["x-revoke365-signature"],
        expected_signature(timestamp, &post.body),
        "the signature verifies with the secret"
    );
    assert_ne!(
        post.headers["x-revoke365-signature"],
        expected_signature(timestamp, &post.body.replace("true", "false")),
        "a changed body does not verify"
    );
    let body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["event"], "revocation.finished");
    assert_eq!(body["run_id"], run.run_id.to_string());
    assert_eq!(body["company_id"], "acme");
    assert_eq!(body["user_email"], JOHN);
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["total_permissions_removed"], 8);
    assert_eq!(body["ticket_id"], ticket.as_str());
    assert!(!post.body.contains(WEBHOOK_SECRET));

    // A restore says so too, once per hook.
    let restore = x
        .engine
        .restore_watched(
            Some(revoke365_testkit::harness::OPERATOR),
            &run.run_id,
            &json!({}),
            None,
            |_| {},
        )
        .await
        .expect("restore accepted");
    let restored = restore.restore_result.as_ref().map(|r| r.success);
    assert_eq!(restored, Some(true), "{:?}", restore.failure);
    let state = x.h.snapshot();
    let soc = posts(&state.webhooks, "soc");
    assert_eq!(soc.len(), 2);
    let body: Value = serde_json::from_str(&soc[1].body).unwrap();
    assert_eq!(body["event"], "restore.finished");
    assert_eq!(body["total_permissions_removed"], 8, "grants put back");
    let teams = posts(&state.webhooks, "teams");
    assert_eq!(teams.len(), 2);
    assert!(teams[1].body.contains("Restore succeeded"));
}

#[tokio::test]
async fn a_failing_webhook_is_one_of_the_reports_errors_like_a_failed_email() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"failing_webhooks": ["soc"]}),
    );
    let x = hooked(fx, true, true).await;
    let run = x.engine.run(&request(), None).await.unwrap();
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    let report = run.result.unwrap();
    assert!(!report.success, "a failed post is loud");
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let error = report
        .errors
        .iter()
        .find(|e| e.contains("webhook post failed"))
        .unwrap_or_else(|| panic!("{:?}", report.errors));
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(
        !error.contains("/webhooks/soc"),
        "no URL in the report: {error}"
    );
    assert_eq!(
        report.headline,
        "NOT NOTIFIED — the removal succeeded (all access removed and verified), but the webhook post could not be delivered"
    );
    let state = x.h.snapshot();
    let note = &state
        .ticket(report.ticket_id.as_deref().unwrap())
        .unwrap()
        .notes[0]
        .text;
    assert!(
        note.contains(&report.headline) && note.contains(error),
        "{note}"
    );
    assert!(posts(&state.webhooks, "soc").is_empty());
    assert_eq!(
        posts(&state.webhooks, "teams").len(),
        1,
        "Teams still gets its card"
    );
    assert_eq!(state.sent_mail.len(), 1, "the email still goes");
}

/// A loopback URL nothing listens on (connection refused).
fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

/// Teams at a host that does not resolve, then at a loopback port nothing listens on: the run
/// is not a success (a notification was not delivered), but the result's headline, the PSA
/// note and the email all say the removal succeeded and that the Teams post could not be
/// delivered because Teams was unreachable — never "throttling", and given up within seconds
/// (with the default retry policy, not the tests' fast one).
#[tokio::test]
async fn an_unreachable_teams_url_is_reported_as_not_delivered_not_as_a_failed_removal() {
    const HEADLINE: &str = "NOT NOTIFIED — the removal succeeded (all access removed and verified), but the Teams post could not be delivered";
    for teams in [
        "https://teams.invalid/webhookb2/secret-token".to_string(),
        closed_port_url("/webhookb2/secret-token"),
    ] {
        let x = hooked_at(
            fixture("acme-tenant.json"),
            HttpSettings::default().with_ceiling(10),
            |_| NotifySettings {
                teams_webhook_url: Some(teams.clone()),
                webhook_url: None,
            },
        )
        .await;
        let started = std::time::Instant::now();
        let run = x.engine.run(&request(), None).await.unwrap();
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(8),
            "an unreachable host is not waited on as if it throttled: {took:?} ({teams})"
        );
        assert_eq!(run.status, RunStatus::CompletedWithErrors);
        let report = run.result.unwrap();
        assert!(
            !report.success,
            "a notification not delivered is not a success"
        );
        assert!(report.verification.all_permissions_cleared);
        assert_eq!(report.removal_summary.total_permissions_removed, 8);
        assert_eq!(report.headline, HEADLINE);
        assert_eq!(report.notification_errors.len(), 1, "{:?}", report.errors);
        let problem = &report.notification_errors[0];
        assert_eq!(problem.channel, NotificationChannel::Teams);
        assert!(
            problem.error.starts_with("the Teams webhook post failed: ")
                && problem.error.contains("unreachable"),
            "{}",
            problem.error
        );
        assert!(
            !problem.error.contains("secret-token"),
            "no URL: {}",
            problem.error
        );
        let result = serde_json::to_string(&report).unwrap();
        assert!(!result.contains("hrottl"), "{result}");
        assert!(!result.contains("removal failed"), "{result}");

        let state = x.h.snapshot();
        let ticket = state
            .ticket(report.ticket_id.as_deref().unwrap())
            .expect("the ticket");
        assert_eq!(ticket.notes.len(), 1);
        let note = &ticket.notes[0].text;
        assert_eq!(
            note.lines().next().unwrap(),
            format!("Revoke365 mailbox access removal: {HEADLINE}")
        );
        assert!(note.contains(&problem.error), "the note names why: {note}");
        assert_eq!(state.sent_mail.len(), 1);
        let mail = &state.sent_mail[0];
        assert_eq!(
            mail.subject,
            format!(
                "Revoke365: removal succeeded, NOT NOTIFIED: the Teams post could not be delivered — {JOHN} ({})",
                x.h.org.company_name
            )
        );
        // The email shows the case in its banner and the rest of the headline under it.
        let (case, said) = HEADLINE.split_once(" — ").unwrap();
        assert!(
            mail.body.contains(&format!(">{case}</div>")) && mail.body.contains(said),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains("the Teams webhook post failed: "),
            "{}",
            mail.body
        );
        for text in [note, &mail.body, &mail.subject] {
            assert!(!text.contains("hrottl"), "{text}");
            assert!(!text.contains("removal failed"), "{text}");
            assert!(!text.contains("SUCCESS"), "{text}");
        }
    }
}

#[tokio::test]
async fn without_notify_settings_nothing_is_posted() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    assert!(h.org.notify.is_none());
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    let state = h.snapshot();
    assert!(state.webhooks.is_empty(), "{:?}", state.webhooks);
    assert_eq!(state.sent_mail.len(), 1);
}

#[test]
fn a_plain_http_hook_url_off_loopback_is_refused_naming_the_field() {
    let mut org = OrgSettings::from_fixture(&fixture("acme-tenant.json")).unwrap();
    org.notify = Some(NotifySettings {
        teams_webhook_url: None,
        webhook_url: Some("http://hooks.example.com/x?token=abc".into()),
    });
    let e = org.validate().unwrap_err();
    assert_eq!(e.field, "notify.webhook_url");
    assert!(e.message.contains("https"), "{}", e.message);
    assert!(!e.message.contains("token=abc"), "{}", e.message);
    org.notify = Some(NotifySettings {
        teams_webhook_url: Some("not a url".into()),
        webhook_url: None,
    });
    assert_eq!(
        org.validate().unwrap_err().field,
        "notify.teams_webhook_url"
    );
}

#[tokio::test]
async fn a_run_that_fails_posts_a_failed_card_and_a_signed_failure() {
    let x = hooked(fixture("acme-tenant.json"), true, true).await;
    let nobody = "nobody@acmecorp.com";
    let run = x
        .engine
        .run(&json!({"user_email": nobody, "company_id": "acme"}), None)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.failure);
    let failure = run.failure.clone().unwrap();
    assert!(
        failure.notification_errors.is_empty(),
        "{:?}",
        failure.notification_errors
    );
    let state = x.h.snapshot();
    let teams = posts(&state.webhooks, "teams");
    assert_eq!(teams.len(), 1);
    assert!(
        teams[0]
            .body
            .contains(&format!("Access removal FAILED: {nobody}")),
        "{}",
        teams[0].body
    );
    let soc = posts(&state.webhooks, "soc");
    assert_eq!(soc.len(), 1);
    let post = soc[0];
    assert_eq!(
        post.headers["x-revoke365-signature"],
        expected_signature(&post.headers["x-revoke365-timestamp"], &post.body)
    );
    let body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["event"], "revocation.finished");
    assert_eq!(body["success"], false);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["user_email"], nobody);
    assert_eq!(body["total_permissions_removed"], 0);
}
