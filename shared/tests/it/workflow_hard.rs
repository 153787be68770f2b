//! The hard tenant: inherited, Deny, SELF and orphaned-SID entries, group grants, two users
//! with one display name, a lookalike, localized calendars, a mailbox that always fails.

use revoke365::model::{GrantEntry, IndirectAccess, RemainingGrant, RunStatus};
use revoke365_sim::snapshot::{MailboxSnapshot, FULL_ACCESS};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
use serde_json::json;

const JOHN: &str = "john.smith@globexcorp.com";

#[tokio::test]
async fn removes_exactly_the_direct_grants_and_reports_the_rest() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.snapshot();
    let lookalike_before = before.direct_grants_of("john.smith2@globexcorp.com");
    let namesake_before = before.direct_grants_of("jsmith.sales@globexcorp.com");

    let run = h.run(json!({"user_email": JOHN, "company_id": "globex", "requested_by": "secops@msp.example"})).await;
    assert_eq!(
        run.status,
        RunStatus::CompletedWithErrors,
        "{:?}",
        run.failure
    );
    let report = run.result.unwrap();
    let p = &report.permissions_removed;
    let entries = |entries: &[GrantEntry]| -> Vec<(String, bool)> {
        entries
            .iter()
            .map(|e| (e.mailbox.clone(), e.removed))
            .collect()
    };
    assert_eq!(
        entries(&p.full_access),
        [
            ("ceo@globexcorp.com".into(), true),
            ("legal@globexcorp.com".into(), false)
        ]
    );
    assert!(
        p.full_access[1]
            .error
            .as_deref()
            .unwrap()
            .contains("denied"),
        "{:?}",
        p.full_access[1]
    );
    assert_eq!(entries(&p.send_as), []);
    assert_eq!(
        entries(&p.send_on_behalf),
        [("sales@globexcorp.com".into(), true)]
    );
    assert_eq!(
        entries(&p.calendar_delegates),
        [
            ("ceo@globexcorp.com".into(), true),
            ("cfo@globexcorp.com".into(), true)
        ]
    );
    assert_eq!(
        p.calendar_delegates[0].access_level.as_deref(),
        Some("Editor")
    );
    assert_eq!(
        p.calendar_delegates[1].access_level.as_deref(),
        Some("Reviewer")
    );
    assert_eq!(p.shared_mailboxes.len(), 1);
    assert_eq!(p.shared_mailboxes[0].mailbox, "info@globexcorp.com");
    assert_eq!(p.shared_mailboxes[0].permissions.len(), 2);
    assert_eq!(report.removal_summary.total_permissions_removed, 6);

    let indirect = |mailbox: &str, permission: &str, via: &str| IndirectAccess {
        mailbox: mailbox.into(),
        permission: permission.into(),
        via: via.into(),
    };
    assert_eq!(
        report.indirect_access,
        vec![
            indirect("ceo@globexcorp.com", "FullAccess", "inheritance"),
            indirect("cfo@globexcorp.com", "FullAccess", "group Finance Team"),
            indirect("cfo@globexcorp.com", "SendAs", "group Finance Team"),
        ]
    );
    assert_eq!(report.verification.remaining_full_access, 1);
    assert_eq!(
        report.verification.remaining,
        vec![RemainingGrant {
            mailbox: "legal@globexcorp.com".into(),
            permission: "FullAccess".into(),
            shared: false,
            folder: None,
            calendar: None,
        }]
    );
    assert!(!report.success);

    // The tenant: only the failing mailbox still holds a direct grant of John's.
    let after = h.snapshot();
    assert_eq!(
        after.direct_grants_of(JOHN),
        vec![("legal@globexcorp.com".to_string(), FULL_ACCESS)]
    );
    // Lookalike and namesake untouched; inherited, Deny, SID and group entries untouched.
    assert_eq!(
        after.direct_grants_of("john.smith2@globexcorp.com"),
        lookalike_before
    );
    assert_eq!(
        after.direct_grants_of("jsmith.sales@globexcorp.com"),
        namesake_before
    );
    let mailbox = |state: &revoke365_sim::Snapshot, upn: &str| -> MailboxSnapshot {
        state
            .mailbox(upn)
            .unwrap_or_else(|| panic!("no mailbox {upn}"))
            .clone()
    };
    for upn in [
        "ceo@globexcorp.com",
        "cfo@globexcorp.com",
        "hr@globexcorp.com",
    ] {
        let (b, a) = (mailbox(&before, upn), mailbox(&after, upn));
        let untouched = |m: &MailboxSnapshot| {
            m.full_access
                .iter()
                .filter(|g| g.user != JOHN || g.inherited || g.deny)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(untouched(&a), untouched(&b), "{upn}");
        let deny_send_as = |m: &MailboxSnapshot| m.send_as.iter().filter(|g| g.deny).count();
        assert_eq!(deny_send_as(&a), deny_send_as(&b), "{upn}");
    }
    // The user's own mailbox is never touched.
    assert_eq!(mailbox(&after, JOHN), mailbox(&before, JOHN));

    // Ticket note and email say what failed and what is indirect.
    let ticket_id = report.ticket_id.as_deref().expect("ticket created");
    let ticket = after.ticket(ticket_id).expect("ticket in PSA");
    let note = &ticket.notes[0].text;
    assert!(
        note.contains("ACTION NEEDED")
            && note.contains("legal@globexcorp.com")
            && note.contains("FAILED"),
        "{note}"
    );
    assert!(note.contains("via group Finance Team"), "{note}");
    let mail = &after.sent_mail[0];
    assert!(mail.subject.contains("ACTION NEEDED"));
    assert!(mail.body.contains("legal@globexcorp.com"));
}

#[tokio::test]
async fn unknown_user_or_lookalike_only_fails_before_any_removal() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.snapshot();
    // john.smyth@ does not exist; john.smith@ and john.smith2@ are only lookalikes.
    let run = h
        .run(json!({"user_email": "john.smyth@globexcorp.com", "company_id": "globex"}))
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert!(failure.code.is_bad_input());
    assert_eq!(failure.field.as_deref(), Some("user_email"));
    assert!(
        failure.message.contains("john.smyth@globexcorp.com")
            && failure.message.contains("not found")
    );
    let after = h.snapshot();
    assert_eq!(after.mailboxes, before.mailboxes);
    // No silent failure: the one email says what failed.
    assert_eq!(after.sent_mail.len(), 1);
    assert!(after.sent_mail[0].subject.contains("FAILED"));
    let mutations: u64 = after
        .counters
        .requests
        .iter()
        .filter(|(k, _)| k.contains("Remove-") || k.contains("DELETE") || k.contains("Set-Mailbox"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(mutations, 0);
}

#[tokio::test]
async fn target_mailbox_outside_the_tenant_fails_before_any_removal() {
    let h = Harness::start(fixture("hard-tenant.json"), fast_http(10)).await;
    let before = h.snapshot().mailboxes;
    let run = h.run(json!({"user_email": JOHN, "company_id": "globex", "target_mailboxes": ["ceo@globexcorp.com", "ceo@othercorp.com"]})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let failure = run.failure.unwrap();
    assert_eq!(failure.field.as_deref(), Some("target_mailboxes"));
    assert!(failure.message.contains("ceo@othercorp.com"));
    assert_eq!(h.snapshot().mailboxes, before);
}
