//! The whole job on the Acme tenant: every step, real HTTP against the simulator, the
//! embedded queue and store.

use revoke365::model::{AuditPhase, AuditResult, RunStatus};
use revoke365::ports::AuditTrail;
use revoke365_sim::snapshot::{FULL_ACCESS, SEND_AS};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::results::Grant;
use revoke365_testkit::{fast_http, fixture, RunResult};
use serde_json::json;

const JOHN: &str = "john.smith@acmecorp.com";

fn request() -> serde_json::Value {
    json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr.manager@acmecorp.com", "reason": "Leaver"})
}

#[tokio::test]
async fn removes_every_grant_verifies_reports_and_audits() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let before = h.snapshot();
    let others_before = before.direct_grants_of("jane.doe@acmecorp.com");
    assert!(
        !others_before.is_empty(),
        "fixture gives other users grants too"
    );

    let run = h.run(request()).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.failure);
    let report = run.result.clone().unwrap();
    let v = serde_json::to_value(&report).unwrap();
    // The result as it goes on the wire: a renamed field fails here.
    let wire = RunResult::from_value(&v);

    assert!(wire.success);
    let summary = &wire.removal_summary;
    assert_eq!(summary.user_email, JOHN);
    assert_eq!(summary.user_display_name, "John Smith");
    assert_eq!(summary.company, "Acme Corp");
    let p = &wire.permissions_removed;
    let mailboxes_of =
        |entries: &[Grant]| -> Vec<String> { entries.iter().map(|e| e.mailbox.clone()).collect() };
    assert_eq!(
        mailboxes_of(&p.full_access),
        ["ceo@acmecorp.com", "finance@acmecorp.com"]
    );
    assert_eq!(mailboxes_of(&p.send_as), ["info@acmecorp.com"]);
    assert_eq!(mailboxes_of(&p.send_on_behalf), ["sales@acmecorp.com"]);
    assert_eq!(mailboxes_of(&p.calendar_delegates), ["ceo@acmecorp.com"]);
    assert_eq!(
        p.calendar_delegates[0].access_level.as_deref(),
        Some("Editor")
    );
    assert_eq!(p.calendar_delegates[0].permission, "CalendarDelegate");
    assert_eq!(p.full_access[0].permission, "FullAccess");
    let shared: Vec<&str> = p
        .shared_mailboxes
        .iter()
        .map(|s| s.mailbox.as_str())
        .collect();
    assert_eq!(shared, ["billing@acmecorp.com", "support@acmecorp.com"]);
    let billing = &p.shared_mailboxes[0];
    assert!(billing.removed);
    let billing_rights: Vec<&str> = billing
        .permissions
        .iter()
        .map(|x| x.permission.as_str())
        .collect();
    assert_eq!(billing_rights, ["FullAccess", "SendAs"]);
    for entry in [
        &p.full_access,
        &p.send_as,
        &p.send_on_behalf,
        &p.calendar_delegates,
    ]
    .into_iter()
    .flatten()
    {
        assert!(entry.removed, "{entry:?}");
    }
    // 2 Full Access + 1 Send As + 1 Send on Behalf + 1 calendar + support FA + billing FA/SendAs.
    assert_eq!(summary.total_permissions_removed, 8);
    assert_eq!(
        v["verification"],
        json!({"verified": true, "remaining_full_access": 0, "remaining_send_as": 0, "remaining_folder_permissions": 0,
               "remaining_send_on_behalf": 0, "remaining_calendar_delegates": 0,
               "remaining_shared_mailboxes": 0, "all_permissions_cleared": true, "remaining": []})
    );
    assert_eq!(report.indirect_access, vec![]);

    // The tenant: none of John's grants left; everyone else's untouched.
    let after = h.snapshot();
    assert_eq!(after.direct_grants_of(JOHN), vec![]);
    assert_eq!(
        after.direct_grants_of("jane.doe@acmecorp.com"),
        others_before
    );

    // The PSA: a ticket was created on the org's board with exactly one note holding the report.
    let ticket_id = report.ticket_id.clone().expect("ticket created");
    let ticket = after.ticket(&ticket_id).expect("ticket in PSA");
    assert_eq!(ticket.board, "Service Desk");
    assert_eq!(ticket.notes.len(), 1);
    let note = &ticket.notes[0].text;
    assert!(
        note.contains("SUCCESS")
            && note.contains("ceo@acmecorp.com")
            && note.contains("Grants removed: 8"),
        "{note}"
    );

    // The email: one, to the requestor and the org's recipients, HTML body + text attachment.
    let mail = &after.sent_mail;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].from, "automation@acmecorp.com");
    assert_eq!(
        mail[0].to,
        ["hr.manager@acmecorp.com", "secops@msp.example"]
    );
    assert_eq!(mail[0].content_type, "HTML");
    assert!(mail[0].body.contains("<table"));
    assert!(mail[0].attachments[0].content.contains("Grants removed: 8"));

    // The audit trail: a before-state and an outcome per grant, then the verification.
    let audit = h.store.audit_records(&run.run_id).await.unwrap();
    let befores = audit
        .iter()
        .filter(|r| r.phase == AuditPhase::Before)
        .count();
    let removed = audit
        .iter()
        .filter(|r| r.phase == AuditPhase::Outcome && r.result == Some(AuditResult::Removed))
        .count();
    assert_eq!((befores, removed), (8, 8));
    assert!(audit
        .iter()
        .all(|r| r.requested_by.as_deref() == Some("hr.manager@acmecorp.com")));
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.phase == AuditPhase::Verification)
            .count(),
        1
    );
    assert!(
        h.store.audit_path(&run.run_id).exists(),
        "audit trail is on disk"
    );
}

#[tokio::test]
async fn an_existing_ticket_gets_the_note_and_no_ticket_is_created() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let tickets_before = h.snapshot().tickets.len();
    let mut body = request();
    body["ticket_id"] = json!("48213");
    let report = h.report(body).await;
    assert!(report.success);
    assert_eq!(report.ticket_id.as_deref(), Some("48213"));
    let state = h.snapshot();
    assert_eq!(state.tickets.len(), tickets_before);
    let notes = &state.ticket("48213").expect("ticket 48213").notes;
    assert_eq!(notes.len(), 1);
    // Who asked and why reach the existing ticket too (§2).
    let note = &notes[0].text;
    assert!(
        note.contains("Requested by: hr.manager@acmecorp.com") && note.contains("Reason: Leaver"),
        "{note}"
    );
}

#[tokio::test]
async fn scope_flags_limit_what_is_removed() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let mut body = request();
    body["permission_types"] = json!(["full_access"]);
    body["remove_from_shared"] = json!(false);
    let report = h.report(body).await;
    assert!(report.success, "{report:?}");
    assert_eq!(report.removal_summary.total_permissions_removed, 2);
    let skipped: Vec<_> = report.skipped.iter().map(|s| s.mailbox.as_str()).collect();
    assert_eq!(skipped, ["billing@acmecorp.com", "support@acmecorp.com"]);
    let left = h.snapshot().direct_grants_of(JOHN);
    assert!(left.contains(&("support@acmecorp.com".into(), FULL_ACCESS)));
    assert!(left.contains(&("billing@acmecorp.com".into(), FULL_ACCESS)));
    assert!(left.contains(&("info@acmecorp.com".into(), SEND_AS)));
    assert!(!left.contains(&("ceo@acmecorp.com".into(), FULL_ACCESS)));

    // One mailbox only.
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let mut body = request();
    body["target_mailboxes"] = json!(["ceo@acmecorp.com"]);
    let report = h.report(body).await;
    assert_eq!(
        report.removal_summary.total_permissions_removed, 2,
        "FA + calendar on ceo@"
    );
    let left = h.snapshot().direct_grants_of(JOHN);
    assert!(left.iter().all(|(m, _)| m != "ceo@acmecorp.com"));
    assert_eq!(left.len(), 6);
}

#[tokio::test]
async fn dry_run_changes_nothing_and_reports_what_would_go() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let before = h.snapshot().mailboxes;
    let mut body = request();
    body["dry_run"] = json!(true);
    let run = h.run(body).await;
    let report = run.result.unwrap();
    let v = serde_json::to_value(&report).unwrap();
    let wire = RunResult::from_value(&v);
    assert_eq!(
        h.snapshot().mailboxes,
        before,
        "dry run left the tenant as it was"
    );
    assert!(wire.success);
    assert!(wire.dry_run);
    assert_eq!(wire.removal_summary.total_permissions_removed, 0);
    assert_eq!(
        v["permissions_removed"]["full_access"][0],
        json!({"mailbox": "ceo@acmecorp.com", "permission": "FullAccess", "removed": false, "would_remove": true})
    );
    assert_eq!(
        wire.permissions_removed.shared_mailboxes[0].would_remove,
        Some(true)
    );
    // The verification block describes the tenant as it is.
    assert_eq!(wire.verification.remaining_full_access, 2);
    assert_eq!(wire.verification.remaining_shared_mailboxes, 3);
    assert!(!wire.verification.all_permissions_cleared);
}

#[tokio::test]
async fn psa_failure_is_recorded_and_does_not_undo_removals() {
    let h = Harness::start(
        revoke365_testkit::with_sim(fixture("acme-tenant.json"), json!({"psa_fail": true})),
        fast_http(10),
    )
    .await;
    let run = h.run(request()).await;
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    let report = run.result.unwrap();
    assert!(!report.success);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert!(report.verification.all_permissions_cleared);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("PSA ticket could not be created")),
        "{:?}",
        report.errors
    );
    let state = h.snapshot();
    assert_eq!(state.direct_grants_of(JOHN), vec![]);
    // The email still goes out, and says what failed.
    assert!(state.sent_mail[0]
        .body
        .contains("PSA ticket could not be created"));
}
