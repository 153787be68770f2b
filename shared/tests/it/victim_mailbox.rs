//! Containment of the victim's own mailbox (`"victim_mailbox": true`): forwarding cleared,
//! the inbox rules that forward, redirect or delete disabled (never deleted), grants to others
//! listed; reported under `victim_mailbox`, audited, and put back by a restore.

use revoke365::model::{
    AuditPhase, AuditResult, DelegateAge, IndexedGrant, PermissionType, Report, RestoreReport, Run,
    VictimChange, VictimOutcome,
};
use revoke365::ports::{AuditTrail, Connector, NoProgress, PermissionIndex};
use revoke365::steps::check_run_audit;
use revoke365_sim::snapshot::MailboxSnapshot;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const JOHN: &str = "john.smith@acmecorp.com";

fn request(victim_mailbox: bool) -> Value {
    json!({"user_email": JOHN, "company_id": "acme", "ticket_id": "48213",
           "victim_mailbox": victim_mailbox, "requested_by": "soc@acmecorp.com"})
}

fn johns(h: &Harness) -> MailboxSnapshot {
    h.snapshot()
        .mailboxes
        .into_iter()
        .find(|m| m.upn == JOHN)
        .expect("john's mailbox")
}

fn report(run: &Run) -> &Report {
    run.result
        .as_ref()
        .unwrap_or_else(|| panic!("run ended {:?}: {:?}", run.status, run.failure))
}

fn restored(run: &Run) -> &RestoreReport {
    run.restore_result
        .as_ref()
        .unwrap_or_else(|| panic!("restore ended {:?}: {:?}", run.status, run.failure))
}

fn rule_states(m: &MailboxSnapshot) -> Vec<(&str, bool)> {
    m.inbox_rules
        .iter()
        .map(|r| (r.name.as_str(), r.enabled))
        .collect()
}

#[tokio::test]
async fn a_victim_run_clears_forwarding_disables_exactly_the_offending_rules_and_restore_puts_both_back(
) {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let run = h.run(request(true)).await;
    let r = report(&run);
    assert!(r.success, "{r:#?}");

    // The tenant: no forwarding; the forwarding and the hidden deleting rule disabled, the
    // harmless rule and the already disabled one as they were; no rule deleted.
    let john = johns(&h);
    assert!(john.forwarding.is_empty(), "{:?}", john.forwarding);
    assert_eq!(
        rule_states(&john),
        [
            ("Newsletters", true),
            ("Invoices", false),
            ("..", false),
            ("Old forward", false)
        ]
    );
    // The user's access to others went as without the option: the victim part is not counted.
    assert_eq!(r.removal_summary.total_permissions_removed, 8);

    let v = r.victim_mailbox.as_ref().expect("victim_mailbox section");
    assert_eq!(v.mailbox, JOHN);
    let f = v.forwarding.as_ref().unwrap();
    assert_eq!(f.status, VictimOutcome::Cleared);
    assert_eq!(
        f.found.forwarding_smtp_address.as_deref(),
        Some("smtp:exfil@evil.example")
    );
    assert!(f.found.deliver_to_mailbox_and_forward);
    let rules: Vec<(&str, VictimOutcome)> = v
        .inbox_rules
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        rules,
        [
            ("Invoices", VictimOutcome::Disabled),
            ("..", VictimOutcome::Disabled)
        ]
    );
    assert!(v.inbox_rules[0].threats[0].contains("exfil@evil.example"));
    assert_eq!(v.inbox_rules[1].threats, ["deletes messages"]);
    // Jane's calendar grant on John's mailbox: no index snapshot, so its age is unknown and
    // it stays; the inherited admin Full Access is not a delegate.
    assert_eq!(v.recent_delegates.len(), 1, "{:#?}", v.recent_delegates);
    let d = &v.recent_delegates[0];
    assert_eq!(
        (d.trustee.as_str(), d.age, d.status),
        (
            "jane.doe@acmecorp.com",
            DelegateAge::Unknown,
            VictimOutcome::LeftInPlace
        )
    );
    assert_eq!(john.calendar, initial.mailbox(JOHN).unwrap().calendar);
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["victim_mailbox"]["forwarding"]["status"], "cleared");
    assert_eq!(
        json["victim_mailbox"]["recent_delegates"][0]["age"],
        "unknown"
    );

    // The audit trail keeps each rule's whole definition, and the forwarding as it was.
    let records = h.store.audit_records(&run.run_id).await.unwrap();
    let disabled: Vec<_> = records
        .iter()
        .filter_map(|rec| match &rec.victim {
            Some(VictimChange::InboxRule { rule, .. })
                if rec.phase == AuditPhase::Outcome && rec.result == Some(AuditResult::Removed) =>
            {
                Some(rule)
            }
            _ => None,
        })
        .collect();
    assert_eq!(disabled.len(), 2);
    assert_eq!(disabled.iter().filter(|r| r.delete_message).count(), 1);
    assert!(disabled.iter().any(|r| r
        .forward_to
        .iter()
        .any(|t| t.contains("exfil@evil.example"))
        && r.description
            .as_deref()
            .is_some_and(|d| d.contains("forward"))));
    assert!(records.iter().any(|rec| matches!(
        &rec.victim,
        Some(VictimChange::Forwarding { before, .. }) if before.forwarding_smtp_address.is_some()
    )));
    let check = check_run_audit(h.store.as_ref(), &run.run_id)
        .await
        .unwrap();
    assert!(check.is_intact(), "{check:#?}");
    // The ticket note and the email say it.
    let state = h.snapshot();
    let note = &state
        .tickets
        .iter()
        .find(|t| t.id == "48213")
        .unwrap()
        .notes[0]
        .text;
    assert!(note.contains("Forwarding cleared"), "{note}");
    assert!(note.contains("Inbox rule 'Invoices' disabled"), "{note}");
    assert!(
        state.sent_mail[0]
            .body
            .contains("Inbox rule &#39;Invoices&#39; disabled")
            || state.sent_mail[0]
                .body
                .contains("Inbox rule 'Invoices' disabled")
    );

    // Restore, naming the victim's mailbox: forwarding and both rules back, the tenant exactly
    // as the fixture made it.
    let first = h
        .restore(
            &run.run_id,
            json!({"reason": "false positive", "include_victim_mailbox": true}),
        )
        .await;
    let back = restored(&first);
    assert!(back.success, "{back:#?}");
    let v = back.victim_mailbox.as_ref().expect("victim section");
    assert_eq!(
        v.forwarding.as_ref().unwrap().status,
        VictimOutcome::Restored
    );
    assert!(v
        .inbox_rules
        .iter()
        .all(|r| r.status == VictimOutcome::Restored));
    assert_eq!(v.inbox_rules.len(), 2);
    assert_eq!(h.snapshot().mailboxes, initial.mailboxes);

    assert!(back.left_out.is_empty(), "{back:#?}");

    // Again: everything is there already.
    let second = h
        .restore(&run.run_id, json!({"include_victim_mailbox": true}))
        .await;
    let again = restored(&second);
    assert!(again.success, "{again:#?}");
    let v = again.victim_mailbox.as_ref().unwrap();
    assert_eq!(
        v.forwarding.as_ref().unwrap().status,
        VictimOutcome::AlreadyPresent
    );
    assert!(v
        .inbox_rules
        .iter()
        .all(|r| r.status == VictimOutcome::AlreadyPresent));
    assert_eq!(h.snapshot().mailboxes, initial.mailboxes);
}

#[tokio::test]
async fn a_scoped_restore_leaves_the_attackers_forwarding_and_rules_off_and_says_so_until_the_victim_mailbox_is_named(
) {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    let run = h.run(request(true)).await;
    assert!(report(&run).success);
    let contained = johns(&h);
    let full_access_on_ceo = |h: &Harness| {
        h.snapshot().direct_grants_of(JOHN).contains(&(
            "ceo@acmecorp.com".into(),
            revoke365_sim::snapshot::FULL_ACCESS,
        ))
    };
    assert!(!full_access_on_ceo(&h));

    // Scoped to one grant: that grant comes back, the attacker's set-up does not.
    let scoped = h
        .restore(
            &run.run_id,
            json!({"permission_types": ["full_access"], "target_mailboxes": ["ceo@acmecorp.com"]}),
        )
        .await;
    let r = restored(&scoped);
    assert!(r.success, "{r:#?}");
    assert_eq!(r.restored.len(), 1, "{r:#?}");
    assert!(full_access_on_ceo(&h));
    let john = johns(&h);
    assert!(john.forwarding.is_empty(), "{:?}", john.forwarding);
    assert_eq!(rule_states(&john), rule_states(&contained));
    assert_eq!(r.victim_mailbox, None);
    let not_asked = "victim mailbox settings not restored: not asked for (--include-victim-mailbox";
    assert!(
        r.left_out.iter().any(|l| l.starts_with(not_asked)),
        "{r:#?}"
    );
    assert!(
        r.left_out.iter().any(|l| l.starts_with("7 other grant(s)")),
        "{r:#?}"
    );
    let json = serde_json::to_value(r).unwrap();
    assert!(json["left_out"][1].as_str().unwrap().starts_with(not_asked));
    // The ticket note and the email say what was left out.
    let state = h.snapshot();
    let notes = &state.ticket("48213").unwrap().notes;
    let note = &notes.last().unwrap().text;
    assert!(note.contains(&scoped.run_id.to_string()), "{note}");
    assert!(
        note.contains("Not restored:") && note.contains(not_asked),
        "{note}"
    );
    let mail = state.sent_mail.last().unwrap();
    assert!(mail.body.contains(&scoped.run_id.to_string()) && mail.body.contains(not_asked));

    // Named, but --mailbox scopes the restore to another mailbox: still left out.
    let elsewhere = h
        .restore(
            &run.run_id,
            json!({"include_victim_mailbox": true, "target_mailboxes": ["ceo@acmecorp.com"]}),
        )
        .await;
    let r = restored(&elsewhere);
    assert!(r.success, "{r:#?}");
    assert!(johns(&h).forwarding.is_empty());
    assert_eq!(rule_states(&johns(&h)), rule_states(&contained));
    assert!(
        r.left_out
            .iter()
            .any(|l| l.contains("does not name the user's own mailbox")),
        "{r:#?}"
    );

    // Named, and its mailbox in scope: forwarding and rules back, nothing else left out.
    let named = h
        .restore(
            &run.run_id,
            json!({"include_victim_mailbox": true, "target_mailboxes": [JOHN]}),
        )
        .await;
    let r = restored(&named);
    assert!(r.success, "{r:#?}");
    assert!(
        r.restored.is_empty(),
        "no grant of the run is on John's own mailbox"
    );
    let v = r.victim_mailbox.as_ref().expect("victim section");
    assert_eq!(
        v.forwarding.as_ref().unwrap().status,
        VictimOutcome::Restored
    );
    assert_eq!(Some(&johns(&h)), initial.mailbox(JOHN));
}

#[tokio::test]
async fn a_victim_mailbox_that_refuses_changes_fails_the_run_and_says_so_on_the_ticket_and_by_email(
) {
    let tenant = with_sim(
        fixture("victim-tenant.json"),
        json!({"fail_mailboxes": [JOHN]}),
    );
    let h = Harness::start(tenant, fast_http(10)).await;
    let initial = johns(&h);
    let run = h.run(request(true)).await;
    let r = report(&run);
    assert!(!r.success, "{r:#?}");
    let v = r.victim_mailbox.as_ref().unwrap();
    let f = v.forwarding.as_ref().unwrap();
    assert_eq!(f.status, VictimOutcome::Failed);
    assert!(f.error.as_deref().unwrap().contains("denied"), "{f:?}");
    assert!(r
        .errors
        .iter()
        .any(|e| e.contains("forwarding") && e.contains("not cleared")));
    // The forwarding is still there, and nothing was counted as done.
    assert_eq!(johns(&h).forwarding, initial.forwarding);
    let state = h.snapshot();
    let note = &state
        .tickets
        .iter()
        .find(|t| t.id == "48213")
        .unwrap()
        .notes[0]
        .text;
    assert!(note.contains("Forwarding FAILED"), "{note}");
    assert!(note.contains("ACTION NEEDED"), "{note}");
    assert!(
        state.sent_mail[0]
            .subject
            .to_lowercase()
            .contains("action needed")
            || state.sent_mail[0].body.contains("FAILED")
    );
}

#[tokio::test]
async fn without_victim_mailbox_nothing_about_the_victims_mailbox_changes() {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = johns(&h);
    let run = h.run(request(false)).await;
    let r = report(&run);
    assert!(r.success, "{r:#?}");
    assert!(r.victim_mailbox.is_none());
    assert!(serde_json::to_value(r)
        .unwrap()
        .get("victim_mailbox")
        .is_none());
    assert_eq!(johns(&h), initial);
    let counters = &h.snapshot().counters.requests;
    assert!(!counters.contains_key("exo Get-InboxRule"), "{counters:?}");
    assert!(!counters.contains_key("exo Disable-InboxRule"));
}

#[tokio::test]
async fn a_dry_run_reads_the_victims_mailbox_and_changes_nothing() {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = johns(&h);
    let mut body = request(true);
    body["dry_run"] = json!(true);
    let run = h.run(body).await;
    let r = report(&run);
    assert!(r.success, "{r:#?}");
    let v = r.victim_mailbox.as_ref().unwrap();
    assert_eq!(
        v.forwarding.as_ref().unwrap().status,
        VictimOutcome::WouldClear
    );
    assert!(v
        .inbox_rules
        .iter()
        .all(|r| r.status == VictimOutcome::WouldDisable));
    assert_eq!(v.inbox_rules.len(), 2);
    assert_eq!(johns(&h), initial);
}

/// A permission-index snapshot taken 31 days ago (`keep` decides which grants it had on
/// John's mailbox).
async fn month_old_snapshot(h: &Harness, keep: impl Fn(&IndexedGrant) -> bool) {
    let conns = h.connector.connect(&h.org).await.unwrap();
    let mut old = revoke365::index::sweep(conns.tenant(), &h.org, &NoProgress, &BTreeMap::new)
        .await
        .unwrap();
    old.summary.taken_at -= chrono::Duration::days(31);
    old.grants.retain(|g| g.mailbox != JOHN || keep(g));
    h.store.save_snapshot(&old, &h.org.index).await.unwrap();
}

#[tokio::test]
async fn with_an_old_snapshot_a_recent_delegate_is_removed_when_asked_and_restore_brings_it_back() {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = h.snapshot();
    // The snapshot a month ago had no grant on the mailbox: Jane's calendar grant is new.
    month_old_snapshot(&h, |_| false).await;
    let engine = &h.engine;
    let mut body = request(true);
    body["remove_recent_delegates"] = json!(true);
    let run = engine.run(&body, None).await.expect("accepted");
    let r = report(&run);
    assert!(r.success, "{r:#?}");
    let d = &r.victim_mailbox.as_ref().unwrap().recent_delegates;
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].trustee.as_str(), d[0].age, d[0].status),
        (
            "jane.doe@acmecorp.com",
            DelegateAge::Recent,
            VictimOutcome::Removed
        )
    );
    assert!(johns(&h).calendar.is_empty(), "removed through Graph");
    assert_eq!(
        r.removal_summary.total_permissions_removed, 8,
        "not counted"
    );

    // Named, but scoped to another type: the calendar delegate stays removed, and is named.
    let scoped = engine
        .restore_watched(
            Some(revoke365_testkit::harness::OPERATOR),
            &run.run_id,
            &json!({"include_victim_mailbox": true, "permission_types": ["full_access"]}),
            None,
            |_| {},
        )
        .await
        .expect("restore accepted");
    let r = restored(&scoped);
    assert!(r.success, "{r:#?}");
    assert!(
        johns(&h).calendar.is_empty(),
        "the delegate is not put back"
    );
    assert!(
        r.left_out.iter().any(|l| l.starts_with(
            "recent delegate jane.doe@acmecorp.com on john.smith@acmecorp.com (CalendarDelegate) not restored: outside --types"
        )),
        "{r:#?}"
    );

    let back = engine
        .restore_watched(
            Some(revoke365_testkit::harness::OPERATOR),
            &run.run_id,
            &json!({"include_victim_mailbox": true}),
            None,
            |_| {},
        )
        .await
        .expect("restore accepted");
    assert!(restored(&back).success, "{:#?}", restored(&back));
    assert_eq!(h.snapshot().mailboxes, initial.mailboxes);
}

#[tokio::test]
async fn a_delegate_the_old_snapshot_had_is_not_recent_and_a_recent_one_is_only_listed_unless_asked(
) {
    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    month_old_snapshot(&h, |g| g.right == PermissionType::Calendar).await;
    let run = h.engine.run(&request(true), None).await.expect("accepted");
    assert!(report(&run)
        .victim_mailbox
        .as_ref()
        .unwrap()
        .recent_delegates
        .is_empty());

    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let calendar = johns(&h).calendar;
    month_old_snapshot(&h, |_| false).await;
    let run = h.engine.run(&request(true), None).await.expect("accepted");
    let d = &report(&run)
        .victim_mailbox
        .as_ref()
        .unwrap()
        .recent_delegates;
    assert_eq!(
        (d[0].age, d[0].status),
        (DelegateAge::Recent, VictimOutcome::Listed)
    );
    assert_eq!(johns(&h).calendar, calendar, "listed, left in place");
}

#[tokio::test]
async fn the_exchange_client_reads_sets_back_and_flips_what_the_victim_step_uses() {
    use revoke365::adapters::exchange::ExchangeClient;
    use revoke365::adapters::http::HttpCore;
    use revoke365::config::{AppCredentials, HttpSettings, Secret, ServiceUrls};
    use revoke365::model::MailboxForwarding;
    use revoke365::ports::MailboxRules;

    let h = Harness::start(fixture("victim-tenant.json"), fast_http(10)).await;
    let initial = johns(&h);
    let exchange = ExchangeClient::new(
        HttpCore::new(HttpSettings::default()).unwrap(),
        &ServiceUrls::all_at(&h.sim.base_url),
        AppCredentials {
            tenant_id: h.org.tenant_id.clone(),
            client_id: "test-client".into(),
            credential: revoke365::config::ClientCredential::Secret(Secret::new(
                revoke365_testkit::CLIENT_SECRET,
            )),
        },
    );
    let settings = exchange.mailbox_settings(JOHN).await.unwrap().unwrap();
    assert_eq!(settings.info.address(), JOHN);
    let found = settings.forwarding;
    assert_eq!(
        found,
        MailboxForwarding {
            forwarding_smtp_address: Some("smtp:exfil@evil.example".into()),
            forwarding_address: None,
            deliver_to_mailbox_and_forward: true,
        }
    );
    assert!(exchange
        .mailbox_settings("nobody@acmecorp.com")
        .await
        .unwrap()
        .is_none());

    // Every rule, hidden ones too, across pages (the fixture pages by 3).
    let rules = exchange.inbox_rules(JOHN).await.unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Newsletters", "Invoices", "..", "Old forward"]);
    let offending: Vec<&str> = rules
        .iter()
        .filter(|r| r.is_offending())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        offending,
        ["Invoices", ".."],
        "enabled and forwarding or deleting"
    );
    assert_eq!(rules[1].priority, Some(2));
    assert!(rules[1].identity.starts_with("john.smith\\"));

    exchange
        .set_forwarding(JOHN, &MailboxForwarding::default())
        .await
        .unwrap();
    exchange
        .disable_inbox_rule(JOHN, &rules[1].identity)
        .await
        .unwrap();
    // Again: Exchange's "no settings modified" warning is success.
    exchange
        .disable_inbox_rule(JOHN, &rules[1].identity)
        .await
        .unwrap();
    let now = johns(&h);
    assert!(now.forwarding.is_empty());
    assert!(!now.inbox_rules[1].enabled);

    exchange.set_forwarding(JOHN, &found).await.unwrap();
    exchange
        .enable_inbox_rule(JOHN, &rules[1].identity)
        .await
        .unwrap();
    assert_eq!(johns(&h), initial);
    let missing = exchange.enable_inbox_rule(JOHN, "nope").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}
