//! Idempotent reads ride out one transient failure: a Graph calendar read answered 500
//! `ErrorInternalServerTransientError`, a `Get-MailboxPermission` whose cmdlet failed with a
//! transient exception (or a gateway's 502) is asked again before its mailbox counts as
//! unreadable; a cmdlet's permanent 500 is not.

use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::json;

const JOHN: &str = "john.smith@acmecorp.com";

fn request() -> serde_json::Value {
    json!({"user_email": JOHN, "company_id": "acme"})
}

/// The faults the simulator applied to `endpoint`, as `(identity, answer)`, sorted: one per
/// request that met one.
fn applied(h: &Harness, endpoint: &str) -> Vec<(String, String)> {
    let mut applied: Vec<_> = h
        .snapshot()
        .counters
        .injected_fault_log
        .into_iter()
        .filter(|f| f.endpoint == endpoint)
        .map(|f| (f.identity.unwrap_or_default(), f.answer))
        .collect();
    applied.sort();
    applied
}

#[tokio::test]
async fn a_transient_500_on_one_calendar_read_does_not_cost_that_mailboxs_grant() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [{"endpoint": "graph GET calendarPermissions",
                           "identity": "ceo@acmecorp.com", "answer": "transient_500"}]}),
    );
    let h = Harness::start(fx, fast_http(8)).await;
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let calendar: Vec<_> = report
        .permissions_removed
        .calendar_delegates
        .iter()
        .map(|g| g.mailbox.as_str())
        .collect();
    assert_eq!(calendar, ["ceo@acmecorp.com"]);
    let state = h.snapshot();
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    assert!(
        !state.direct_grants_of("jane.doe@acmecorp.com").is_empty(),
        "only John's grants were removed"
    );
    assert_eq!(
        applied(&h, "graph GET calendarPermissions"),
        [("ceo@acmecorp.com".to_string(), "transient_500".to_string())]
    );
}

#[tokio::test]
async fn transient_cmdlet_failures_and_gateway_errors_on_permission_reads_are_asked_again() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [
            {"endpoint": "exo Get-MailboxPermission", "identity": "finance@acmecorp.com", "answer": "transient_500"},
            {"endpoint": "exo Get-MailboxPermission", "identity": "ceo@acmecorp.com", "answer": "502"}
        ]}),
    );
    let h = Harness::start(fx, fast_http(8)).await;
    let report = h.report(request()).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let mut full_access: Vec<_> = report
        .permissions_removed
        .full_access
        .iter()
        .map(|g| g.mailbox.as_str())
        .collect();
    full_access.sort();
    assert!(
        full_access.contains(&"ceo@acmecorp.com") && full_access.contains(&"finance@acmecorp.com"),
        "{full_access:?}"
    );
    let state = h.snapshot();
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    assert_eq!(
        applied(&h, "exo Get-MailboxPermission"),
        [
            ("ceo@acmecorp.com".to_string(), "502".to_string()),
            (
                "finance@acmecorp.com".to_string(),
                "transient_500".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn a_cmdlets_permanent_500_is_not_asked_again() {
    // Five faults scripted: each retry would take the next one.
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [{"endpoint": "exo Get-MailboxPermission", "identity": "finance@acmecorp.com",
                           "answer": "permanent_500", "times": 5}]}),
    );
    let h = Harness::start(fx, fast_http(8)).await;
    let report = h.report(request()).await;
    assert!(!report.success);
    assert_eq!(report.removal_summary.total_permissions_removed, 7);
    // Unread in discovery, read again by verification, unread again: Full Access unproven.
    assert!(
        matches!(&report.errors[..], [e, unproven]
            if e.starts_with("finance@acmecorp.com could not be read:") && e.contains("couldn't be found")
                && unproven.starts_with("full_access could not be checked")),
        "{:?}",
        report.errors
    );
    // Each read asked once: discovery's and verification's, neither asked again.
    let finance = (
        "finance@acmecorp.com".to_string(),
        "permanent_500".to_string(),
    );
    assert_eq!(
        applied(&h, "exo Get-MailboxPermission"),
        [finance.clone(), finance]
    );
}
