//! The real tenant (`events/real-tenant.json`): what production tenants do that a small
//! simulator does not. Send As on groups and on an entry a lookup by trustee misses, trustees
//! shown as `DOMAIN\sam`, GUID or SID, a user named by mail or proxy address, a mail user with
//! Send on Behalf, permanent 500s, one-off 502/504/"concurrent requests" answers, a write whose
//! answer is lost, reads that lag a removal, tokens revoked mid-run, per-service caps.

use revoke365::config::Recheck;
use revoke365::model::{
    AuditPhase, AuditResult, FailureCode, IndirectAccess, MatchedBy, NotCheckedReason,
    PermissionType, Report, RunStatus,
};
use revoke365::ports::AuditTrail;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const PETER: &str = "peter.gibbons@initech.onmicrosoft.com";
const LOOKALIKE: &str = "peter.gibbons2@initech.onmicrosoft.com";
const BOB: &str = "bob.slydell@initech.onmicrosoft.com";

fn real() -> Value {
    fixture("real-tenant.json")
}

fn request(user: &str) -> Value {
    json!({"user_email": user, "company_id": "initech", "ticket_id": "4101", "requested_by": "hr@initech.com"})
}

/// (mailbox, removed) of every entry of one type in the report.
fn entries(report: &Report, right: PermissionType) -> Vec<(String, bool)> {
    let p = &report.permissions_removed;
    let list = match right {
        PermissionType::FullAccess => &p.full_access,
        PermissionType::SendAs => &p.send_as,
        PermissionType::SendOnBehalf => &p.send_on_behalf,
        PermissionType::Calendar => &p.calendar_delegates,
        PermissionType::Folder => &p.folder_permissions,
    };
    list.iter()
        .map(|e| (e.mailbox.clone(), e.removed))
        .collect()
}

fn pairs(items: &[(&str, bool)]) -> Vec<(String, bool)> {
    items.iter().map(|(m, r)| (m.to_string(), *r)).collect()
}

#[tokio::test]
async fn every_direct_grant_is_found_removed_and_verified_whatever_the_tenant_does() {
    let h = Harness::start(real(), fast_http(64)).await;
    let before = h.snapshot();
    let lookalike_before = before.direct_grants_of(LOOKALIKE);
    let bob_before = before.direct_grants_of(BOB);
    let lumbergh_before = before.direct_grants_of("lumbergh@initech.com");

    // The operator types Peter's mail address, which is not his UPN.
    let run = h.run(request("peter@initech.com")).await;
    assert_eq!(
        run.status,
        RunStatus::CompletedWithErrors,
        "{:?}",
        run.failure
    );
    let report = run.result.clone().unwrap();
    let resolved = report.resolved_user.clone().expect("resolved_user");
    assert_eq!(
        (resolved.upn.as_str(), resolved.matched_by),
        (PETER, MatchedBy::Mail)
    );

    assert_eq!(
        entries(&report, PermissionType::FullAccess),
        pairs(&[
            ("ceo@initech.com", true),
            ("finance@initech.com", true),
            ("it@initech.com", true),
            ("legal@initech.com", false),
        ])
    );
    assert_eq!(
        entries(&report, PermissionType::SendAs),
        pairs(&[
            ("allstaff@initech.com", true),
            ("info@initech.com", true),
            ("project-x@initech.com", true),
            ("sales@initech.com", true),
        ])
    );
    let types: Vec<Option<&str>> = report
        .permissions_removed
        .send_as
        .iter()
        .map(|e| e.recipient_type.as_deref())
        .collect();
    assert_eq!(
        types,
        [
            Some("MailUniversalDistributionGroup"),
            Some("UserMailbox"),
            Some("GroupMailbox"),
            Some("UserMailbox")
        ],
        "Send As on groups is listed under send_as with its recipient type"
    );
    assert_eq!(
        entries(&report, PermissionType::SendOnBehalf),
        pairs(&[("sales@initech.com", true)])
    );
    assert_eq!(
        entries(&report, PermissionType::Calendar),
        pairs(&[("ceo@initech.com", true)])
    );
    let shared: Vec<&str> = report
        .permissions_removed
        .shared_mailboxes
        .iter()
        .map(|s| s.mailbox.as_str())
        .collect();
    assert_eq!(
        shared,
        ["support@initech.com"],
        "only SharedMailbox is shared"
    );
    assert_eq!(report.removal_summary.total_permissions_removed, 10);
    assert_eq!(
        report.indirect_access,
        [
            IndirectAccess {
                mailbox: "finance@initech.com".into(),
                permission: "FullAccess".into(),
                via: "group Initech Security".into()
            },
            IndirectAccess {
                mailbox: "reports@initech.com".into(),
                permission: "SendAs".into(),
                via: "group TPS Reports".into()
            },
        ]
    );

    // The tenant: everything of Peter's is gone but the grant on the mailbox that refuses every
    // change; nobody else's grant was touched.
    let after = h.snapshot();
    assert_eq!(
        after.direct_grants_of(PETER),
        [("legal@initech.com".to_string(), "full_access")]
    );
    assert_eq!(after.direct_grants_of(LOOKALIKE), lookalike_before);
    assert_eq!(after.direct_grants_of(BOB), bob_before);
    assert_eq!(
        after.direct_grants_of("lumbergh@initech.com"),
        lumbergh_before
    );
    assert_eq!(report.verification.remaining_full_access, 1);
    assert!(!report.verification.all_permissions_cleared && !report.success);

    // Failures are Exchange's text only, each once; the transient answers left no trace.
    let legal = &report.permissions_removed.full_access[3];
    assert_eq!(
        legal.error.as_deref(),
        Some("Access to mailbox 'legal@initech.com' is denied.")
    );
    assert_eq!(
        report.errors,
        [
            "finance@initech.com could not be read: The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            "FullAccess on legal@initech.com: Access to mailbox 'legal@initech.com' is denied.",
            // Read neither in discovery nor on re-read: never called cleared.
            "calendar could not be checked for this user: finance@initech.com could not be read in discovery or on re-read",
        ],
        "{:#?}",
        report.errors
    );
    // Five Full Access removals, the one on ceo@ sent twice (its first answer was lost); the
    // permanently failing mailbox was tried exactly once.
    assert_eq!(after.requests("exo Remove-MailboxPermission"), 6);
    assert_eq!(
        after.counters.injected_faults, 4,
        "every scripted fault fired"
    );
    assert!(
        after.counters.tokens_revoked >= 1,
        "tokens were revoked mid-run"
    );

    // The write whose answer was lost counts as removed by this run, and is restorable.
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let outcome = |mailbox: &str, right: PermissionType| {
        records
            .iter()
            .find(|r| {
                r.phase == AuditPhase::Outcome
                    && r.grant
                        .as_ref()
                        .is_some_and(|g| g.mailbox == mailbox && g.right == right)
            })
            .unwrap_or_else(|| panic!("outcome of {right} on {mailbox}"))
    };
    let ceo = outcome("ceo@initech.com", PermissionType::FullAccess);
    assert_eq!(ceo.result, Some(AuditResult::Removed));
    assert!(
        ceo.detail
            .as_deref()
            .unwrap_or_default()
            .contains("answer was lost"),
        "{:?}",
        ceo.detail
    );
    assert_eq!(
        outcome("legal@initech.com", PermissionType::FullAccess).result,
        Some(AuditResult::Failed)
    );
    let allstaff = outcome("allstaff@initech.com", PermissionType::SendAs);
    assert_eq!(allstaff.result, Some(AuditResult::Removed));

    // One note on the ticket, one email: nothing sent twice.
    assert_eq!(after.notes_of("4101").len(), 1);
    assert_eq!(after.sent_mail.len(), 1);
    let note = &after.notes_of("4101")[0].text;
    assert!(note.contains("allstaff@initech.com"), "{note}");
    assert!(
        !note.contains("Ex6F9304") && !note.contains("Exception"),
        "{note}"
    );
}

#[tokio::test]
async fn a_proxy_address_finds_the_user_and_an_address_two_users_share_is_refused() {
    let h = Harness::start(real(), fast_http(64)).await;
    let mut body = request("pgibbons@initech.com");
    body["dry_run"] = json!(true);
    let report = h.report(body).await;
    let resolved = report.resolved_user.unwrap();
    assert_eq!(
        (resolved.upn.as_str(), resolved.matched_by),
        (PETER, MatchedBy::ProxyAddress)
    );
    assert_eq!(report.permissions_removed.full_access.len(), 4);

    // Two users with one proxy address: refused before anything is read or removed.
    let mut fx = real();
    for user in fx["users"].as_array_mut().unwrap() {
        if user["upn"] == "samir@initech.com" || user["upn"] == "lumbergh@initech.com" {
            user["proxy_addresses"] = json!([
                "SMTP:".to_string() + user["upn"].as_str().unwrap(),
                "smtp:boss@initech.com"
            ]);
        }
    }
    let h = Harness::start(fx, fast_http(64)).await;
    let before = h.snapshot();
    let run = h.run(request("boss@initech.com")).await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert_eq!(failure.code, FailureCode::UserAmbiguous);
    assert_eq!(failure.field.as_deref(), Some("user_email"));
    assert!(
        failure.message.contains("lumbergh@initech.com")
            && failure.message.contains("samir@initech.com"),
        "{}",
        failure.message
    );
    assert_eq!(h.snapshot().mailboxes, before.mailboxes);
}

#[tokio::test]
async fn a_mail_user_without_a_mailbox_loses_its_send_on_behalf() {
    let h = Harness::start(
        with_sim(real(), json!({"rest_disabled_mailboxes": []})),
        fast_http(64),
    )
    .await;
    let report = h.report(request("bob.slydell@consultants.example")).await;
    assert!(report.success, "{:?}", report.errors);
    assert!(report.not_checked.is_empty(), "{:?}", report.not_checked);
    assert_eq!(
        entries(&report, PermissionType::SendOnBehalf),
        pairs(&[("ceo@initech.com", true)])
    );
    assert_eq!(h.snapshot().direct_grants_of(BOB), []);
}

#[tokio::test]
async fn a_disabled_account_is_revoked_like_any_other_and_shown_as_disabled() {
    let fx = with_sim(real(), json!({"faults": [], "rest_disabled_mailboxes": []}));
    let h = Harness::start(fx, fast_http(64)).await;
    let report = h.report(request("milton@initech.com")).await;
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(
        report
            .resolved_user
            .as_ref()
            .and_then(|u| u.account_enabled),
        Some(false)
    );
    assert_eq!(
        entries(&report, PermissionType::FullAccess),
        pairs(&[("lumbergh@initech.com", true)])
    );
    assert_eq!(h.snapshot().direct_grants_of("milton@initech.com"), []);
}

#[tokio::test]
async fn a_type_that_cannot_be_checked_is_listed_and_fails_the_run() {
    // Michael Bolton has no Exchange recipient, and Get-User is refused: nothing gives his DN,
    // so Send on Behalf cannot be looked up. That is said, never skipped silently.
    let fx = with_sim(
        real(),
        // Every mailbox readable: Send on Behalf is the only type left unchecked.
        json!({"forbidden_cmdlets": ["Get-User"], "faults": [], "rest_disabled_mailboxes": []}),
    );
    let h = Harness::start(fx, fast_http(64)).await;
    let report = h.report(request("michael.bolton@initech.com")).await;
    assert_eq!(report.not_checked.len(), 1, "{:?}", report.not_checked);
    let n = &report.not_checked[0];
    assert_eq!(
        (n.permission_type, n.reason),
        (PermissionType::SendOnBehalf, NotCheckedReason::CannotCheck)
    );
    assert!(n
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("distinguished name"));
    assert!(!report.success);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("send_on_behalf could not be checked")),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn out_of_scope_types_are_listed_without_failing_the_run() {
    let h = Harness::start(
        with_sim(real(), json!({"rest_disabled_mailboxes": []})),
        fast_http(64),
    )
    .await;
    let mut body = request("peter@initech.com");
    body["permission_types"] = json!(["calendar"]);
    let report = h.report(body).await;
    assert!(report.success, "{:?}", report.errors);
    let out: BTreeSet<PermissionType> = report
        .not_checked
        .iter()
        .filter(|n| n.reason == NotCheckedReason::OutOfScope)
        .map(|n| n.permission_type)
        .collect();
    assert_eq!(
        out,
        BTreeSet::from([
            PermissionType::FullAccess,
            PermissionType::SendAs,
            PermissionType::SendOnBehalf,
            PermissionType::Folder,
        ])
    );
}

#[tokio::test]
async fn a_removal_that_still_shows_for_a_moment_is_read_again_before_it_is_declared_remaining() {
    // Every read lags a removal by a second. Without a second look, verification would call
    // grants this run removed "still present".
    let quiet = json!({"faults": [], "fail_mailboxes": [], "rest_disabled_mailboxes": [], "read_lag_ms": 1000});
    let no_second_look = Recheck {
        attempts: 0,
        delay: Duration::ZERO,
    };
    let h = Harness::start_with(
        with_sim(real(), quiet.clone()),
        fast_http(64),
        no_second_look,
    )
    .await;
    let hasty = h.report(request("peter@initech.com")).await;
    assert!(!hasty.verification.all_permissions_cleared);
    assert_eq!(
        h.snapshot().direct_grants_of(PETER),
        [],
        "yet the tenant holds nothing"
    );

    let patient = Recheck {
        attempts: 2,
        delay: Duration::from_millis(700),
    };
    let h = Harness::start_with(with_sim(real(), quiet), fast_http(64), patient).await;
    let report = h.report(request("peter@initech.com")).await;
    assert!(
        report.success,
        "{:?} {:?}",
        report.errors, report.verification
    );
    assert_eq!(report.removal_summary.total_permissions_removed, 11);
    assert!(report.verification.all_permissions_cleared);
}

#[tokio::test]
async fn a_cmdlet_the_app_may_not_run_fails_its_grants_once_with_the_reason_from_the_header() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"forbidden_cmdlets": ["Remove-RecipientPermission"]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let report = h
        .report(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"}))
        .await;
    assert!(!report.success);
    let send_as = &report.permissions_removed.send_as[0];
    assert!(!send_as.removed);
    let error = send_as.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Remove-RecipientPermission") && !error.contains('\0'),
        "{error:?}"
    );
    // info@ and billing@ (shared): two Send As grants, each tried once.
    assert_eq!(h.snapshot().requests("exo Remove-RecipientPermission"), 2);
}

#[tokio::test]
async fn caps_the_client_is_told_are_never_exceeded_and_caps_it_is_not_are_learnt() {
    let caps = json!({"faults": [], "read_lag_ms": 0, "revoke_tokens_after": null,
        "exchange_concurrency_cap": 3, "graph_concurrency_cap": 5, "graph_mailbox_concurrency_cap": 4,
        "latency_ms": 20});
    let told = fast_http(64);
    let mut told = told;
    told.exchange.ceiling = 3;
    told.exchange.initial = 3;
    told.graph.ceiling = 5;
    told.graph.initial = 5;
    let h = Harness::start(with_sim(real(), caps.clone()), told).await;
    h.report(request("peter@initech.com")).await;
    let counters = h.snapshot().counters;
    assert_eq!(counters.throttled_429, 0, "{counters:?}");
    assert!(counters.peak_in_flight_exchange <= 3 && counters.peak_in_flight_graph <= 5);

    // Not told: the client starts higher, is throttled, and learns.
    let h = Harness::start(with_sim(real(), caps), fast_http(64)).await;
    let report = h.report(request("peter@initech.com")).await;
    let counters = h.snapshot().counters;
    assert!(counters.throttled_429_exchange > 0, "{counters:?}");
    assert!(
        !report.errors.iter().any(|e| e.contains("throttl")),
        "throttling is waited out, never reported: {:?}",
        report.errors
    );
    let learned = h.connector.core.learned_limits();
    let exchange = learned.iter().find(|(_, s, _)| *s == "exchange").unwrap();
    assert!(
        exchange.2.limit < 8,
        "started at 8 and learnt that it is too much: {:?}",
        exchange.2
    );
}
