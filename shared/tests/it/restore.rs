//! Undo: a restore run puts back exactly what a run removed, through the same steps, and
//! proves it by re-reading the tenant.

use revoke365::model::{
    AuditPhase, AuditResult, RestoreReport, Run, RunId, RunKind, RunStatus, ALREADY_PRESENT,
    AUTOMAPPING_NOTE,
};
use revoke365::ports::{AuditTrail, RunRecords};
use revoke365::steps::IntakeError;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::json;

const PETER: &str = "peter.gibbons@initech.onmicrosoft.com";

fn restored(run: &Run) -> &RestoreReport {
    assert_eq!(run.kind(), RunKind::Restore);
    run.restore_result.as_ref().unwrap_or_else(|| {
        panic!(
            "restore ended {:?} without a result: {:?}",
            run.status, run.failure
        )
    })
}

#[tokio::test]
async fn run_then_restore_leaves_the_tenant_as_it_was_and_a_second_restore_finds_everything_there()
{
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let run = h
        .run(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme", "ticket_id": "48213"}))
        .await;
    let removed = run
        .result
        .as_ref()
        .unwrap()
        .removal_summary
        .total_permissions_removed;
    assert!(removed > 0);
    assert_ne!(h.snapshot().mailboxes, initial.mailboxes);

    let first = h
        .restore(
            &run.run_id,
            json!({"requested_by": "hr@acmecorp.com", "reason": "rehired"}),
        )
        .await;
    let r = restored(&first);
    assert!(r.success, "{r:#?}");
    assert_eq!(first.status, RunStatus::Completed);
    assert_eq!(r.restored_from, run.run_id.to_string());
    assert_eq!(r.restored.len() as u32, removed);
    assert!(
        r.restored.iter().all(|e| e.restored && e.note.is_none()),
        "{r:#?}"
    );
    assert!(r.failed.is_empty() && r.skipped.is_empty());
    assert!(r.verification.all_restored);
    assert_eq!(r.ticket_id.as_deref(), Some("48213"));
    assert!(r.notes.iter().any(|n| n == AUTOMAPPING_NOTE));
    assert_eq!(
        h.snapshot().mailboxes,
        initial.mailboxes,
        "the tenant is as it was"
    );

    // Its own audit trail: an intent and a `restore` outcome per grant.
    let records = h.store.audit_records(&first.run_id).await.unwrap();
    let outcomes: Vec<_> = records
        .iter()
        .filter(|r| r.phase == AuditPhase::Restore)
        .collect();
    assert_eq!(outcomes.len() as u32, removed);
    assert!(outcomes
        .iter()
        .all(|r| r.result == Some(AuditResult::Restored)
            && r.action
                .as_deref()
                .is_some_and(|a| a.starts_with("restore_"))));
    // The note went on the original ticket, and the requestor got the email.
    let state = h.snapshot();
    let ticket = state.tickets.iter().find(|t| t.id == "48213").unwrap();
    assert!(ticket
        .notes
        .iter()
        .any(|n| n.text.contains(&first.run_id.to_string()) && n.text.contains("restore")));
    assert!(state
        .sent_mail
        .iter()
        .any(|m| m.subject.contains("restored") && m.to.iter().any(|t| t == "hr@acmecorp.com")));

    // Again: nothing changes, and everything is reported as present already.
    let second = h.restore(&run.run_id, json!({})).await;
    let r2 = restored(&second);
    assert!(r2.success, "{r2:#?}");
    assert_eq!(r2.restored.len() as u32, removed);
    assert!(
        r2.restored
            .iter()
            .all(|e| e.restored && e.note.as_deref() == Some(ALREADY_PRESENT)),
        "{r2:#?}"
    );
    assert_eq!(h.snapshot().mailboxes, initial.mailboxes);
}

#[tokio::test]
async fn restore_on_the_real_tenant_brings_back_group_send_as_and_the_lost_answer_write_and_nothing_else(
) {
    let h = Harness::start(fixture("real-tenant.json"), fast_http(64)).await;
    let before = h.snapshot();
    let others = |s: &revoke365_sim::Snapshot| {
        [
            "bob.slydell@initech.onmicrosoft.com",
            "lumbergh@initech.com",
        ]
        .map(|u| s.direct_grants_of(u))
    };
    let run = h
        .run(json!({"user_email": "peter@initech.com", "company_id": "initech", "ticket_id": "4101"}))
        .await;
    let report = run.result.clone().unwrap();
    // The run removed Send As on a group and the Full Access whose answer was lost.
    assert!(report.permissions_removed.send_as.iter().any(|e| e.removed
        && e.recipient_type
            .as_deref()
            .is_some_and(|t| t.contains("Group"))));
    assert!(report
        .permissions_removed
        .full_access
        .iter()
        .any(|e| e.mailbox == "ceo@initech.com" && e.removed));
    let after_run = h.snapshot().direct_grants_of(PETER);
    assert_ne!(after_run, before.direct_grants_of(PETER));

    let restore = h.restore(&run.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(r.failed.is_empty(), "{r:#?}");
    assert!(r.verification.all_restored, "{r:#?}");
    let mut now = h.snapshot().direct_grants_of(PETER);
    let mut then = before.direct_grants_of(PETER);
    now.sort();
    then.sort();
    assert_eq!(now, then, "every grant the run removed is back");
    assert_eq!(
        others(&h.snapshot()),
        others(&before),
        "nobody else's access changed"
    );
    assert!(r
        .restored
        .iter()
        .any(|e| e.mailbox == "ceo@initech.com" && e.permission == "FullAccess"));
    assert!(r.restored.iter().any(|e| e
        .recipient_type
        .as_deref()
        .is_some_and(|t| t.contains("Group"))));
}

#[tokio::test]
async fn a_restore_narrowed_to_types_and_mailboxes_puts_back_only_those() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let user = "john.smith@acmecorp.com";
    let run = h
        .run(json!({"user_email": user, "company_id": "acme"}))
        .await;
    let gone = h.snapshot().direct_grants_of(user);
    let removed: Vec<_> = initial
        .direct_grants_of(user)
        .into_iter()
        .filter(|g| !gone.contains(g))
        .collect();
    let (mailbox, kind) = removed
        .iter()
        .find(|(_, k)| *k == revoke365_sim::snapshot::SEND_AS)
        .cloned()
        .expect("the run removed a Send As grant");
    let restore = h
        .restore(
            &run.run_id,
            json!({"permission_types": ["send_as"], "target_mailboxes": [mailbox]}),
        )
        .await;
    let r = restored(&restore);
    assert!(r.success, "{r:#?}");
    assert_eq!(r.restored.len(), 1, "{r:#?}");
    let back = h.snapshot().direct_grants_of(user);
    assert_eq!(back.len(), gone.len() + 1);
    assert!(back.contains(&(mailbox.clone(), kind)));
}

#[tokio::test]
async fn a_restore_that_cannot_add_a_grant_says_why_and_is_not_successful() {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [{"endpoint": "exo Add-MailboxPermission", "answer": "500", "status": 400, "times": 50}]}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let run = h
        .run(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"}))
        .await;
    let restore = h.restore(&run.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(!r.success);
    assert_eq!(restore.status, RunStatus::CompletedWithErrors);
    assert!(!r.failed.is_empty());
    assert!(r
        .failed
        .iter()
        .all(|f| f.permission == "FullAccess" && !f.error.is_empty()));
    assert_eq!(
        (r.verification.missing_full_access + r.verification.missing_shared_mailboxes) as usize,
        r.failed.len(),
        "{r:#?}"
    );
    assert!(!r.verification.all_restored);
    // The other types came back.
    assert!(r
        .restored
        .iter()
        .all(|e| e.permission != "FullAccess" && e.restored));
    assert!(!r.restored.is_empty());
}

#[tokio::test]
async fn restores_of_what_cannot_be_restored_are_refused_and_create_nothing() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let user = "john.smith@acmecorp.com";
    let dry = h
        .run(json!({"user_email": user, "company_id": "acme", "dry_run": true}))
        .await;
    let live = h
        .run(json!({"user_email": user, "company_id": "acme"}))
        .await;
    let left = h.snapshot().direct_grants_of(user);
    let restore = h.restore(&live.run_id, json!({"dry_run": true})).await;
    let r = restored(&restore);
    assert!(r.dry_run && r.success);
    assert_eq!(r.restored.len(), restored_count(&live));
    assert!(r
        .restored
        .iter()
        .all(|e| !e.restored && e.would_restore == Some(true)));
    assert_eq!(
        h.snapshot().direct_grants_of(user),
        left,
        "a dry run adds nothing"
    );

    let refuse = |e: IntakeError| match e {
        IntakeError::Conflict(why) => why,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let engine = &h.engine;
    let attempt = |id: RunId| async move {
        engine
            .restore_watched(
                Some(revoke365_testkit::harness::OPERATOR),
                &id,
                &json!({}),
                None,
                |_| {},
            )
            .await
            .map(drop)
    };
    let why = refuse(attempt(dry.run_id.clone()).await.unwrap_err());
    assert!(why.to_string().contains("dry run"), "{why}");
    let why = refuse(attempt(restore.run_id.clone()).await.unwrap_err());
    assert!(why.to_string().contains("is itself a restore"), "{why}");
    // A run still in progress, and one made on a tenant the company no longer points at.
    let mut pending = Run::new(live.request.clone());
    pending.status = RunStatus::Removing;
    h.store.create_run(&pending).await.unwrap();
    let why = refuse(attempt(pending.run_id.clone()).await.unwrap_err());
    assert!(why.to_string().contains("has not ended"), "{why}");
    let mut elsewhere = Run::new(live.request.clone());
    elsewhere.status = RunStatus::Completed;
    elsewhere.tenant_id = Some("00000000-0000-0000-0000-000000000000".into());
    h.store.create_run(&elsewhere).await.unwrap();
    let why = refuse(attempt(elsewhere.run_id.clone()).await.unwrap_err());
    assert_eq!(why.field, "company_id");
    assert!(matches!(
        attempt(RunId("no-such-run".into())).await.unwrap_err(),
        IntakeError::RunNotFound(_)
    ));
    assert!(matches!(
        h.engine
            .restore_watched(Some(revoke365_testkit::harness::OPERATOR), &live.run_id, &json!({"include_revoke": true}), None, |_| {})
            .await
            .unwrap_err(),
        IntakeError::Invalid(e) if e.field == "include_revoke"
    ));
}

fn restored_count(run: &Run) -> usize {
    run.result
        .as_ref()
        .unwrap()
        .removal_summary
        .total_permissions_removed as usize
}

#[tokio::test]
async fn grants_of_a_user_revoked_again_later_are_skipped_unless_included() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let user = "john.smith@acmecorp.com";
    let body = json!({"user_email": user, "company_id": "acme"});
    let first = h.run(body.clone()).await;
    assert!(restored(&h.restore(&first.run_id, json!({})).await).success);
    // Offboarded again later.
    let second = h
        .engine
        .run(
            &json!({"user_email": user, "company_id": "acme", "reason": "left again"}),
            None,
        )
        .await
        .unwrap();
    assert!(second.result.as_ref().unwrap().success);
    assert_ne!(second.run_id, first.run_id);
    let left = h.snapshot().direct_grants_of(user);

    let restore = h.restore(&first.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(r.restored.is_empty(), "{r:#?}");
    assert_eq!(r.skipped.len(), restored_count(&first));
    assert!(r
        .skipped
        .iter()
        .all(|s| s.reason.contains(&second.run_id.to_string())
            && s.reason.contains("include_revoked")));
    assert_eq!(
        h.snapshot().direct_grants_of(user),
        left,
        "nothing was put back"
    );

    let restore = h
        .restore(&first.run_id, json!({"include_revoked": true}))
        .await;
    let r = restored(&restore);
    assert!(r.success && r.skipped.is_empty(), "{r:#?}");
    assert_eq!(h.snapshot().mailboxes, initial.mailboxes);
}

#[tokio::test]
async fn a_restore_notes_the_runs_halo_ticket_and_without_a_psa_says_why_there_is_no_ticket() {
    let h = Harness::start(fixture("acme-halo-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let run = h
        .run(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"}))
        .await;
    let ticket = run.result.as_ref().unwrap().ticket_id.clone().unwrap();
    let restore = h.restore(&run.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(r.success, "{r:#?}");
    assert_eq!(r.ticket_id.as_deref(), Some(ticket.as_str()));
    let after = h.snapshot();
    assert_eq!(after.mailboxes, initial.mailboxes);
    let notes = &after.ticket(&ticket).unwrap().notes;
    assert_eq!(notes.len(), 2, "the run's note and the restore's");
    assert!(notes[1].text.contains(&restore.run_id.to_string()));

    let mut tenant = fixture("acme-tenant.json");
    tenant["organization"]["psa_kind"] = json!("none");
    let h = Harness::start(tenant, fast_http(10)).await;
    let initial = h.snapshot();
    let run = h
        .run(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"}))
        .await;
    let restore = h.restore(&run.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(r.success && r.errors.is_empty(), "{r:#?}");
    assert_eq!(r.ticket_id, None);
    assert!(r.no_ticket.is_some());
    let after = h.snapshot();
    assert_eq!(after.mailboxes, initial.mailboxes);
    let mail = after.mail_to("secops@msp.example");
    assert_eq!(mail.len(), 2, "the run's report and the restore's");
    assert!(mail[1].body.contains("none ("), "{}", mail[1].body);
}

/// The acme tenant with the CEO's mailbox known by another primary address than its UPN, as a
/// renamed mailbox is: runs record it by `carol.chen@acmecorp.com`.
fn acme_with_renamed_ceo() -> serde_json::Value {
    let mut tenant = fixture("acme-tenant.json");
    let ceo = tenant["users"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["upn"] == "ceo@acmecorp.com")
        .unwrap();
    ceo["mail"] = json!("carol.chen@acmecorp.com");
    ceo["proxy_addresses"] = json!(["SMTP:carol.chen@acmecorp.com", "smtp:cc@acmecorp.com"]);
    tenant
}

#[tokio::test]
async fn a_restore_finds_a_mailbox_by_any_of_its_names_and_refuses_one_the_run_removed_nothing_on()
{
    let h = Harness::start(acme_with_renamed_ceo(), fast_http(10)).await;
    let user = "john.smith@acmecorp.com";
    let run = h
        .run(json!({"user_email": user, "company_id": "acme"}))
        .await;
    let on_ceo = |h: &Harness| {
        h.snapshot()
            .direct_grants_of(user)
            .into_iter()
            .filter(|(m, _)| m == "carol.chen@acmecorp.com" || m == "ceo@acmecorp.com")
            .count()
    };
    assert_eq!(on_ceo(&h), 0);
    let removed_on_ceo = run
        .result
        .as_ref()
        .unwrap()
        .permissions_removed
        .full_access
        .iter()
        .filter(|e| e.mailbox == "carol.chen@acmecorp.com")
        .count();
    assert_eq!(removed_on_ceo, 1, "the run recorded the primary address");

    // A typo: refused with the field and what the run did remove on; nothing put back.
    let before = h.snapshot().mailboxes;
    let typo = h
        .restore(
            &run.run_id,
            json!({"target_mailboxes": ["ceo@acmecorp.co"]}),
        )
        .await;
    assert_eq!(typo.status, RunStatus::Failed);
    assert!(typo.restore_result.is_none());
    let failure = typo.failure.as_ref().expect("a refusal");
    assert_eq!(failure.field.as_deref(), Some("mailbox"));
    assert!(failure.code.is_bad_input());
    for named in [
        "ceo@acmecorp.co",
        "carol.chen@acmecorp.com",
        "info@acmecorp.com",
    ] {
        assert!(failure.message.contains(named), "{}", failure.message);
    }
    assert_eq!(h.snapshot().mailboxes, before, "nothing was restored");

    // Named by its UPN, by a proxy address: the grants on it come back, and only those.
    for name in ["CEO@acmecorp.com", "cc@acmecorp.com"] {
        let restore = h
            .restore(&run.run_id, json!({"target_mailboxes": [name]}))
            .await;
        let r = restored(&restore);
        assert!(r.success, "{name}: {r:#?}");
        assert!(!r.restored.is_empty(), "{name}: {r:#?}");
        assert!(r
            .restored
            .iter()
            .all(|e| e.mailbox == "carol.chen@acmecorp.com"));
        assert_eq!(on_ceo(&h), r.restored.len(), "{name}");
        assert!(r.left_out[0].contains("other grant(s)"), "{r:#?}");
    }
}

#[tokio::test]
async fn a_later_run_that_removed_nothing_or_was_a_dry_run_does_not_block_the_restore() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let user = "john.smith@acmecorp.com";
    let first = h
        .run(json!({"user_email": user, "company_id": "acme"}))
        .await;
    // Later: a run refused for a mistyped mailbox, and a dry run.
    let refused = h
        .run(json!({"user_email": user, "company_id": "acme", "target_mailboxes": ["ceo@acmecorp.co"]}))
        .await;
    assert_eq!(refused.status, RunStatus::Failed);
    let dry = h
        .run(json!({"user_email": user, "company_id": "acme", "dry_run": true}))
        .await;
    assert!(dry.result.as_ref().unwrap().success);

    let restore = h.restore(&first.run_id, json!({})).await;
    let r = restored(&restore);
    assert!(r.success && r.skipped.is_empty(), "{r:#?}");
    assert_eq!(r.restored.len(), restored_count(&first));
    assert_eq!(
        h.snapshot().mailboxes,
        initial.mailboxes,
        "every grant is back"
    );
}

#[tokio::test]
async fn only_the_grants_a_later_run_removed_again_are_skipped() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let user = "john.smith@acmecorp.com";
    let first = h
        .run(json!({"user_email": user, "company_id": "acme"}))
        .await;
    assert!(restored(&h.restore(&first.run_id, json!({})).await).success);
    // Later, only the CEO's mailbox is taken away again.
    let second = h
        .run(json!({"user_email": user, "company_id": "acme", "target_mailboxes": ["ceo@acmecorp.com"]}))
        .await;
    let again = restored_count(&second);
    assert!(again > 0);
    let left = h.snapshot().direct_grants_of(user);

    let restore = h.restore(&first.run_id, json!({})).await;
    let r = restored(&restore);
    assert_eq!(r.skipped.len(), again, "{r:#?}");
    assert!(r
        .skipped
        .iter()
        .all(|s| s.mailbox == "ceo@acmecorp.com" && s.reason.contains(&second.run_id.to_string())));
    assert_eq!(r.restored.len(), restored_count(&first) - again, "{r:#?}");
    assert!(r.restored.iter().all(|e| e.mailbox != "ceo@acmecorp.com"));
    assert_eq!(
        h.snapshot().direct_grants_of(user),
        left,
        "the CEO's mailbox stays revoked"
    );
}
