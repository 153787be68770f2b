//! Throttling storms, injected 503s, acknowledged-but-ignored removals, duplicate delivery.

use revoke365::messages::Step;
use revoke365::messages::StepMessage;
use revoke365::model::{AuditPhase, RunStatus};
use revoke365::ports::Queue;
use revoke365::ports::{AuditTrail, RunRecords};
use revoke365::steps::{abandon, dispatch, intake, Delivery, NoProgress};
use revoke365::StepError;
use revoke365_sim::snapshot::FULL_ACCESS;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::json;

const JOHN: &str = "john.smith@acmecorp.com";

fn request() -> serde_json::Value {
    json!({"user_email": JOHN, "company_id": "acme"})
}

#[tokio::test]
async fn seeded_503s_and_a_concurrency_cap_still_remove_everything_without_exceeding_the_cap() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"latency_ms": 5, "concurrency_cap": 4, "rate_503": 0.3, "seed": 42, "retry_after_secs": 0}),
    );
    // Two per service: Exchange and Graph together stay within the simulator's one cap.
    let h = Harness::start(fx, fast_http(2)).await;
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let state = h.snapshot();
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    let counters = &state.counters;
    assert!(counters.injected_503 > 0, "the storm happened");
    assert!(
        counters.peak_in_flight <= 4,
        "peak {} exceeded the cap",
        counters.peak_in_flight
    );
    assert_eq!(
        counters.throttled_429, 0,
        "a client at the cap is never throttled"
    );
}

#[tokio::test]
async fn a_client_above_the_cap_is_throttled_and_recovers() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"latency_ms": 20, "concurrency_cap": 2, "retry_after_secs": 0}),
    );
    let h = Harness::start(fx, fast_http(12)).await;
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    let state = h.snapshot();
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    assert!(
        state.counters.throttled_429 > 0,
        "429s were answered and retried"
    );
}

#[tokio::test]
async fn verification_reads_the_tenant_instead_of_trusting_removal_answers() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"noop_remove_mailboxes": ["finance@acmecorp.com"]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let run = h.run(request()).await;
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    let report = run.result.unwrap();
    assert!(!report.success);
    assert_eq!(report.verification.remaining_full_access, 1);
    assert!(!report.verification.all_permissions_cleared);
    let finance = report
        .permissions_removed
        .full_access
        .iter()
        .find(|e| e.mailbox == "finance@acmecorp.com")
        .unwrap();
    assert!(!finance.removed);
    assert!(finance.error.as_deref().unwrap().contains("still present"));
    assert_eq!(report.removal_summary.total_permissions_removed, 7);
    assert_eq!(
        h.snapshot().direct_grants_of(JOHN),
        vec![("finance@acmecorp.com".to_string(), FULL_ACCESS)]
    );
}

/// Every message delivered twice, concurrently, as SQS may do.
#[tokio::test]
async fn duplicate_delivery_counts_once_and_verifies_once() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let queue = h.engine.queue.clone();
    let run = intake(h.store.as_ref(), queue.as_ref(), &request(), None)
        .await
        .unwrap()
        .run;
    let mut deliveries = 0;
    loop {
        let messages: Vec<StepMessage> = queue.drain().await;
        if messages.is_empty() {
            break;
        }
        for m in messages {
            // Two deliveries at once, as SQS may make them: each its own holder.
            let (one, two) = (Delivery::local(), Delivery::local());
            let deliver = |d| {
                dispatch(
                    h.store.as_ref(),
                    queue.as_ref(),
                    h.connector.as_ref(),
                    &NoProgress,
                    &m,
                    d,
                )
            };
            let (a, b) = tokio::join!(deliver(&one), deliver(&two));
            deliveries += 2;
            for result in [a, b] {
                match result {
                    Ok(()) => {}
                    // The twin holds the step: the message comes back later, as SQS returns
                    // a batch-item failure.
                    Err(StepError::Busy { .. }) => queue.send(m.clone()).await.unwrap(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    assert!(
        deliveries >= 8,
        "discover, removal batches and verify each delivered twice"
    );
    let run = h.store.get_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let report = run.result.unwrap();
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert_eq!(run.batches_done, run.batches_total);
    let state = h.snapshot();
    assert_eq!(state.sent_mail.len(), 1, "verification ran once");
    let notes: usize = state.tickets.iter().map(|t| t.notes.len()).sum();
    assert_eq!(notes, 1);
    let audit = h.store.audit_records(&run.run_id).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.phase == AuditPhase::Before)
            .count(),
        8
    );
    assert_eq!(
        revoke365::restore::removed_grants(&audit).len(),
        8,
        "every removal stays restorable"
    );
}

/// A mailbox whose permissions cannot be read does not stop the run: the rest is removed,
/// the mailbox is reported, and the run cannot claim success.
#[tokio::test]
async fn an_unreadable_mailbox_is_reported_and_the_rest_still_removed() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"unreadable_mailboxes": ["finance@acmecorp.com"]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let run = h.run(request()).await;
    assert_eq!(
        run.status,
        RunStatus::CompletedWithErrors,
        "{:?}",
        run.failure
    );
    let report = run.result.unwrap();
    assert!(!report.success);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.starts_with("finance@acmecorp.com could not be read")),
        "{:?}",
        report.errors
    );
    assert_eq!(
        report.removal_summary.total_permissions_removed, 7,
        "all but the unseen finance@ grant"
    );
    assert_eq!(
        h.snapshot().direct_grants_of(JOHN),
        vec![("finance@acmecorp.com".to_string(), FULL_ACCESS)]
    );
}

/// A removal batch whose every delivery fails transiently is given up: its grants are reported
/// failed and the run still verifies, reports and notifies.
#[tokio::test]
async fn a_removal_batch_that_never_succeeds_is_reported_not_lost() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let queue = h.engine.queue.clone();
    let run = intake(h.store.as_ref(), queue.as_ref(), &request(), None)
        .await
        .unwrap()
        .run;
    // Discovery and its scan shards, until the removal batches are queued.
    let mut batches = Vec::new();
    while batches.is_empty() {
        for m in queue.drain().await {
            if matches!(m.step, Step::Remove(_)) {
                batches.push(m);
                continue;
            }
            dispatch(
                h.store.as_ref(),
                queue.as_ref(),
                h.connector.as_ref(),
                &NoProgress,
                &m,
                &Delivery::local(),
            )
            .await
            .unwrap();
        }
    }
    assert!(batches.len() >= 4, "removal batches queued");
    // The Send on Behalf batch's last delivery fails (as after three throttled tries): it is
    // abandoned the way the engine and the Lambda handler abandon it. The others go through.
    for m in &batches {
        let is_send_on_behalf = serde_json::to_string(m)
            .unwrap()
            .contains("\"send_on_behalf\"");
        if is_send_on_behalf {
            let err = revoke365::StepError::Remote(revoke365::RemoteError::new(
                "exchange",
                "Set-Mailbox",
                revoke365::error::ErrorKind::Throttled {
                    status: 503,
                    attempts: 2,
                    retry_after: None,
                },
            ));
            abandon(
                h.store.as_ref(),
                queue.as_ref(),
                h.connector.as_ref(),
                &m.run_id,
                Some(&m.step),
                &format!("gave up after 3 tries: {err}"),
            )
            .await;
        } else {
            dispatch(
                h.store.as_ref(),
                queue.as_ref(),
                h.connector.as_ref(),
                &NoProgress,
                m,
                &Delivery::local(),
            )
            .await
            .unwrap();
        }
    }
    h.engine.run_until_idle().await;
    let run = h.store.get_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    let report = run.result.unwrap();
    assert_eq!(report.removal_summary.total_permissions_removed, 7);
    let sob = &report.permissions_removed.send_on_behalf[0];
    assert!(
        !sob.removed && sob.error.as_deref().unwrap().contains("removal abandoned"),
        "{sob:?}"
    );
    assert_eq!(report.verification.remaining_send_on_behalf, 1);
    assert_eq!(
        h.snapshot().sent_mail.len(),
        1,
        "the requestor is still told"
    );
}
