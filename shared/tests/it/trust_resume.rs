//! Runs stopped before their end go on from the on-disk store, and what the first release
//! wrote (its audit trail and result files) still loads, resumes and restores.

use revoke365::adapters::sqlite_store::{read_audit_file, SqliteRunStore};
use revoke365::model::{
    AuditPhase, AuditResult, Grant, ItemStatus, PermissionType, Report, Run, RunId, RunStatus,
};
use revoke365::ports::{AuditTrail, RemovalOutcome, RunItems, RunRecords};
use revoke365::steps::Connector;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const COMPLETED: &str = "e2530dd0-7cea-4369-b7fd-3ac60da22142";
const KILLED: &str = "afaed426-278c-4fda-9156-b28439443535";

fn release_1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/release-1")
}

/// Copies a first-release run's files into the store's directory, as an upgrade finds them.
fn copy_run(store: &SqliteRunStore, run_id: &str) {
    for entry in std::fs::read_dir(release_1()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(run_id) {
            std::fs::copy(entry.path(), store.dir().join(&name)).unwrap();
        }
    }
}

fn john() -> serde_json::Value {
    json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"})
}

#[tokio::test]
async fn a_completed_run_of_the_first_release_loads_and_its_unproven_audit_restores_nothing() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    copy_run(&h.store, COMPLETED);
    let id = RunId(COMPLETED.into());
    let run = h.store.get_run(&id).await.unwrap().expect("the run loads");
    assert_eq!(run.status, RunStatus::Completed);
    let written: Report = serde_json::from_slice(
        &std::fs::read(release_1().join(format!("{COMPLETED}.result.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        run.result.as_ref(),
        Some(&written),
        "its result, as written"
    );
    assert_eq!(run.request.user_email, "john.smith@acmecorp.com");
    let items = h.store.items(&id).await.unwrap();
    assert_eq!(items.len(), 8);
    assert!(items.iter().all(|i| i.status.is_removed()), "{items:?}");
    // Loaded once, it is in the database: a later store finds it without the import.
    let again = SqliteRunStore::open(h.store.dir(), vec![h.org.clone()]).unwrap();
    assert_eq!(
        again.get_run(&id).await.unwrap().unwrap().status,
        RunStatus::Completed
    );

    // Its audit trail names every grant it removed, but nothing proves it (no chains, no
    // sealed manifest): a restore, which grants access, is not made from it.
    assert_eq!(
        revoke365::restore::removed_grants(&h.store.audit_records(&id).await.unwrap()).len(),
        8
    );
    let initial = h.snapshot().mailboxes;
    let report = h.report(john()).await;
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let removed = h.snapshot().mailboxes;
    assert_ne!(removed, initial);
    let restore = h.restore(&id, json!({"include_revoked": true})).await;
    let failure = restore.failure.expect("refused");
    assert_eq!(failure.code.as_str(), "audit_untrusted");
    assert_eq!(failure.field.as_deref(), Some("run_id"));
    assert!(failure.message.contains("unchained"), "{}", failure.message);
    assert_eq!(h.snapshot().mailboxes, removed, "nothing was granted");
}

/// Removes `g` through the real clients, outside any run (as an admin would).
async fn remove_directly(h: &Harness, g: &Grant) {
    let conns = h.connector.connect(&h.org).await.unwrap();
    let tenant = conns.tenant();
    let outcome = match g.right {
        PermissionType::FullAccess => {
            tenant
                .exchange
                .remove_full_access(&g.mailbox, &g.trustee)
                .await
        }
        PermissionType::SendAs => {
            tenant
                .exchange
                .remove_send_as(&g.mailbox, g.recipient_type.as_deref(), &g.trustee)
                .await
        }
        PermissionType::SendOnBehalf => {
            tenant
                .exchange
                .remove_send_on_behalf(&g.mailbox, &g.trustee)
                .await
        }
        PermissionType::Calendar => {
            let id = &g.calendar.as_ref().unwrap().permission_id;
            tenant
                .directory
                .remove_calendar_permission(&g.mailbox, id)
                .await
        }
        PermissionType::Folder => {
            let folder = &g.folder.as_ref().unwrap().path;
            tenant
                .folders
                .remove_folder_permission(&g.mailbox, folder, &g.trustee)
                .await
        }
    };
    assert!(
        matches!(outcome, Ok(RemovalOutcome::Removed)),
        "{g:?}: {outcome:?}"
    );
}

/// Removes, through the real clients, the grants the killed run's audit says were removed:
/// the tenant as the first release left it.
async fn replay_removals(h: &Harness, audit: &Path) -> usize {
    let mut n = 0;
    let records = read_audit_file(audit).unwrap();
    for r in records
        .iter()
        .filter(|r| r.phase == AuditPhase::Outcome && r.result == Some(AuditResult::Removed))
    {
        remove_directly(h, r.grant.as_ref().unwrap()).await;
        n += 1;
    }
    n
}

#[tokio::test]
async fn a_killed_run_of_the_first_release_resumes_to_one_report_of_the_whole_run() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    copy_run(&h.store, KILLED);
    let id = RunId(KILLED.into());
    // An upgraded machine's next start finds it by user and company, before anyone names it.
    let upgraded = SqliteRunStore::open(h.store.dir(), vec![h.org.clone()]).unwrap();
    let found = upgraded
        .resumable_runs("acme", "john.smith@acmecorp.com")
        .unwrap();
    assert_eq!(
        found.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
        vec![&id]
    );
    drop(upgraded);
    assert_eq!(replay_removals(&h, &h.store.audit_path(&id)).await, 3);
    let run = h.store.get_run(&id).await.unwrap().expect("the run loads");
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(
        run.interruption.as_ref().map(|i| i.during),
        Some(RunStatus::Removing)
    );
    assert!(h.store.is_resumable(&run));
    let waiting = h
        .store
        .resumable_runs("acme", "John.Smith@acmecorp.com")
        .unwrap();
    assert_eq!(waiting.len(), 1, "found by user and company");

    let run = h.engine.resume(&id).await.expect("resumes");
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.failure);
    let report = run.result.unwrap();
    assert!(report.success, "{report:?}");
    assert_eq!(report.run_id, KILLED);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert!(report.verification.all_permissions_cleared);
    // Each grant has one removal outcome: the three from before, five from the resumed part.
    let records = h.store.audit_records(&id).await.unwrap();
    let removed: Vec<_> = records
        .iter()
        .filter(|r| r.phase == AuditPhase::Outcome && r.result == Some(AuditResult::Removed))
        .collect();
    assert_eq!(removed.len(), 8);
    // The note covers the whole run.
    let snapshot = h.snapshot();
    let note = &snapshot.tickets.last().unwrap().notes.last().unwrap().text;
    for mailbox in [
        "ceo@acmecorp.com",
        "billing@acmecorp.com",
        "sales@acmecorp.com",
        "info@acmecorp.com",
    ] {
        assert!(note.contains(mailbox), "the note names {mailbox}: {note}");
    }
    assert!(
        h.engine.resume(&id).await.is_err(),
        "a finished run is not resumed"
    );
}

#[tokio::test]
async fn a_stopped_engine_leaves_the_run_interrupted_and_resume_removes_the_rest_once() {
    let slow = with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 60}));
    let h = Harness::start(slow, fast_http(1)).await;
    let run = stopped_after_two_removals(&h).await;
    let removed_before = h
        .store
        .items(&run.run_id)
        .await
        .unwrap()
        .iter()
        .filter(|i| i.status.is_removed())
        .count();
    assert!((2..8).contains(&removed_before), "{removed_before}");
    let partial = revoke365::engine::partial_report(h.store.as_ref(), &run)
        .await
        .unwrap();
    assert_eq!(partial.status, RunStatus::Interrupted);
    assert_eq!(
        partial.removal_summary.total_permissions_removed as usize,
        removed_before
    );

    // A fresh engine (a new process) resumes it.
    let engine = h.fresh_engine();
    let run = engine.resume(&run.run_id).await.unwrap();
    let report = run.result.unwrap();
    assert!(report.success, "{report:?}");
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert_eq!(removal_calls(&h), 7, "no grant removed twice");
}

/// Runs John's revocation and stops it (Ctrl-C) once the audit shows two removals; the
/// run as the stop left it.
async fn stopped_after_two_removals(h: &Harness) -> Run {
    let stop = h.engine.stop.clone();
    let watcher = async {
        loop {
            let removed = h.audited_removals();
            if removed >= 2 {
                stop.stop("interrupted by the test");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let body = john();
    let (run, ()) = tokio::join!(h.engine.run(&body, None), watcher);
    let run = run.unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    run
}

/// One request in flight per service: when Ctrl-C comes, the grants whose `before` record is
/// written but whose call waits its turn are refused unsent. An admin then removes one of
/// them; the resumed run finds it gone — already gone, not removed by this run: the audit
/// says no removal of it, and a restore of the run does not add it back.
#[tokio::test]
async fn a_grant_whose_call_was_never_sent_and_is_gone_on_resume_is_not_this_runs_removal() {
    let slow = with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 60}));
    let h = Harness::start(slow, fast_http(1)).await;
    let run = stopped_after_two_removals(&h).await;
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let items = h.store.items(&run.run_id).await.unwrap();
    // Calls already sent finished before the run stopped: a pending item with a `before`
    // record is one whose call was never sent.
    let unsent = items
        .iter()
        .find(|i| {
            i.status == ItemStatus::Pending
                && records
                    .iter()
                    .any(|r| r.item_id == Some(i.id) && r.phase == AuditPhase::Before)
        })
        .expect("an item with its intent written but its call not sent")
        .clone();
    assert!(
        records
            .iter()
            .any(|r| r.item_id == Some(unsent.id) && r.phase == AuditPhase::NotSent),
        "the audit says its call was not sent"
    );
    let removed_before = items.iter().filter(|i| i.status.is_removed()).count();
    let initial = h.snapshot().mailboxes;
    remove_directly(&h, &unsent.grant).await;

    let run = h.fresh_engine().resume(&run.run_id).await.unwrap();
    let report = run.result.clone().unwrap();
    assert!(report.verification.all_permissions_cleared, "{report:?}");
    let items = h.store.items(&run.run_id).await.unwrap();
    let item = items.iter().find(|i| i.id == unsent.id).unwrap();
    assert!(
        matches!(item.status, ItemStatus::AlreadyGone { .. }),
        "already gone, not removed by this run: {:?}",
        item.status
    );
    let by_this_run = items
        .iter()
        .filter(|i| i.status == ItemStatus::Removed)
        .count();
    assert_eq!(by_this_run, 7, "every grant but the admin's");
    assert!(by_this_run > removed_before);
    let noted: Vec<_> = report
        .entries()
        .filter(|(_, _, e)| {
            e.note
                .as_deref()
                .is_some_and(|n| n.starts_with("already gone"))
        })
        .map(|(mailbox, _, e)| (mailbox.to_string(), e.permission.clone()))
        .collect();
    assert_eq!(
        noted,
        [(
            unsent.grant.mailbox.clone(),
            unsent.grant.right.report_name().to_string()
        )]
    );
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let outcomes: Vec<_> = records
        .iter()
        .filter(|r| r.item_id == Some(unsent.id) && r.phase == AuditPhase::Outcome)
        .map(|r| r.result)
        .collect();
    assert_eq!(outcomes, [Some(AuditResult::AlreadyGone)]);

    // The restore puts back what this run removed, not the admin's removal.
    let restore = h
        .fresh_engine()
        .restore_watched(
            Some(revoke365_testkit::harness::OPERATOR),
            &run.run_id,
            &json!({}),
            None,
            |_| {},
        )
        .await
        .expect("restore accepted");
    let summary = restore
        .restore_result
        .unwrap_or_else(|| panic!("{:?} {:?}", restore.status, restore.failure));
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.restored.len(), 7);
    let after = h.snapshot();
    let john_now: Vec<_> = after.direct_grants_of("john.smith@acmecorp.com");
    assert_eq!(john_now.len(), 7, "{john_now:?}");
    assert!(
        !john_now
            .iter()
            .any(|(mailbox, kind)| *mailbox == unsent.grant.mailbox
                && *kind == snapshot_kind(unsent.grant.right)),
        "the admin's removal stays: {john_now:?}"
    );
    assert_ne!(after.mailboxes, initial);
}

/// Ctrl-C comes while a removal's first answer is on its way and that answer is lost (a 504
/// after the write took effect): the retry is not sent, and the call says its request may
/// have been carried out — never "not sent", which would let a resume take the grant's
/// absence for someone else's doing.
#[tokio::test]
async fn a_stop_before_retrying_a_write_that_may_have_taken_effect_is_not_called_unsent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"latency_ms": 200, "faults": [{
            "endpoint": "exo Remove-MailboxPermission",
            "identity": "ceo@acmecorp.com",
            "answer": "504_after_write"
        }]}),
    );
    let h = Harness::start(fx, fast_http(1)).await;
    let conns = h.connector.connect(&h.org).await.unwrap();
    let tenant = conns.tenant();
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let removal = revoke365::steps::stoppable(
        flag.clone(),
        tenant
            .exchange
            .remove_full_access("ceo@acmecorp.com", "john.smith@acmecorp.com"),
    );
    let ctrl_c = async {
        while h.snapshot().requests("exo Remove-MailboxPermission") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        flag.store(true, Ordering::SeqCst);
    };
    let (outcome, ()) = tokio::join!(removal, ctrl_c);
    let err = outcome.expect_err("the answer was lost and the retry not sent");
    assert!(!err.is_stopped(), "{err:?}");
    assert!(
        err.to_string().contains("may have been carried out"),
        "{err}"
    );
    assert_eq!(
        h.snapshot().requests("exo Remove-MailboxPermission"),
        1,
        "no retry was sent"
    );
    assert!(
        !h.snapshot()
            .direct_grants_of("john.smith@acmecorp.com")
            .contains(&("ceo@acmecorp.com".to_string(), "full_access")),
        "the first attempt took effect"
    );
}

/// The simulator snapshot's name of a permission type.
fn snapshot_kind(right: PermissionType) -> &'static str {
    use revoke365_sim::snapshot::{CALENDAR, FOLDER, FULL_ACCESS, SEND_AS, SEND_ON_BEHALF};
    match right {
        PermissionType::FullAccess => FULL_ACCESS,
        PermissionType::SendAs => SEND_AS,
        PermissionType::SendOnBehalf => SEND_ON_BEHALF,
        PermissionType::Calendar => CALENDAR,
        PermissionType::Folder => FOLDER,
    }
}

/// Removal requests the simulator has seen (send on behalf is a Set-Mailbox, not counted).
fn removal_calls(h: &Harness) -> u64 {
    h.snapshot()
        .counters
        .requests
        .iter()
        .filter(|(k, _)| k.contains("Remove-") || k.contains("DELETE calendarPermissions"))
        .map(|(_, v)| *v)
        .sum()
}

/// `POST /revocations/{id}/cancel` against the emulators: the run stops before its next
/// removal batch, ends `cancelled`, and its note and email say what was removed and what was
/// left in place.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_stops_between_batches_and_reports_what_was_removed() {
    use crate::aws_kit::{Env, JOHN};
    use revoke365::lambda::steps::handle_step_records;

    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (status, accepted) = env
        .http(
            "POST",
            "/revocations",
            Some(json!({"user_email": JOHN, "company_id": "acme"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    // Discovery to its end: the removal batches are queued.
    let (discovery_url, discovery) = &env.steps[0];
    while let Some((event, handles)) = env.receive(discovery_url).await {
        let failed: Vec<String> = handle_step_records(discovery, event.clone(), env.deadline())
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        env.settle(discovery_url, &event, &handles, &failed).await;
    }
    assert_eq!(env.get(&run_id).await["status"], "removing");
    // One batch removes its grants; then the caller cancels.
    assert!(env.deliver_one(1).await.is_empty());
    let removed_first = 8 - env.sim.snapshot().direct_grants_of(JOHN).len();
    assert!((1..8).contains(&removed_first), "{removed_first}");
    let (status, body) = env
        .http("POST", &format!("/revocations/{run_id}/cancel"), None, None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["cancel_requested"], true);
    env.pump_steps(1).await;

    let run = env.get(&run_id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let result = &run["result"];
    assert_eq!(result["success"], false);
    assert_eq!(
        result["removal_summary"]["total_permissions_removed"],
        removed_first as u64
    );
    let left = env.sim.snapshot().direct_grants_of(JOHN).len();
    assert_eq!(left, 8 - removed_first, "nothing removed after the cancel");
    let skipped = result["skipped"].as_array().unwrap();
    assert!(
        skipped.len() >= left
            && skipped
                .iter()
                .all(|s| s["reason"].as_str().unwrap().contains("cancelled")),
        "{skipped:?}"
    );
    let snapshot = env.sim.snapshot();
    let note = &snapshot.tickets.last().unwrap().notes.last().unwrap().text;
    assert!(note.to_lowercase().contains("cancelled"), "{note}");
    let mail = &snapshot.sent_mail.last().unwrap().body;
    assert!(mail.to_lowercase().contains("cancelled"), "{mail}");

    let (status, body) = env
        .http("POST", &format!("/revocations/{run_id}/cancel"), None, None)
        .await;
    assert_eq!(status, 409, "a finished run is not cancelled: {body}");
    let (status, _) = env
        .http("POST", "/revocations/nope/cancel", None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_run_stopped_during_discovery_starts_discovery_again_on_resume() {
    let slow = with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 40}));
    let h = Harness::start(slow, fast_http(2)).await;
    let stop = h.engine.stop.clone();
    let store = h.store.clone();
    let body = john();
    let watcher = async {
        loop {
            // Stop while discovery reads the mailboxes, before any removal.
            let discovering = rusqlite::Connection::open(store.db_path())
                .and_then(|db| {
                    db.query_row(
                        "SELECT COUNT(*) FROM runs WHERE status = 'discovering'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or(0)
                > 0;
            if discovering {
                stop.stop("interrupted by the test");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (run, ()) = tokio::join!(h.engine.run(&body, None), watcher);
    let run = run.unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(
        run.interruption.as_ref().map(|i| i.during),
        Some(RunStatus::Discovering)
    );
    assert_eq!(removal_calls(&h), 0, "nothing removed during discovery");
    let run = h.fresh_engine().resume(&run.run_id).await.unwrap();
    let report = run
        .result
        .clone()
        .unwrap_or_else(|| panic!("{:?} {:?}", run.status, run.failure));
    assert!(report.success, "{report:?}");
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    assert_eq!(removal_calls(&h), 7);
    assert!(
        !h.store.dir().join(format!("{}.lock", run.run_id)).exists(),
        "a finished run leaves no lock file"
    );
}
