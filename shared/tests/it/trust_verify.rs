//! Verification claims only what it read: a mailbox discovery could not read is read again,
//! one read by neither is never "cleared", and a grant shown two ways counts once.

use revoke365::model::{NotCheckedReason, PermissionType, Report, RunStatus};
use revoke365_sim::snapshot::FULL_ACCESS;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";
const FINANCE: &str = "finance@acmecorp.com";

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme"})
}

/// The fixture's mailbox `upn`, to change.
fn mailbox<'a>(fx: &'a mut Value, upn: &str) -> &'a mut Value {
    fx["mailboxes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["upn"] == upn)
        .unwrap()
}

async fn report_of(h: &Harness) -> Report {
    let run = h.run(request()).await;
    assert_eq!(
        run.status,
        RunStatus::CompletedWithErrors,
        "{:?}",
        run.failure
    );
    run.result.unwrap()
}

/// Discovery's read of finance@'s Full Access fails once (a permanent-looking 403): the run
/// plans nothing there, but verification reads it again and finds John's grant.
#[tokio::test]
async fn a_mailbox_discovery_could_not_read_is_read_again_and_its_grant_reported() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [{
            "endpoint": "exo Get-MailboxPermission",
            "identity": FINANCE,
            "answer": "500",
            "status": 403,
            "times": 1
        }]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let report = report_of(&h).await;
    assert_eq!(report.removal_summary.total_permissions_removed, 7);
    assert_eq!(
        h.snapshot().direct_grants_of(JOHN),
        vec![(FINANCE.to_string(), FULL_ACCESS)],
        "the grant discovery never saw is still there"
    );
    let v = &report.verification;
    assert!(!v.all_permissions_cleared, "{v:?}");
    assert_eq!(v.remaining_full_access, 1, "{v:?}");
    assert_eq!(v.remaining.len(), 1);
    assert_eq!(v.remaining[0].mailbox, FINANCE);
    assert!(!report.success);
    assert!(report.residual_access);
}

/// finance@ cannot be read at all: discovery and verification both fail on it, so its types
/// are unproven — never "cleared" — though nothing the run found is left.
#[tokio::test]
async fn a_mailbox_read_neither_in_discovery_nor_on_re_read_leaves_its_types_unproven() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"unreadable_mailboxes": [FINANCE]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let report = report_of(&h).await;
    assert_eq!(report.removal_summary.total_permissions_removed, 7);
    assert_eq!(
        h.snapshot().direct_grants_of(JOHN),
        vec![(FINANCE.to_string(), FULL_ACCESS)]
    );
    let v = &report.verification;
    assert!(v.remaining.is_empty(), "nothing the run saw is left: {v:?}");
    assert!(!v.all_permissions_cleared, "unproven is not cleared: {v:?}");
    for unproven in [PermissionType::FullAccess, PermissionType::Calendar] {
        let n = report
            .not_checked
            .iter()
            .find(|n| n.permission_type == unproven)
            .unwrap_or_else(|| panic!("{unproven} in not_checked: {:?}", report.not_checked));
        assert_eq!(n.reason, NotCheckedReason::CannotCheck);
        assert!(n.detail.as_deref().unwrap().contains(FINANCE), "{n:?}");
    }
    assert!(!report.success);
    assert!(report.residual_access);
}

/// finance@ lists John's Full Access twice, once by UPN and once by object id, and ignores
/// removals: the re-read's two entries are one grant, counted once as they are listed once.
#[tokio::test]
async fn a_grant_shown_by_upn_and_by_object_id_counts_once_in_remaining() {
    let mut fx = fixture("acme-tenant.json");
    mailbox(&mut fx, FINANCE)["full_access"]
        .as_array_mut()
        .unwrap()
        .push(json!({"user": JOHN, "shown_as": "guid"}));
    let fx = with_sim(fx, json!({"noop_remove_mailboxes": [FINANCE]}));
    let h = Harness::start(fx, fast_http(10)).await;
    let shown_twice = |h: &Harness| {
        h.snapshot()
            .mailboxes
            .iter()
            .find(|m| m.upn == FINANCE)
            .unwrap()
            .full_access
            .iter()
            .filter(|a| a.user.eq_ignore_ascii_case(JOHN))
            .count()
    };
    assert_eq!(shown_twice(&h), 2, "the fixture shows the grant twice");
    let report = report_of(&h).await;
    assert_eq!(shown_twice(&h), 2, "the removal had no effect");
    let v = &report.verification;
    assert_eq!(v.remaining.len(), 1, "{v:?}");
    assert_eq!(v.remaining[0].mailbox, FINANCE);
    assert_eq!(v.remaining_full_access, 1, "{v:?}");
    let counted = v.remaining_full_access
        + v.remaining_send_as
        + v.remaining_send_on_behalf
        + v.remaining_calendar_delegates
        + v.remaining_shared_mailboxes;
    assert_eq!(counted as usize, v.remaining.len());
    assert!(!v.all_permissions_cleared);
}
