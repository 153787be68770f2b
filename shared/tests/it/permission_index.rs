//! The permission index over real HTTP against the simulator: a sweep indexes exactly the
//! tenant's grants, `access` answers from it without a tenant call, `--live` and a contain run
//! catch a grant made after the sweep, and a contain run removes the indexed grants first.

use revoke365::index::{lookup, sweep, AccessQuery, Change};
use revoke365::model::{IndexSettings, PermissionType, Snapshot, TrusteeKind};
use revoke365::ports::{AuditTrail, Connector, NoProgress, PermissionIndex, RunRecords};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const JOHN: &str = "john.smith@acmecorp.com";

/// What the index tests ask of the harness (the invariant check too).
pub(crate) trait IndexHarness {
    async fn take(&self) -> Snapshot;
    async fn sweep(&self) -> Snapshot;
    async fn swept_review(&self, inactive_days: Option<u32>) -> revoke365::index::Review;
    fn requests(&self) -> u64;
}

impl IndexHarness for Harness {
    /// A snapshot of the tenant, not stored.
    async fn take(&self) -> Snapshot {
        let conns = self.connector.connect(&self.org).await.unwrap();
        sweep(conns.tenant(), &self.org, &NoProgress, &BTreeMap::new)
            .await
            .expect("sweep")
    }

    async fn sweep(&self) -> Snapshot {
        let snapshot = self.take().await;
        self.store
            .save_snapshot(&snapshot, &self.org.index)
            .await
            .unwrap();
        snapshot
    }

    /// A sweep of the tenant, then its review.
    async fn swept_review(&self, inactive_days: Option<u32>) -> revoke365::index::Review {
        self.sweep().await;
        let conns = self.connector.connect(&self.org).await.unwrap();
        revoke365::index::review(
            self.store.as_ref(),
            conns.directory.as_ref(),
            &self.org,
            inactive_days,
        )
        .await
        .unwrap()
    }

    fn requests(&self) -> u64 {
        self.snapshot().counters.requests.values().sum()
    }
}

/// A cleanup of `trustee`, which names someone: refused `trustee_exists`, naming the field.
async fn refused_cleanup(
    h: &Harness,
    trustee: &str,
    company: &str,
) -> revoke365::model::RunFailure {
    let run = h
        .run(json!({"mode": "cleanup", "trustee": trustee, "company_id": company}))
        .await;
    let failure = run.failure.expect("refused");
    assert_eq!(
        failure.code.as_str(),
        "trustee_exists",
        "{trustee}: {failure:?}"
    );
    assert_eq!(failure.field.as_deref(), Some("trustee"));
    failure
}

/// (mailbox, type, trustee) of every direct grant the simulator holds, by canonical key.
fn tenant_grants(h: &Harness) -> BTreeSet<(String, PermissionType, String)> {
    let s = h.snapshot();
    let mut out = BTreeSet::new();
    for m in &s.mailboxes {
        for g in m.full_access.iter().filter(|g| !g.inherited && !g.deny) {
            if !g.user.to_ascii_uppercase().starts_with("NT AUTHORITY") && g.user != m.upn {
                out.insert((m.upn.clone(), PermissionType::FullAccess, g.user.clone()));
            }
        }
        for g in m.send_as.iter().filter(|g| !g.inherited && !g.deny) {
            if !g.user.to_ascii_uppercase().starts_with("NT AUTHORITY") {
                out.insert((m.upn.clone(), PermissionType::SendAs, g.user.clone()));
            }
        }
        for d in &m.send_on_behalf {
            out.insert((m.upn.clone(), PermissionType::SendOnBehalf, d.clone()));
        }
        for c in &m.calendar {
            out.insert((m.upn.clone(), PermissionType::Calendar, c.user.clone()));
        }
    }
    out
}

#[tokio::test]
async fn a_sweep_indexes_every_grant_of_the_tenant_and_access_answers_without_a_tenant_call() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let snapshot = h.sweep().await;
    assert!(
        snapshot.summary.errors.is_empty(),
        "{:?}",
        snapshot.summary.errors
    );
    let by_id: BTreeMap<_, _> = snapshot
        .trustees
        .iter()
        .map(|t| (t.trustee_id.clone(), t))
        .collect();
    let indexed: BTreeSet<_> = snapshot
        .grants
        .iter()
        .map(|g| {
            let t = by_id[&g.trustee_id];
            // The simulator keys a group by its name.
            let who = match t.kind {
                TrusteeKind::Group => t.display_name.clone().unwrap(),
                _ => t.name().to_string(),
            };
            (g.mailbox.clone(), g.right, who)
        })
        .collect();
    assert_eq!(
        indexed,
        tenant_grants(&h),
        "the snapshot holds exactly the tenant's grants"
    );
    assert_eq!(snapshot.summary.grants as usize, snapshot.grants.len());
    assert!(snapshot.summary.calls["exchange"] > 0 && snapshot.summary.calls["graph"] > 0);

    // `access --user` reads the index only.
    let before = h.requests();
    let map = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::User(JOHN.into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.requests(), before, "no tenant call without --live");
    assert_eq!(map.as_of, snapshot.summary.taken_at);
    let johns: BTreeSet<_> = map
        .grants
        .iter()
        .map(|e| (e.mailbox.clone(), e.permission))
        .collect();
    let expected: BTreeSet<_> = tenant_grants(&h)
        .into_iter()
        .filter(|(_, _, who)| who == JOHN)
        .map(|(m, t, _)| (m, t))
        .collect();
    assert_eq!(johns, expected);
    assert_eq!(map.grants.len(), 8, "{map:#?}");
    assert!(map
        .grants
        .iter()
        .all(|e| e.trustee == JOHN && e.change.is_none()));
    assert_eq!(map.trustees.len(), 1);
    assert_eq!(map.trustees[0].kind, TrusteeKind::User);
    // The same user by object id finds the same grants.
    let by_id = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::User(map.trustees[0].object_id.clone().unwrap()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(by_id.grants, map.grants);

    // `access --mailbox`: every trustee of the CEO's mailbox.
    let ceo = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::Mailbox("ceo@acmecorp.com".into()),
        None,
    )
    .await
    .unwrap();
    let expected: BTreeSet<_> = tenant_grants(&h)
        .into_iter()
        .filter(|(m, _, _)| m == "ceo@acmecorp.com")
        .map(|(_, t, who)| (t, who))
        .collect();
    let found: BTreeSet<_> = ceo
        .grants
        .iter()
        .map(|e| (e.permission, e.trustee.clone()))
        .collect();
    assert_eq!(found, expected);
    assert_eq!(h.requests(), before);
}

#[tokio::test]
async fn on_the_hard_tenant_access_from_the_index_equals_what_a_live_discovery_finds() {
    let h = Harness::start(fixture("real-tenant.json"), fast_http(10)).await;
    h.sweep().await;
    for user in [
        "peter.gibbons@initech.onmicrosoft.com",
        "lumbergh@initech.com",
        "samir@initech.com",
        "bob.slydell@initech.onmicrosoft.com",
    ] {
        let map = lookup(
            h.store.as_ref(),
            &h.org,
            &AccessQuery::User(user.into()),
            None,
        )
        .await
        .unwrap();
        let indexed: BTreeSet<_> = map
            .grants
            .iter()
            .map(|e| (e.mailbox.clone(), e.permission.report_name().to_string()))
            .collect();
        let dry = h
            .report(json!({"user_email": user, "company_id": "initech", "dry_run": true}))
            .await;
        let found: BTreeSet<_> = dry
            .entries()
            .map(|(mailbox, _, e)| (mailbox.to_string(), e.permission.clone()))
            .collect();
        assert_eq!(indexed, found, "{user}: index vs live discovery");
    }

    // Containing Lumbergh (whose Full Access shows as his SID) removes it from the index's
    // list first, and the live phase finds nothing more.
    let lumbergh = "lumbergh@initech.com";
    let report = h
        .report(json!({"user_email": lumbergh, "company_id": "initech", "mode": "contain"}))
        .await;
    let c = report.containment.as_ref().unwrap();
    assert_eq!(c.indexed_grants, 6, "{c:?}");
    assert_eq!(
        report.removal_summary.total_permissions_removed, 6,
        "{report:#?}"
    );
    // Nothing is left; finance@'s calendar (Graph cannot read it) stays unproven, not cleared.
    assert!(report.verification.remaining.is_empty(), "{report:#?}");
    assert!(!report.verification.all_permissions_cleared);
    let unproven: Vec<_> = report
        .not_checked
        .iter()
        .map(|n| (n.permission_type, n.detail.clone().unwrap_or_default()))
        .collect();
    assert!(
        matches!(&unproven[..], [(revoke365::model::PermissionType::Calendar, detail)] if detail.contains("finance@initech.com")),
        "{unproven:?}"
    );
    let after = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::User(lumbergh.into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        after.grants.len(),
        6,
        "the index is a snapshot: it still lists them"
    );
}

#[tokio::test]
async fn a_grant_made_after_the_sweep_is_caught_by_live_access_and_by_a_contain_run() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let snapshot = h.sweep().await;
    let conns = h.connector.connect(&h.org).await.unwrap();
    // After the sweep John is given Full Access on a mailbox he could not open.
    conns
        .exchange
        .add_full_access("sales@acmecorp.com", JOHN)
        .await
        .unwrap();
    let offline = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::User(JOHN.into()),
        None,
    )
    .await
    .unwrap();
    assert!(!offline
        .grants
        .iter()
        .any(|e| e.mailbox == "sales@acmecorp.com" && e.permission == PermissionType::FullAccess));

    let live = lookup(
        h.store.as_ref(),
        &h.org,
        &AccessQuery::User(JOHN.into()),
        Some(conns.tenant()),
    )
    .await
    .unwrap();
    let new: Vec<_> = live
        .grants
        .iter()
        .filter(|e| e.change == Some(Change::Added))
        .collect();
    assert_eq!(new.len(), 1, "{live:#?}");
    assert_eq!(
        (new[0].mailbox.as_str(), new[0].permission),
        ("sales@acmecorp.com", PermissionType::FullAccess)
    );
    assert_eq!(live.changes["added"], 1);
    assert_eq!(live.changes["removed"], 0);
    assert_eq!(
        live.grants
            .iter()
            .filter(|e| e.change == Some(Change::Unchanged))
            .count(),
        8
    );

    let run = h
        .run(json!({"user_email": JOHN, "company_id": "acme", "mode": "contain", "ticket_id": "48213"}))
        .await;
    let report = run.result.as_ref().unwrap();
    assert!(report.success, "{report:#?}");
    let c = report.containment.as_ref().expect("containment section");
    assert_eq!(
        c.snapshot_id.as_deref(),
        Some(snapshot.summary.snapshot_id.as_str())
    );
    assert_eq!(c.indexed_grants, 8);
    assert!(c.not_used.is_none());
    assert!(c.seconds_to_containment.is_some_and(|s| s >= 0.0));
    // The sessions are revoked before the first indexed grant is touched.
    let sessions = c
        .seconds_to_sessions_revoked
        .expect("sessions revoked first");
    assert!(sessions <= c.seconds_to_containment.unwrap());
    let revoked = report.sessions_revoked_at().unwrap();
    assert!(report.contain_actions.iter().all(|a| a.at >= revoked));
    // Both phases' grants, each once: the 8 indexed and the one made after the sweep.
    assert_eq!(report.removal_summary.total_permissions_removed, 9);
    assert!(report
        .entries()
        .any(|(mailbox, _, e)| e.permission == "FullAccess"
            && mailbox == "sales@acmecorp.com"
            && e.removed));
    assert!(report.verification.all_permissions_cleared);
    assert!(
        !tenant_grants(&h).iter().any(|(_, _, who)| who == JOHN),
        "nothing of John's is left"
    );
    // The indexed grants were removed by the containment phase, with before-states.
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let contained = records
        .iter()
        .filter(|r| {
            r.chain.as_deref() == Some("contain")
                && r.phase == revoke365::model::AuditPhase::Outcome
                && r.result == Some(revoke365::model::AuditResult::Removed)
        })
        .count();
    assert_eq!(contained, 8);

    // And restore puts every one of the nine back.
    let restored = h.restore(&run.run_id, json!({})).await;
    let r = restored.restore_result.as_ref().unwrap();
    assert!(r.success, "{r:#?}");
    assert_eq!(r.restored.len(), 9);
}

#[tokio::test]
async fn a_contain_run_without_a_usable_snapshot_is_a_normal_run_that_says_why() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let report = h
        .report(json!({"user_email": JOHN, "company_id": "acme", "mode": "contain", "ticket_id": "48213"}))
        .await;
    assert!(report.success);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let c = report.containment.as_ref().unwrap();
    assert_eq!(c.indexed_grants, 0);
    assert!(
        c.not_used
            .as_deref()
            .is_some_and(|w| w.contains("no permission-index snapshot")),
        "{c:?}"
    );

    // A snapshot older than max_index_age_days is not used either.
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let mut old = h.take().await;
    old.summary.taken_at -= chrono::Duration::days(8);
    h.store.save_snapshot(&old, &h.org.index).await.unwrap();
    let report = h
        .report(json!({"user_email": JOHN, "company_id": "acme", "mode": "contain", "ticket_id": "48213"}))
        .await;
    assert!(report.success);
    assert_eq!(report.removal_summary.total_permissions_removed, 8);
    let c = report.containment.as_ref().unwrap();
    assert!(
        c.not_used
            .as_deref()
            .is_some_and(|w| w.contains("older than max_index_age_days (7)")),
        "{c:?}"
    );
}

#[tokio::test]
async fn the_store_keeps_the_newest_snapshots_and_those_younger_than_keep_days() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let base = h.take().await;
    let keep = IndexSettings {
        keep_snapshots: 2,
        keep_days: 10,
        ..IndexSettings::default()
    };
    // Taken 40, 30, 8, 5 and 0 days ago.
    for (i, days) in [40, 30, 8, 5, 0].into_iter().enumerate() {
        let mut s = base.clone();
        s.summary.snapshot_id = format!("s{i}");
        s.summary.taken_at = base.summary.taken_at - chrono::Duration::days(days);
        h.store.save_snapshot(&s, &keep).await.unwrap();
    }
    let kept: Vec<String> = h
        .store
        .snapshots("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.snapshot_id)
        .collect();
    // The newest two, and the one of 8 days (younger than 10); not those of 30 and 40 days.
    assert_eq!(kept, ["s4", "s3", "s2"]);
    // A dropped snapshot's grants are gone with it.
    assert!(h.store.everything("s0").await.unwrap().grants.is_empty());
    assert_eq!(
        h.store.everything("s4").await.unwrap().grants.len(),
        base.grants.len()
    );
}

#[tokio::test]
async fn a_review_lists_the_grants_of_disabled_deleted_orphaned_guest_and_external_trustees_and_nothing_else(
) {
    use revoke365::index::ReviewReason;
    let h = Harness::start(fixture("review-tenant.json"), fast_http(10)).await;
    let r = h.swept_review(None).await;
    let listed: BTreeSet<(ReviewReason, String, String, PermissionType)> = r
        .trustees
        .iter()
        .flat_map(|t| {
            t.grants
                .iter()
                .map(move |g| (t.reason, t.trustee.clone(), g.mailbox.clone(), g.permission))
        })
        .collect();
    let expected: BTreeSet<_> = [
        (
            ReviewReason::Disabled,
            "dana.left@acmecorp.com",
            "ceo@acmecorp.com",
            PermissionType::FullAccess,
        ),
        (
            ReviewReason::Disabled,
            "dana.left@acmecorp.com",
            "info@acmecorp.com",
            PermissionType::SendAs,
        ),
        (
            ReviewReason::OrphanedSid,
            "S-1-5-21-1004336348-1177238915-682003330-5001",
            "finance@acmecorp.com",
            PermissionType::FullAccess,
        ),
        (
            ReviewReason::Unresolved,
            "Old Temp Account",
            "support@acmecorp.com",
            PermissionType::FullAccess,
        ),
        (
            ReviewReason::Guest,
            "pat_partner.example#ext#@acmecorp.onmicrosoft.com",
            "sales@acmecorp.com",
            PermissionType::FullAccess,
        ),
        (
            ReviewReason::External,
            "advisor@outside.example",
            "ceo@acmecorp.com",
            PermissionType::Calendar,
        ),
    ]
    .into_iter()
    .map(|(r, t, m, p)| (r, t.to_string(), m.to_string(), p))
    .collect();
    assert_eq!(listed, expected, "{r:#?}");
    assert_eq!(r.grants, 6);
    assert_eq!(r.summary.values().sum::<usize>(), 5);
    assert_eq!(r.summary[&ReviewReason::Disabled], 1);
}

#[tokio::test]
async fn with_inactive_days_a_review_also_lists_users_who_have_not_signed_in_and_skips_it_unlicensed(
) {
    use revoke365::index::ReviewReason;
    // The fixture's sign-ins: it.admin last in March 2025, Jane never, the rest lately.
    let cut_off: chrono::DateTime<chrono::Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let days = (chrono::Utc::now() - cut_off).num_days() as u32;
    let h = Harness::start(fixture("review-tenant.json"), fast_http(10)).await;
    let r = h.swept_review(Some(days)).await;
    let inactive: BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>> = r
        .trustees
        .iter()
        .filter(|t| t.reason == ReviewReason::Inactive)
        .map(|t| (t.trustee.clone(), t.last_sign_in))
        .collect();
    assert_eq!(
        inactive,
        BTreeMap::from([
            (
                "it.admin@acmecorp.com".to_string(),
                Some("2025-03-02T09:00:00Z".parse().unwrap())
            ),
            ("jane.doe@acmecorp.com".to_string(), None),
        ]),
        "{r:#?}"
    );
    // Each with every grant the tenant gives them.
    for t in r
        .trustees
        .iter()
        .filter(|t| t.reason == ReviewReason::Inactive)
    {
        let listed: BTreeSet<_> = t
            .grants
            .iter()
            .map(|g| (g.mailbox.clone(), g.permission))
            .collect();
        let held: BTreeSet<_> = tenant_grants(&h)
            .into_iter()
            .filter(|(_, _, who)| *who == t.trustee)
            .map(|(m, p, _)| (m, p))
            .collect();
        assert_eq!(listed, held, "{}", t.trustee);
        assert!(!listed.is_empty());
    }
    // The disabled account stays under disabled; the other reasons are unchanged.
    assert_eq!(r.summary[&ReviewReason::Disabled], 1);
    assert_eq!(r.summary.values().sum::<usize>(), 7);
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    // A tenant without Entra ID P1: Graph answers 403; the review goes on and says so.
    let mut unlicensed = fixture("review-tenant.json");
    unlicensed["sim"]["unlicensed"] = json!(["signInActivity"]);
    let h = Harness::start(unlicensed, fast_http(10)).await;
    let r = h.swept_review(Some(days)).await;
    assert!(!r.summary.contains_key(&ReviewReason::Inactive));
    assert_eq!(r.summary.values().sum::<usize>(), 5);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("inactive users were not reviewed")
                && n.contains("AuditLog.Read.All")),
        "{:?}",
        r.notes
    );
}

/// (type, trustee) of every direct grant the simulator holds on `mailbox`.
fn grants_on(h: &Harness, mailbox: &str) -> BTreeSet<(PermissionType, String)> {
    tenant_grants(h)
        .into_iter()
        .filter(|(m, _, _)| m == mailbox)
        .map(|(_, t, who)| (t, who))
        .collect()
}

#[tokio::test]
async fn a_backup_restore_puts_a_wiped_mailbox_back_as_the_snapshot_held_it() {
    const BILLING: &str = "billing@acmecorp.com";
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let before = grants_on(&h, BILLING);
    assert_eq!(before.len(), 5, "{before:?}");
    let snapshot = h.sweep().await;
    let id = snapshot.summary.snapshot_id.clone();

    // After the sweep John leaves (a revocation), someone wipes the shared mailbox, and Jane
    // is given Full Access on it.
    let revoked = h
        .report(json!({"user_email": JOHN, "company_id": "acme", "ticket_id": "48213"}))
        .await;
    assert!(revoked.success);
    let conns = h.connector.connect(&h.org).await.unwrap();
    for who in ["finance@acmecorp.com", "it.admin@acmecorp.com"] {
        conns
            .exchange
            .remove_full_access(BILLING, who)
            .await
            .unwrap();
    }
    conns
        .exchange
        .remove_send_as(BILLING, Some("SharedMailbox"), "Finance Team")
        .await
        .unwrap();
    conns
        .exchange
        .add_full_access(BILLING, "jane.doe@acmecorp.com")
        .await
        .unwrap();
    assert_eq!(
        grants_on(&h, BILLING),
        BTreeSet::from([(
            PermissionType::FullAccess,
            "jane.doe@acmecorp.com".to_string()
        )])
    );

    // Refused, nothing created: no snapshot that old, a mailbox the snapshot holds nothing on.
    let runs = || async {
        let filter = revoke365::model::RunFilter::default();
        h.store
            .list_runs(&filter, 100, None)
            .await
            .unwrap()
            .runs
            .len()
    };
    let count = runs().await;
    for (body, field) in [
        (
            json!({"company_id": "acme", "mailbox": BILLING, "as_of": "2000-01-01"}),
            "as_of",
        ),
        (
            json!({"company_id": "acme", "mailbox": "nobody@acmecorp.com", "as_of": id}),
            "mailbox",
        ),
        (json!({"company_id": "acme", "mailbox": BILLING}), "as_of"),
    ] {
        match h.restore_backup(body.clone()).await {
            Err(
                revoke365::steps::IntakeError::Conflict(e)
                | revoke365::steps::IntakeError::Invalid(e),
            ) => {
                assert_eq!(e.field, field, "{body}: {e}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(runs().await, count, "a refused restore creates no run");

    // From the snapshot: the three wiped grants come back; John's two are skipped (a run
    // after the snapshot revoked him); Jane's newer grant is left alone.
    let run = h
        .restore_backup(json!({"company_id": "acme", "mailbox": BILLING, "as_of": id}))
        .await
        .unwrap();
    let r = run.restore_result.as_ref().expect("a restore result");
    assert!(r.success, "{r:#?}");
    assert_eq!(r.backup.as_ref().unwrap().snapshot_id, id);
    let back: BTreeSet<(String, Option<String>)> = r
        .restored
        .iter()
        .map(|e| (e.permission.clone(), e.trustee.clone()))
        .collect();
    assert_eq!(back.len(), 3, "{r:#?}");
    assert!(r.restored.iter().all(|e| e.restored && e.note.is_none()));
    assert_eq!(r.skipped.len(), 2, "{r:#?}");
    assert!(r
        .skipped
        .iter()
        .all(|s| s.trustee.as_deref() == Some(JOHN) && s.reason.contains("revoked again")));
    let mut expected: BTreeSet<_> = before
        .iter()
        .filter(|(_, who)| who != JOHN)
        .cloned()
        .collect();
    expected.insert((
        PermissionType::FullAccess,
        "jane.doe@acmecorp.com".to_string(),
    ));
    assert_eq!(grants_on(&h, BILLING), expected);
    let text = revoke365::render::restore_text(r);
    assert!(text.contains(&format!("From snapshot: {id}")), "{text}");
    assert!(text.contains("for finance@acmecorp.com"), "{text}");
    // Each grant put back is audited with its outcome.
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let restored = records
        .iter()
        .filter(|r| r.result == Some(revoke365::model::AuditResult::Restored))
        .count();
    assert_eq!(restored, 3);

    // With include_revoked John's come back too; the rest is there already.
    let again = h
        .restore_backup(
            json!({"company_id": "acme", "mailbox": BILLING, "as_of": id, "include_revoked": true}),
        )
        .await
        .unwrap();
    let r = again.restore_result.as_ref().unwrap();
    assert!(r.success, "{r:#?}");
    assert_eq!(r.restored.len(), 5);
    assert_eq!(
        r.restored.iter().filter(|e| e.note.is_some()).count(),
        3,
        "already present"
    );
    let mut all = before.clone();
    all.insert((
        PermissionType::FullAccess,
        "jane.doe@acmecorp.com".to_string(),
    ));
    assert_eq!(
        grants_on(&h, BILLING),
        all,
        "the snapshot's grants exactly, plus Jane's"
    );
}

#[tokio::test]
async fn a_cleanup_run_removes_the_grants_of_a_trustee_that_no_longer_exists_by_the_value_shown() {
    const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-5001";
    let h = Harness::start(fixture("review-tenant.json"), fast_http(10)).await;
    let held = |who: &str| -> BTreeSet<(String, PermissionType)> {
        tenant_grants(&h)
            .into_iter()
            .filter(|(_, _, w)| w.eq_ignore_ascii_case(who))
            .map(|(m, p, _)| (m, p))
            .collect()
    };
    let before = tenant_grants(&h);
    for (trustee, expected) in [
        (SID, ("finance@acmecorp.com", PermissionType::FullAccess)),
        (
            "Old Temp Account",
            ("support@acmecorp.com", PermissionType::FullAccess),
        ),
        (
            "advisor@outside.example",
            ("ceo@acmecorp.com", PermissionType::Calendar),
        ),
    ] {
        assert_eq!(
            held(trustee),
            BTreeSet::from([(expected.0.to_string(), expected.1)]),
            "{trustee}"
        );
        let report = h
            .report(json!({"mode": "cleanup", "trustee": trustee, "company_id": "acme", "ticket_id": "48213"}))
            .await;
        assert!(report.success, "{trustee}: {report:#?}");
        assert_eq!(
            report.removal_summary.total_permissions_removed, 1,
            "{trustee}: {report:#?}"
        );
        assert!(report.verification.all_permissions_cleared);
        assert!(held(trustee).is_empty(), "{trustee} holds nothing now");
    }
    // Nothing else was touched.
    let after = tenant_grants(&h);
    assert_eq!(before.difference(&after).count(), 3);
    assert!(after.is_subset(&before));

    // A value that names someone is refused: a cleanup is no way around a user's checks.
    for trustee in ["john.smith@acmecorp.com", "Jane Doe"] {
        refused_cleanup(&h, trustee, "acme").await;
    }
    assert_eq!(tenant_grants(&h), after);
}

#[tokio::test]
async fn review_revoke_runs_a_revocation_or_cleanup_per_trustee_and_reports_them_in_one_digest() {
    use revoke365::index::{deliver_digest, ReviewAction};
    let h = Harness::start(fixture("review-tenant.json"), fast_http(10)).await;
    let found = h.swept_review(None).await;
    let conns = h.connector.connect(&h.org).await.unwrap();
    let listed: BTreeSet<String> = found.trustees.iter().map(|t| t.trustee.clone()).collect();
    let before = h.snapshot();
    let mut actions = Vec::new();
    for t in &found.trustees {
        let body = t
            .request("acme", &found)
            .expect("each listed trustee has a run");
        let run = h.run_as_operator(body).await;
        assert!(run.result.is_some(), "a result: {:?}", run.failure);
        actions.push(ReviewAction::of(t).ran(&run));
    }
    assert_eq!(actions.len(), 5);
    assert!(actions.iter().all(|a| a.success), "{actions:#?}");
    assert_eq!(actions.iter().map(|a| a.removed).sum::<u32>(), 6);
    // Every listed trustee's grants are gone; everyone else's are where they were.
    for (m, p, who) in tenant_grants(&h) {
        assert!(
            !listed.iter().any(|l| l.eq_ignore_ascii_case(&who)),
            "{who} still holds {p} on {m}"
        );
    }
    // The runs told no one on their own ...
    let after_runs = h.snapshot();
    assert_eq!(
        after_runs.tickets, before.tickets,
        "no ticket or note per run"
    );
    assert_eq!(
        after_runs.sent_mail.len(),
        before.sent_mail.len(),
        "no mail per run"
    );

    // ... the digest tells once: one new ticket with one note naming every run, one email.
    let delivery = deliver_digest(conns.notify(), &h.org, &found, &actions, None, None).await;
    assert!(delivery.errors.is_empty(), "{delivery:?}");
    let s = h.snapshot();
    assert_eq!(s.tickets.len(), before.tickets.len() + 1);
    let ticket = s.ticket(delivery.ticket_id.as_deref().unwrap()).unwrap();
    assert_eq!(ticket.notes.len(), 1);
    for a in &actions {
        assert!(ticket.notes[0].text.contains(a.run_id.as_deref().unwrap()));
    }
    assert!(ticket.notes[0]
        .text
        .contains("5 trustee(s) revoked or cleaned up, 6 grant(s) removed"));
    assert_eq!(s.sent_mail.len(), before.sent_mail.len() + 1);
    assert_eq!(
        delivery.mailed_to,
        h.org.m365_permission_notification_recipients
    );
    // The same day's digest again (a retried schedule) finds its ticket and note.
    let again = deliver_digest(conns.notify(), &h.org, &found, &actions, None, None).await;
    assert_eq!(again.ticket_id, delivery.ticket_id);
    let s = h.snapshot();
    assert_eq!(s.tickets.len(), before.tickets.len() + 1);
    assert_eq!(
        s.ticket(delivery.ticket_id.as_deref().unwrap())
            .unwrap()
            .notes
            .len(),
        1
    );

    // Restoring a run the digest reported is reported on its own: a ticket and a note.
    let dana = actions
        .iter()
        .find(|a| a.trustee == "dana.left@acmecorp.com")
        .unwrap();
    let tickets = s.tickets.len();
    let source = revoke365::model::RunId(dana.run_id.clone().unwrap());
    let restored = h.restore(&source, json!({})).await;
    let r = restored.restore_result.as_ref().unwrap();
    assert!(r.success, "{r:#?}");
    let ticket = r.ticket_id.as_deref().expect("a ticket of its own");
    let s = h.snapshot();
    assert_eq!(s.tickets.len(), tickets + 1);
    assert_eq!(s.ticket(ticket).unwrap().notes.len(), 1);
}

#[tokio::test]
async fn an_interrupted_sweep_is_gone_on_with_and_reads_only_the_mailboxes_it_had_not_read() {
    use revoke365::index::sweep_resumable;
    use revoke365::ports::SweepJournal;
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let full = h.take().await;
    let full_reads = h.snapshot().requests("exo Get-MailboxPermission");
    // An earlier attempt began an hour ago and had read three mailboxes when it was stopped.
    let first = [
        "ceo@acmecorp.com",
        "finance@acmecorp.com",
        "billing@acmecorp.com",
    ];
    let started = chrono::Utc::now() - chrono::Duration::hours(1);
    h.store
        .begin_sweep("acme", "20261201T000000Z-resumed", started)
        .await
        .unwrap();
    let journaled = revoke365_testkit::journaled_reads(&full, &first);
    h.store
        .save_sweep_reads("acme", "20261201T000000Z-resumed", &journaled)
        .await
        .unwrap();

    let conns = h.connector.connect(&h.org).await.unwrap();
    // What reading the three mailboxes' Full Access costs (a long answer comes in pages).
    let counted = h.snapshot().requests("exo Get-MailboxPermission");
    for m in first {
        conns.exchange.mailbox_permissions(m).await.unwrap();
    }
    let three = h.snapshot().requests("exo Get-MailboxPermission") - counted;
    let before = h.snapshot().requests("exo Get-MailboxPermission");
    let journal: &dyn SweepJournal = h.store.as_ref();
    let resumed = sweep_resumable(
        conns.tenant(),
        &h.org,
        &NoProgress,
        &BTreeMap::new,
        Some(journal),
    )
    .await
    .unwrap();
    let s = &resumed.summary;
    assert_eq!(
        s.snapshot_id, "20261201T000000Z-resumed",
        "the interrupted sweep's id"
    );
    assert_eq!(s.taken_at, started, "as of the interrupted attempt's start");
    assert_eq!(s.resumed_mailboxes, 3);
    let reads = h.snapshot().requests("exo Get-MailboxPermission") - before;
    assert_eq!(
        reads,
        full_reads - three,
        "the uninterrupted sweep's reads but the three journaled"
    );
    let key = |snap: &Snapshot| -> BTreeSet<(String, PermissionType, String)> {
        snap.grants
            .iter()
            .map(|g| (g.mailbox.clone(), g.right, g.trustee_id.clone()))
            .collect()
    };
    assert_eq!(
        key(&resumed),
        key(&full),
        "the same grants as an uninterrupted sweep"
    );

    // Stored, the journal ends: the next sweep starts afresh.
    h.store
        .save_snapshot(&resumed, &IndexSettings::default())
        .await
        .unwrap();
    h.store.end_sweep("acme").await.unwrap();
    assert!(h.store.unfinished_sweep("acme").await.unwrap().is_none());
    // A journal older than a day is not gone on with.
    h.store
        .begin_sweep(
            "acme",
            "20261101T000000Z-stale",
            chrono::Utc::now() - chrono::Duration::days(2),
        )
        .await
        .unwrap();
    let fresh = sweep_resumable(
        conns.tenant(),
        &h.org,
        &NoProgress,
        &BTreeMap::new,
        Some(journal),
    )
    .await
    .unwrap();
    assert_ne!(fresh.summary.snapshot_id, "20261101T000000Z-stale");
    assert_eq!(fresh.summary.resumed_mailboxes, 0);
}

#[tokio::test]
async fn a_backup_restore_gives_an_external_calendar_share_back_and_skips_an_orphaned_sid() {
    let h = Harness::start(fixture("review-tenant.json"), fast_http(10)).await;
    let id = h.sweep().await.summary.snapshot_id;
    let conns = h.connector.connect(&h.org).await.unwrap();
    // The CEO's calendar shares are wiped, and so is the finance mailbox's Full Access.
    let ceo_calendar = grants_on(&h, "ceo@acmecorp.com");
    for p in conns
        .directory
        .calendar_permissions("ceo@acmecorp.com")
        .await
        .unwrap()
    {
        if p.is_removable {
            conns
                .directory
                .remove_calendar_permission("ceo@acmecorp.com", &p.id)
                .await
                .unwrap();
        }
    }
    let run = h
        .restore_backup(
            json!({"company_id": "acme", "mailbox": "ceo@acmecorp.com", "as_of": id,
            "permission_types": ["calendar"]}),
        )
        .await
        .unwrap();
    let r = run.restore_result.as_ref().unwrap();
    assert!(r.success, "{r:#?}");
    assert!(r
        .restored
        .iter()
        .any(|e| e.trustee.as_deref() == Some("advisor@outside.example") && e.restored));
    assert_eq!(
        grants_on(&h, "ceo@acmecorp.com"),
        ceo_calendar,
        "every share back"
    );

    let run = h
        .restore_backup(
            json!({"company_id": "acme", "mailbox": "finance@acmecorp.com", "as_of": id}),
        )
        .await
        .unwrap();
    let r = run.restore_result.as_ref().unwrap();
    let skipped: Vec<_> = r.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(skipped.len(), 1, "{r:#?}");
    assert!(skipped[0].contains("orphaned SID"), "{skipped:?}");
}

/// A security group that is not mail-enabled is no Exchange recipient, yet it holds Full
/// Access on finance@ for its members: the review never lists it as a name that resolves to
/// nothing, and a cleanup of it is refused — by its name and by its SID — so Michael Bolton
/// keeps his access through it.
#[tokio::test]
async fn a_security_group_that_is_no_recipient_is_alive_and_never_cleaned_up() {
    let h = Harness::start(fixture("real-tenant.json"), fast_http(10)).await;
    let r = h.swept_review(None).await;
    assert!(
        !r.trustees
            .iter()
            .any(|t| t.trustee.eq_ignore_ascii_case("Initech Security")),
        "a live group is listed for cleanup: {r:#?}"
    );
    let before = tenant_grants(&h);
    let group_grant = (
        "finance@initech.com".to_string(),
        PermissionType::FullAccess,
        "Initech Security".to_string(),
    );
    assert!(before.contains(&group_grant), "{before:?}");
    let sid = h.sim.sid_of("Initech Security").expect("the group's SID");
    for trustee in ["Initech Security", sid.as_str()] {
        let failure = refused_cleanup(&h, trustee, "initech").await;
        assert!(failure.message.contains("group"), "{failure:?}");
    }
    assert_eq!(tenant_grants(&h), before, "nothing was removed");
}

/// A cleanup's removal whose answer is lost after it took effect (503 after the write): asked
/// again, Exchange no longer finds the orphaned SID at all ("couldn't be found", not "the ACE
/// isn't present"). The lost attempt removed it: counted as removed, the run a success.
#[tokio::test]
async fn a_cleanup_whose_answer_was_lost_after_the_write_counts_its_removal() {
    const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-5001";
    let fx = revoke365_testkit::with_sim(
        fixture("review-tenant.json"),
        json!({"faults": [{"endpoint": "exo Remove-MailboxPermission", "answer": "503_after_write"}],
               "retry_after_secs": 0}),
    );
    let h = Harness::start(fx, fast_http(10)).await;
    let report = h
        .report(json!({"mode": "cleanup", "trustee": SID, "company_id": "acme"}))
        .await;
    assert!(report.success, "{report:#?}");
    assert_eq!(report.removal_summary.total_permissions_removed, 1);
    assert!(
        !tenant_grants(&h).iter().any(|(_, _, who)| who == SID),
        "the orphan's entry is gone"
    );
}
