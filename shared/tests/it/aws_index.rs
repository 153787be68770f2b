//! The permission index on the serverless path, against LocalStack and DynamoDB Local: the
//! scheduled index job fills the index table with what the embedded sweep finds, `GET /access`
//! answers from it without a tenant call and under the company's allow-list, a contain run
//! through the handlers removes the indexed grants first, and pruning keeps what SQLite keeps.

use crate::aws_kit::{Env, JOHN};
use chrono::{Duration, Utc};
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::{ClientCredential, Secret, ServiceUrls};
use revoke365::lambda::steps::handle_step_event;
use revoke365::model::{
    IndexHits, IndexSettings, IndexedGrant, OrgSettings, PermissionType, Snapshot, SnapshotRef,
    SnapshotSummary, Trustee, TrusteeKind,
};
use revoke365::ports::{Connector, NoProgress, PermissionIndex, RunRecords, StoreIndexes};
use revoke365_testkit::{fast_http, fixture, CLIENT_SECRET};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The real HTTP clients against the environment's simulator, outside AWS (the CLI's).
fn embedded_connector(env: &Env) -> HttpConnector {
    HttpConnector {
        core: HttpCore::new(fast_http(10)).unwrap(),
        urls: ServiceUrls::all_at(&env.sim.base_url),
        m365_client_id: "test-client".into(),
        m365_credential: ClientCredential::Secret(Secret::new(CLIENT_SECRET)),
        psa: revoke365_testkit::psa_accounts(&env.sim.base_url),
        recheck: revoke365_testkit::fast_recheck(),
        shard_time: DEFAULT_SHARD_TIME,
        webhook_secret: None,
    }
}

fn acme() -> OrgSettings {
    OrgSettings::from_fixture(&fixture("acme-tenant.json")).unwrap()
}

fn requests(env: &Env) -> u64 {
    env.sim.snapshot().counters.requests.values().sum()
}

/// Trustees by id and grants by (mailbox, type, trustee): the order a store returns them in
/// aside.
fn sorted(mut hits: IndexHits) -> IndexHits {
    hits.trustees
        .sort_by(|a, b| a.trustee_id.cmp(&b.trustee_id));
    hits.grants.sort_by(|a, b| {
        (&a.mailbox, a.right, &a.trustee_id).cmp(&(&b.mailbox, b.right, &b.trustee_id))
    });
    hits
}

async fn scheduled_index(env: &Env) -> Value {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(revoke365_testkit::events_dir().join("scheduled-index.json"))
            .unwrap(),
    )
    .unwrap();
    handle_step_event(&env.steps[0].1, event, env.deadline())
        .await
        .expect("the scheduled index job")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_index_job_fills_the_table_get_access_answers_from_it_and_contain_uses_it() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let index = env.intake.store.permission_index().expect("an index");
    // A company whose allow-list does not hold the caller of the sample API event.
    let mut globex = acme();
    globex.company_id = "globex".into();
    globex.allowed_principals = vec!["arn:aws:iam::123456789012:role/OtherCustomer".into()];
    env.intake.store.put_org_settings(&globex).await.unwrap();

    // No snapshot yet: 404 no_index, naming the company.
    let (status, body) = env
        .http(
            "GET",
            &format!("/access?company_id=acme&user={JOHN}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "no_index");
    assert_eq!(body["error"]["field"], "company_id");

    // The sample scheduled event, through the discovery function's entry point.
    let answer = scheduled_index(&env).await;
    assert_eq!(answer["job"], "index", "{answer}");
    assert_eq!(answer["company_id"], "acme");
    assert_eq!(answer["errors"], json!([]), "{answer}");
    let snapshot_id = answer["snapshot_id"].as_str().unwrap().to_string();
    let listed = index.snapshots("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    let summary = &listed[0];
    assert_eq!(summary.snapshot_id, snapshot_id);
    assert_eq!(summary.tenant_id, acme().tenant_id);
    assert!(summary.calls["exchange"] > 0 && summary.calls["graph"] > 0);
    assert!(
        summary.limits.contains_key("exchange"),
        "the limits the HTTP layer learned are recorded: {:?}",
        summary.limits
    );

    // The embedded sweep of the same tenant, into SQLite: the same trustees and grants.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteRunStore::open(dir.path(), vec![acme()]).unwrap();
    let conns = embedded_connector(&env).connect(&acme()).await.unwrap();
    let embedded = revoke365::index::sweep(conns.tenant(), &acme(), &NoProgress, &BTreeMap::new)
        .await
        .unwrap();
    sqlite
        .save_snapshot(&embedded, &IndexSettings::default())
        .await
        .unwrap();
    let dynamo = sorted(index.everything(&snapshot_id).await.unwrap());
    assert_eq!(dynamo.grants.len() as u64, summary.grants);
    assert!(!dynamo.grants.is_empty());
    assert_eq!(
        dynamo,
        sorted(IndexHits {
            trustees: embedded.trustees.clone(),
            grants: embedded.grants.clone(),
        }),
        "DynamoDB holds what the embedded sweep found"
    );
    let embedded_id = &embedded.summary.snapshot_id;
    let keys = vec![JOHN.to_string()];
    assert_eq!(
        sorted(index.held_by(&snapshot_id, &keys).await.unwrap()),
        sorted(sqlite.held_by(embedded_id, &keys).await.unwrap())
    );
    assert_eq!(
        sorted(
            index
                .held_on(&snapshot_id, "CEO@acmecorp.com")
                .await
                .unwrap()
        ),
        sorted(
            sqlite
                .held_on(embedded_id, "ceo@acmecorp.com")
                .await
                .unwrap()
        )
    );

    // GET /access: John's 8 grants, from the index alone.
    let before = requests(&env);
    let (status, map) = env
        .http(
            "GET",
            &format!("/access?company_id=acme&user={JOHN}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{map}");
    assert_eq!(requests(&env), before, "no tenant call");
    assert_eq!(map["snapshot_id"], snapshot_id.as_str());
    assert_eq!(map["live"], false);
    assert_eq!(
        map["as_of"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        summary.taken_at
    );
    let grants = map["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 8, "{map}");
    assert!(grants.iter().all(|g| g["trustee"] == JOHN), "{map}");
    let found: BTreeSet<(String, String)> = grants
        .iter()
        .map(|g| {
            (
                g["mailbox"].as_str().unwrap().to_string(),
                g["permission"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let johns: BTreeSet<(String, String)> = env
        .sim
        .snapshot()
        .direct_grants_of(JOHN)
        .into_iter()
        .map(|(m, t)| (m, t.to_string()))
        .collect();
    assert_eq!(found.len(), johns.len(), "{found:?} vs {johns:?}");
    // Every trustee of the CEO's mailbox, as the embedded lookup answers it.
    let (status, ceo) = env
        .http(
            "GET",
            "/access?company_id=acme&mailbox=ceo@acmecorp.com",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{ceo}");
    let local = revoke365::index::lookup(
        &sqlite,
        &acme(),
        &revoke365::index::AccessQuery::Mailbox("ceo@acmecorp.com".into()),
        None,
    )
    .await
    .unwrap();
    let mut local = serde_json::to_value(&local).unwrap();
    let mut remote = ceo.clone();
    for v in [&mut local, &mut remote] {
        v.as_object_mut().unwrap().remove("snapshot_id");
        v.as_object_mut().unwrap().remove("as_of");
        v["grants"]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|g| g.to_string());
    }
    assert_eq!(remote, local);
    assert!(!ceo["grants"].as_array().unwrap().is_empty());
    assert_eq!(requests(&env), before, "no tenant call");

    // Bad input names the field; a caller outside the allow-list reads nothing.
    for (query, field) in [
        (
            format!("company_id=acme&user={JOHN}&mailbox=ceo@acmecorp.com"),
            "mailbox",
        ),
        ("company_id=acme".to_string(), "user"),
        (format!("user={JOHN}"), "company_id"),
        (
            "company_id=acme&mailbox=not-an-address".to_string(),
            "mailbox",
        ),
        (format!("company_id=acme&user={JOHN}&live=true"), "live"),
    ] {
        let (status, body) = env
            .http("GET", &format!("/access?{query}"), None, None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, body) = env
        .http(
            "GET",
            &format!("/access?company_id=globex&user={JOHN}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body.get("grants").is_none());
    let (status, _) = env
        .http(
            "GET",
            &format!("/access?company_id=nobody&user={JOHN}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        status, 403,
        "an unknown company is refused like a forbidden one"
    );

    // After the sweep John is given Full Access on a mailbox he could not open; a contain run
    // through the handlers removes the 8 indexed grants first, then the live phase the new one.
    conns
        .exchange
        .add_full_access("sales@acmecorp.com", JOHN)
        .await
        .unwrap();
    let (_, body) = env
        .post_to_end(
            "/revocations",
            json!({"user_email": JOHN, "company_id": "acme", "mode": "contain",
                "requested_by": "hr@acmecorp.com"}),
        )
        .await;
    let result = &body["result"];
    assert_eq!(result["success"], true, "{result}");
    let c = &result["containment"];
    assert_eq!(c["snapshot_id"], snapshot_id.as_str(), "{c}");
    assert_eq!(c["indexed_grants"], 8, "{c}");
    assert!(c.get("not_used").is_none(), "{c}");
    assert!(c["seconds_to_containment"]
        .as_f64()
        .is_some_and(|s| s >= 0.0));
    assert_eq!(result["removal_summary"]["total_permissions_removed"], 9);
    assert_eq!(result["verification"]["all_permissions_cleared"], true);
    assert_eq!(env.sim.snapshot().direct_grants_of(JOHN), vec![]);
    assert_eq!(env.dlq_depths().await, vec![0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restore_through_the_handlers_puts_a_wiped_mailbox_back_from_the_index_table() {
    const BILLING: &str = "billing@acmecorp.com";
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let on_billing = || -> BTreeSet<(String, String)> {
        let s = env.sim.snapshot();
        let m = s.mailboxes.iter().find(|m| m.upn == BILLING).unwrap();
        let fa = m.full_access.iter().filter(|g| !g.inherited && !g.deny);
        let sa = m.send_as.iter().filter(|g| !g.inherited && !g.deny);
        fa.map(|g| ("full_access".to_string(), g.user.clone()))
            .chain(sa.map(|g| ("send_as".to_string(), g.user.clone())))
            .filter(|(_, u)| !u.to_ascii_uppercase().starts_with("NT AUTHORITY"))
            .collect()
    };
    let before = on_billing();
    assert_eq!(before.len(), 5, "{before:?}");
    let answer = scheduled_index(&env).await;
    let snapshot_id = answer["snapshot_id"].as_str().unwrap().to_string();

    // Someone wipes the shared mailbox.
    let conns = embedded_connector(&env).connect(&acme()).await.unwrap();
    for (right, who) in &before {
        match right.as_str() {
            "full_access" => conns
                .exchange
                .remove_full_access(BILLING, who)
                .await
                .unwrap(),
            _ => conns
                .exchange
                .remove_send_as(BILLING, Some("SharedMailbox"), who)
                .await
                .unwrap(),
        };
    }
    assert!(on_billing().is_empty());

    // A bad body names the field; a date before any snapshot is a conflict.
    for (request, refused) in [
        (json!({"company_id": "acme", "mailbox": BILLING}), 400),
        (
            json!({"company_id": "acme", "mailbox": BILLING, "as_of": "2000-01-01"}),
            409,
        ),
    ] {
        let (status, body) = env
            .http("POST", "/backups/restore", Some(request), None)
            .await;
        assert_eq!(
            (status, &body["error"]["field"]),
            (refused, &json!("as_of")),
            "{body}"
        );
    }

    let (_, body) = env
        .post_to_end(
            "/backups/restore",
            json!({"company_id": "acme", "mailbox": BILLING, "as_of": snapshot_id,
                "requested_by": "it@acmecorp.com", "reason": "permissions wiped by mistake"}),
        )
        .await;
    let result = &body["result"];
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["backup"]["snapshot_id"], snapshot_id.as_str());
    assert_eq!(result["restored"].as_array().unwrap().len(), 5, "{result}");
    assert_eq!(result["verification"]["all_restored"], true, "{result}");
    assert_eq!(on_billing(), before, "the snapshot's grants exactly");
    assert_eq!(env.dlq_depths().await, vec![0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_review_sends_one_digest_per_company_and_a_retry_makes_no_second_ticket() {
    let env = Env::start(fixture("review-tenant.json"), 10).await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(revoke365_testkit::events_dir().join("scheduled-review.json"))
            .unwrap(),
    )
    .unwrap();
    // No snapshot yet: the invocation fails, naming why.
    let early = handle_step_event(&env.steps[0].1, event.clone(), env.deadline()).await;
    assert!(early.unwrap_err().to_string().contains("sweep"));
    scheduled_index(&env).await;
    let before = env.sim.snapshot();

    let answer = handle_step_event(&env.steps[0].1, event.clone(), env.deadline())
        .await
        .expect("the scheduled review");
    assert_eq!(answer["job"], "review", "{answer}");
    // The sample asks for users inactive for 90 days: it.admin (March 2025) and Jane (never)
    // join the five the review lists anyway.
    assert_eq!(answer["trustees"], 7, "{answer}");
    assert_eq!(answer["summary"]["inactive"], 2, "{answer}");
    let ticket_id = answer["digest"]["ticket_id"].as_str().unwrap().to_string();
    let s = env.sim.snapshot();
    assert_eq!(s.tickets.len(), before.tickets.len() + 1);
    let ticket = s.ticket(&ticket_id).unwrap();
    assert!(
        ticket.summary.contains("[access-review acme "),
        "{}",
        ticket.summary
    );
    assert_eq!(ticket.notes.len(), 1);
    assert!(ticket.notes[0]
        .text
        .contains("dana.left@acmecorp.com (disabled accounts)"));
    assert_eq!(s.sent_mail.len(), before.sent_mail.len() + 1);
    assert_eq!(
        s.direct_grants_of("dana.left@acmecorp.com").len(),
        2,
        "a scheduled review revokes nothing"
    );

    // The schedule's retry of the same day: the ticket and note are found, not made again.
    let again = handle_step_event(&env.steps[0].1, event, env.deadline())
        .await
        .unwrap();
    assert_eq!(again["digest"]["ticket_id"], ticket_id.as_str());
    let s = env.sim.snapshot();
    assert_eq!(s.tickets.len(), before.tickets.len() + 1);
    assert_eq!(s.ticket(&ticket_id).unwrap().notes.len(), 1);
}

fn trustee(id: &str, upn: &str) -> Trustee {
    Trustee {
        trustee_id: id.into(),
        kind: TrusteeKind::User,
        upn: Some(upn.into()),
        object_id: Some(id.into()),
        address: Some(upn.into()),
        display_name: Some(upn.into()),
        recipient_type: Some("UserMailbox".into()),
        distinguished_name: None,
        shown_as: vec![upn.into()],
    }
}

fn grant(trustee_id: &str, mailbox: &str, right: PermissionType) -> IndexedGrant {
    IndexedGrant {
        trustee_id: trustee_id.into(),
        mailbox: mailbox.into(),
        mailbox_display_name: mailbox.into(),
        recipient_type: "SharedMailbox".into(),
        right,
        trustee_as_shown: trustee_id.into(),
        access_rights: vec!["FullAccess".into()],
        calendar: None,
        folder: None,
    }
}

/// A small snapshot taken `days_ago`.
fn snapshot(id: &str, days_ago: i64) -> Snapshot {
    let trustees = vec![
        trustee("u-1", "ann@acmecorp.com"),
        trustee("u-2", "bob@acmecorp.com"),
    ];
    let grants = vec![
        grant("u-1", "sales@acmecorp.com", PermissionType::FullAccess),
        grant("u-1", "hr@acmecorp.com", PermissionType::SendAs),
        grant("u-2", "sales@acmecorp.com", PermissionType::SendOnBehalf),
    ];
    Snapshot {
        summary: SnapshotSummary {
            snapshot_id: id.into(),
            company_id: "acme".into(),
            tenant_id: acme().tenant_id,
            taken_at: Utc::now() - Duration::days(days_ago),
            duration_ms: 10,
            mailboxes: 3,
            trustees: trustees.len() as u64,
            grants: grants.len() as u64,
            calls: BTreeMap::from([("exchange".into(), 4)]),
            limits: BTreeMap::from([("exchange".into(), 8)]),
            errors: vec![],
            resumed_mailboxes: 0,
        },
        trustees,
        grants,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_keeps_the_newest_snapshots_and_the_young_ones_as_sqlite_does() {
    let env = Env::start(fixture("acme-tenant.json"), 4).await;
    let index = env.intake.store.permission_index().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteRunStore::open(dir.path(), vec![acme()]).unwrap();
    let keep = IndexSettings {
        keep_snapshots: 2,
        keep_days: 35,
        ..IndexSettings::default()
    };
    let taken = [
        ("s100", 100),
        ("s80", 80),
        ("s30", 30),
        ("s20", 20),
        ("s0", 0),
    ];
    for (id, days) in taken {
        let s = snapshot(id, days);
        index.save_snapshot(&s, &keep).await.unwrap();
        sqlite.save_snapshot(&s, &keep).await.unwrap();
    }
    let ids = |all: Vec<SnapshotSummary>| -> Vec<String> {
        all.into_iter().map(|s| s.snapshot_id).collect()
    };
    // The newest two, and s30 (younger than 35 days); s80 and s100 dropped.
    assert_eq!(
        ids(index.snapshots("acme").await.unwrap()),
        ["s0", "s20", "s30"]
    );
    assert_eq!(
        ids(index.snapshots("acme").await.unwrap()),
        ids(sqlite.snapshots("acme").await.unwrap())
    );
    // Every item of a dropped snapshot is gone (the test may scan; the code never does).
    let all = env
        .ddb
        .scan()
        .table_name(&env.names.index_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mentions = |id: &str| {
        all.iter()
            .filter(|i| {
                i.values()
                    .any(|v| v.as_s().is_ok_and(|s| s.contains(&format!("#{id}"))))
            })
            .count()
    };
    assert_eq!(mentions("s80"), 0);
    assert_eq!(mentions("s100"), 0);
    // Per kept snapshot: pointer, summary, 2 trustees, 3 grants, 2 listings, and the keys
    // (UPN = address = shown value, object id = trustee id: 2 per trustee).
    assert_eq!(all.len(), 3 * (1 + 1 + 2 + 3 + 2 + 4));
    for gone in ["s80", "s100"] {
        assert_eq!(
            index
                .held_by(gone, &["ann@acmecorp.com".into()])
                .await
                .unwrap(),
            IndexHits::default()
        );
        assert_eq!(index.everything(gone).await.unwrap(), IndexHits::default());
    }
    // What is kept reads as SQLite reads it.
    for id in ["s0", "s20", "s30"] {
        assert_eq!(
            sorted(index.everything(id).await.unwrap()),
            sorted(sqlite.everything(id).await.unwrap())
        );
        assert_eq!(
            sorted(index.held_on(id, "sales@acmecorp.com").await.unwrap()),
            sorted(sqlite.held_on(id, "sales@acmecorp.com").await.unwrap())
        );
        assert_eq!(
            index
                .held_by(id, &["u-2".into()])
                .await
                .unwrap()
                .grants
                .len(),
            1
        );
    }
    // Finding a snapshot: newest, by id, as of a time; another company's id finds nothing.
    for which in [
        SnapshotRef::Newest,
        SnapshotRef::Id("s20".into()),
        SnapshotRef::Id("s80".into()),
        SnapshotRef::AsOf(Utc::now() - Duration::days(25)),
        SnapshotRef::AsOf(Utc::now() - Duration::days(200)),
    ] {
        assert_eq!(
            index.find_snapshot("acme", &which).await.unwrap(),
            sqlite.find_snapshot("acme", &which).await.unwrap(),
            "{which:?}"
        );
    }
    assert_eq!(
        index
            .find_snapshot("acme", &SnapshotRef::AsOf(Utc::now() - Duration::days(25)))
            .await
            .unwrap()
            .unwrap()
            .snapshot_id,
        "s30"
    );
    assert_eq!(
        index
            .find_snapshot("globex", &SnapshotRef::Id("s20".into()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_index_job_without_a_company_for_an_unknown_one_or_out_of_time_fails_loudly() {
    let env = Env::start(fixture("acme-tenant.json"), 4).await;
    for event in [
        json!({"v": 1, "kind": "scheduled", "job": "index"}),
        json!({"v": 1, "kind": "scheduled", "job": "index", "company_id": "nobody"}),
    ] {
        let e = handle_step_event(&env.steps[0].1, event.clone(), env.deadline())
            .await
            .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("company_id") || text.contains("nobody"),
            "{event}: {text}"
        );
    }
    // An invocation whose deadline has come sends nothing more and stores nothing.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(revoke365_testkit::events_dir().join("scheduled-index.json"))
            .unwrap(),
    )
    .unwrap();
    let spent = revoke365::steps::Deadline::at(std::time::Instant::now());
    let cut = handle_step_event(&env.steps[0].1, event, spent)
        .await
        .expect_err("cut short");
    assert!(cut.to_string().contains("journaled"), "{cut}");
    assert!(env
        .intake
        .store
        .permission_index()
        .unwrap()
        .snapshots("acme")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_index_sweep_cut_short_is_gone_on_with_by_the_retry_from_its_journal() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let store = &env.intake.store;
    let journal = store.sweep_journal().expect("a journal");
    // What an earlier invocation had read of two mailboxes before its timeout.
    let full = {
        let conns = embedded_connector(&env).connect(&acme()).await.unwrap();
        revoke365::index::sweep(conns.tenant(), &acme(), &NoProgress, &BTreeMap::new)
            .await
            .unwrap()
    };
    let started = Utc::now() - Duration::minutes(5);
    journal
        .begin_sweep("acme", "20261201T010000Z-cutshort", started)
        .await
        .unwrap();
    let reads =
        revoke365_testkit::journaled_reads(&full, &["ceo@acmecorp.com", "billing@acmecorp.com"]);
    journal
        .save_sweep_reads("acme", "20261201T010000Z-cutshort", &reads)
        .await
        .unwrap();
    let progress = journal.unfinished_sweep("acme").await.unwrap().unwrap();
    assert_eq!(progress.done.len(), 2);
    assert_eq!(progress.done["ceo@acmecorp.com"], reads[0].1);

    // The schedule's retry goes on with it and stores the snapshot under the sweep's id.
    let answer = scheduled_index(&env).await;
    assert_eq!(
        answer["snapshot_id"], "20261201T010000Z-cutshort",
        "{answer}"
    );
    assert_eq!(answer["resumed_mailboxes"], 2, "{answer}");
    let index = store.permission_index().unwrap();
    let stored = sorted(index.everything("20261201T010000Z-cutshort").await.unwrap());
    let key = |h: &IndexHits| -> BTreeSet<(String, PermissionType, String)> {
        h.grants
            .iter()
            .map(|g| (g.mailbox.clone(), g.right, g.trustee_id.clone()))
            .collect()
    };
    let whole = IndexHits {
        trustees: full.trustees.clone(),
        grants: full.grants.clone(),
    };
    assert_eq!(
        key(&stored),
        key(&whole),
        "what an uninterrupted sweep finds"
    );
    assert!(
        journal.unfinished_sweep("acme").await.unwrap().is_none(),
        "the journal ends with the snapshot"
    );
}

/// The roles as the template grants them: intake reads the index (GET /access), discovery
/// writes it (the scheduled sweep, pruning) and reads it (contain); removal and verification
/// do not touch it; the API routes GET /access to intake.
#[test]
fn the_template_grants_the_index_to_the_functions_that_use_it_and_no_more() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .unwrap();
    let t: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let r = &t["Resources"];
    let table = &r["IndexTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["GlobalSecondaryIndexes"][0]["IndexName"],
        revoke365::adapters::aws::index_table::MAILBOX_INDEX
    );
    let actions_on_index = |role: &str| -> BTreeSet<String> {
        let statements = r[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap();
        let mut out = BTreeSet::new();
        for s in statements {
            if !serde_yaml::to_string(&s["Resource"])
                .unwrap()
                .contains("IndexTable")
            {
                continue;
            }
            match &s["Action"] {
                serde_yaml::Value::String(a) => {
                    out.insert(a.clone());
                }
                serde_yaml::Value::Sequence(a) => {
                    out.extend(a.iter().map(|x| x.as_str().unwrap().to_string()))
                }
                other => panic!("{other:?}"),
            }
        }
        out
    };
    let set = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        actions_on_index("IntakeRole"),
        set(&["dynamodb:GetItem", "dynamodb:Query"])
    );
    assert_eq!(
        actions_on_index("DiscoveryRole"),
        set(&[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:BatchWriteItem"
        ])
    );
    // A backup restore's batches and re-read read the snapshot's trustees, never write.
    for role in ["RemovalRole", "VerificationRole"] {
        assert_eq!(
            actions_on_index(role),
            set(&["dynamodb:GetItem", "dynamodb:Query"]),
            "{role}"
        );
    }
    for (event, method, path) in [
        ("GetAccess", "GET", "/access"),
        ("RestoreBackup", "POST", "/backups/restore"),
    ] {
        let route = &r["IntakeFunction"]["Properties"]["Events"][event]["Properties"];
        assert_eq!(
            (&route["Method"], &route["Path"]),
            (&method.into(), &path.into())
        );
    }
    assert!(text.contains("REVOKE365_INDEX_TABLE: !Ref IndexTable"));
}

/// How many runs the history holds for Acme.
async fn acme_runs(env: &Env) -> usize {
    let acme = revoke365::model::RunFilter {
        company_id: Some("acme".into()),
        ..Default::default()
    };
    env.intake
        .store
        .list_runs(&acme, 100, None)
        .await
        .unwrap()
        .runs
        .len()
}

/// The powers that grant and reveal access answer only the principals their own lists name,
/// deny by default: with `restore_principals` and `access_principals` empty (or naming another
/// role), the API's caller gets 403 on `GET /access`, `POST /backups/restore` and `POST
/// /revocations/{id}/restore` — nothing is read, no run is made, the tenant is unchanged —
/// though `allowed_principals` lets it revoke.
#[tokio::test(flavor = "multi_thread")]
async fn restore_and_access_refuse_callers_their_own_lists_do_not_name() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    scheduled_index(&env).await;
    let (run_id, _) = env
        .post_to_end(
            "/revocations",
            json!({"user_email": JOHN, "company_id": "acme"}),
        )
        .await;
    for lists in [
        vec![],
        vec!["arn:aws:iam::123456789012:role/OtherTeam".to_string()],
    ] {
        let mut org = acme();
        org.restore_principals = lists.clone();
        org.access_principals = lists.clone();
        env.intake.store.put_org_settings(&org).await.unwrap();
        let before = env.sim.snapshot();
        let runs_before = acme_runs(&env).await;
        for (method, path, body) in [
            ("GET", format!("/access?company_id=acme&user={JOHN}"), None),
            (
                "POST",
                "/backups/restore".to_string(),
                Some(
                    json!({"company_id": "acme", "mailbox": "ceo@acmecorp.com", "as_of": Utc::now().to_rfc3339()}),
                ),
            ),
            (
                "POST",
                format!("/revocations/{run_id}/restore"),
                Some(json!({})),
            ),
        ] {
            let (status, answer) = env.http(method, &path, body, None).await;
            assert_eq!(status, 403, "{method} {path} with {lists:?}: {answer}");
        }
        let runs_after = acme_runs(&env).await;
        assert_eq!(runs_after, runs_before, "no run was made");
        assert_eq!(env.sim.snapshot().mailboxes, before.mailboxes);
    }
}
