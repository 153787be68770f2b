//! The audit trail in DynamoDB is tamper-evident: after a run, editing the audit table
//! directly (changing, deleting or inserting an item) makes
//! `GET /revocations/{id}/audit?verify=1` name the record; re-sealing the chains, deleting the
//! manifest or stripping the chains is `tampered` too (the manifest is sealed with a KMS HMAC
//! key), and a restore refuses each; twin writes at one chain place do not fork the chain.

use crate::aws_kit::{Env, JOHN};
use aws_sdk_dynamodb::types::AttributeValue;
use revoke365::error::StoreError;
use revoke365::model::{AuditManifest, AuditPhase, AuditRecord, ChainHead};
use revoke365::ports::AuditTrail;
use revoke365_testkit::fixture;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

async fn finished_run(env: &Env) -> String {
    let (status, accepted) = env
        .http(
            "POST",
            "/revocations",
            Some(json!({"user_email": JOHN, "company_id": "acme"})),
            Some("audit-chain"),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    run_id
}

async fn verify(env: &Env, run_id: &str) -> Value {
    let (status, body) = env
        .http(
            "GET",
            &format!("/revocations/{run_id}/audit?verify=1"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The audit table's records of the run, as stored (the chains' head items left out).
async fn audit_items(env: &Env, run_id: &str) -> Vec<Item> {
    env.ddb
        .query()
        .table_name(&env.names.audit_table)
        .key_condition_expression("run_id = :r")
        .expression_attribute_values(":r", AttributeValue::S(run_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !record_id(i).starts_with("chainhead#"))
        .collect()
}

fn record_field<'a>(item: &'a Item, field: &str) -> Option<&'a AttributeValue> {
    item.get("record")?.as_m().ok()?.get(field)
}

/// The stored item of `chain`'s record at `seq`.
fn at(items: &[Item], chain: &str, seq: u64) -> Item {
    items
        .iter()
        .find(|i| {
            record_field(i, "chain").and_then(|c| c.as_s().ok()) == Some(&chain.to_string())
                && record_field(i, "seq").and_then(|n| n.as_n().ok()) == Some(&seq.to_string())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no record {chain} #{seq}"))
}

fn record_id(item: &Item) -> String {
    item["record_id"].as_s().unwrap().clone()
}

async fn put(env: &Env, item: Item) {
    env.ddb
        .put_item()
        .table_name(&env.names.audit_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn delete(env: &Env, run_id: &str, record_id: &str) {
    env.ddb
        .delete_item()
        .table_name(&env.names.audit_table)
        .key("run_id", AttributeValue::S(run_id.into()))
        .key("record_id", AttributeValue::S(record_id.into()))
        .send()
        .await
        .unwrap();
}

fn problems(check: &Value) -> Vec<(String, String)> {
    check["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["record_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_audit_table_is_found_and_the_record_named() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let run_id = finished_run(&env).await;

    let intact = verify(&env, &run_id).await;
    assert_eq!(intact["status"], "intact", "{intact}");
    assert_eq!(intact["records"], 17);
    assert_eq!(problems(&intact), vec![]);
    let (_, listed) = env
        .http("GET", &format!("/revocations/{run_id}/audit"), None, None)
        .await;
    assert_eq!(listed["records"].as_array().unwrap().len(), 17);

    let items = audit_items(&env, &run_id).await;
    let original = at(&items, "batch#00000", 1);
    let id = record_id(&original);

    // Changed: the before-state names another user.
    let mut changed = original.clone();
    let mut record = changed["record"].as_m().unwrap().clone();
    record.insert(
        "user_email".into(),
        AttributeValue::S("someone.else@acmecorp.com".into()),
    );
    changed.insert("record".into(), AttributeValue::M(record));
    put(&env, changed).await;
    let check = verify(&env, &run_id).await;
    assert_eq!(check["status"], "tampered");
    assert_eq!(problems(&check), vec![("modified".to_string(), id.clone())]);
    put(&env, original.clone()).await;
    assert_eq!(verify(&env, &run_id).await["status"], "intact");

    // Deleted: named by its place and the record after it.
    let next = record_id(&at(&items, "batch#00000", 2));
    delete(&env, &run_id, &id).await;
    let check = verify(&env, &run_id).await;
    assert_eq!(check["status"], "tampered");
    assert_eq!(
        problems(&check),
        vec![("removed".to_string(), next.clone())]
    );
    assert_eq!(check["problems"][0]["chain"], "batch#00000");
    assert_eq!(check["problems"][0]["seq"], 1);
    put(&env, original.clone()).await;

    // Inserted: a copy under a new id, claiming the same place.
    let mut inserted = original.clone();
    inserted.insert(
        "record_id".into(),
        AttributeValue::S("item#99999#before".into()),
    );
    let mut record = inserted["record"].as_m().unwrap().clone();
    record.insert(
        "record_id".into(),
        AttributeValue::S("item#99999#before".into()),
    );
    inserted.insert("record".into(), AttributeValue::M(record));
    put(&env, inserted).await;
    let check = verify(&env, &run_id).await;
    assert_eq!(check["status"], "tampered");
    assert_eq!(
        problems(&check),
        vec![("inserted".to_string(), "item#99999#before".to_string())]
    );
    delete(&env, &run_id, "item#99999#before").await;
    assert_eq!(verify(&env, &run_id).await["status"], "intact");

    // The manifest anchored in the run finds a record deleted from the end of a chain.
    let verification = at(&items, "verification", 0);
    delete(&env, &run_id, &record_id(&verification)).await;
    let check = verify(&env, &run_id).await;
    assert_eq!(check["status"], "tampered");
    assert_eq!(check["problems"][0]["kind"], "removed");
    assert_eq!(check["problems"][0]["chain"], "verification");
}

/// The run item's manifest, as stored.
async fn manifest(env: &Env, run_id: &str) -> Value {
    let out = env
        .ddb
        .get_item()
        .table_name(&env.names.runs_table)
        .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
        .key("sk", AttributeValue::S("RUN".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let json = out.item.unwrap()["audit_manifest"].as_s().unwrap().clone();
    serde_json::from_str(&json).unwrap()
}

/// Sets (`Some`) or removes the run item's `audit_manifest`, as a writer of the runs table
/// could.
async fn set_manifest(env: &Env, run_id: &str, manifest: Option<&Value>) {
    let update = env
        .ddb
        .update_item()
        .table_name(&env.names.runs_table)
        .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
        .key("sk", AttributeValue::S("RUN".into()));
    let update = match manifest {
        Some(m) => update
            .update_expression("SET audit_manifest = :m")
            .expression_attribute_values(":m", AttributeValue::S(m.to_string())),
        None => update.update_expression("REMOVE audit_manifest"),
    };
    update.send().await.unwrap();
}

fn record_of(item: &Item) -> AuditRecord {
    serde_dynamo::from_attribute_value(item["record"].clone()).unwrap()
}

fn with_record(item: &Item, record: &AuditRecord) -> Item {
    let mut item = item.clone();
    item.insert(
        "record".into(),
        serde_dynamo::to_attribute_value(record).unwrap(),
    );
    item
}

/// Rewrites the run's trail in the tables as a writer of them (without the KMS key) could:
/// `edited` (a `before` record on ceo@ names sales@), `resealed` (that edit, every chain's
/// hashes recomputed and the manifest written anew with the MAC it had), `no manifest`, or
/// `stripped` (every record out of its chain, no manifest).
async fn tamper(env: &Env, run_id: &str, case: &str) {
    let items = audit_items(env, run_id).await;
    let mut records: Vec<(Item, AuditRecord)> =
        items.iter().map(|i| (i.clone(), record_of(i))).collect();
    if matches!(case, "edited" | "resealed") {
        let grant = records
            .iter_mut()
            .filter(|(_, r)| r.phase == AuditPhase::Before)
            .filter_map(|(_, r)| r.grant.as_mut())
            .find(|g| g.mailbox == "ceo@acmecorp.com")
            .expect("a before record on ceo@");
        grant.trustee = "sales@acmecorp.com".into();
        grant.trustee_as_shown = None;
    }
    if case == "resealed" {
        records.sort_by(|(_, a), (_, b)| (&a.chain, a.seq).cmp(&(&b.chain, b.seq)));
        let mut heads: BTreeMap<String, ChainHead> = BTreeMap::new();
        for (_, r) in records.iter_mut() {
            let chain = r.chain.clone().unwrap();
            *r = r.clone().sealed(&chain, heads.get(&chain));
            let head = ChainHead {
                length: r.seq.unwrap() + 1,
                head: r.hash.clone().unwrap(),
            };
            heads.insert(chain, head);
        }
        let plain: Vec<AuditRecord> = records.iter().map(|(_, r)| r.clone()).collect();
        let mut rewritten = AuditManifest::of(&plain);
        rewritten.mac = manifest(env, run_id).await["mac"]
            .as_str()
            .map(str::to_string);
        set_manifest(env, run_id, Some(&json!(rewritten))).await;
    }
    if case == "stripped" {
        for (_, r) in &mut records {
            (r.chain, r.seq, r.prev_hash, r.hash) = (None, None, None, None);
        }
    }
    if matches!(case, "no manifest" | "stripped") {
        set_manifest(env, run_id, None).await;
    }
    for (item, record) in &records {
        put(env, with_record(item, record)).await;
    }
}

/// A restore through the handlers grants access only from a trail that verifies `intact`:
/// each way a writer of the audit and runs tables can rewrite it without the KMS key is
/// `tampered` on `?verify=1` and refused by the restore (`audit_untrusted`, field `run_id`),
/// and sales@ gains nothing. The manifest is sealed with a KMS HMAC key (LocalStack's KMS).
#[tokio::test(flavor = "multi_thread")]
async fn a_trail_edited_resealed_unanchored_or_stripped_is_tampered_and_not_restored() {
    for case in ["edited", "resealed", "no manifest", "stripped"] {
        let env = Env::start(fixture("acme-tenant.json"), 10).await;
        let run_id = finished_run(&env).await;
        assert_eq!(verify(&env, &run_id).await["status"], "intact");
        assert!(
            manifest(&env, &run_id).await["mac"].is_string(),
            "the manifest is sealed"
        );
        tamper(&env, &run_id, case).await;
        let check = verify(&env, &run_id).await;
        assert_eq!(check["status"], "tampered", "{case}: {check}");
        if case == "resealed" {
            assert_eq!(problems(&check).len(), 1, "only the seal: {check}");
            let message = check["problems"][0]["message"].as_str().unwrap();
            assert!(message.contains("seal (MAC) does not verify"), "{check}");
        }

        let before = env.sim.snapshot().mailboxes;
        let (status, accepted) = env
            .http(
                "POST",
                &format!("/revocations/{run_id}/restore"),
                Some(json!({"include_revoked": true})),
                None,
            )
            .await;
        assert_eq!(status, 202, "{case}: {accepted}");
        env.pump_steps(1).await;
        let restore = env.get(accepted["run_id"].as_str().unwrap()).await;
        assert_eq!(restore["status"], "failed", "{case}: {restore}");
        assert_eq!(
            (
                restore["failure"]["code"].as_str(),
                restore["failure"]["field"].as_str()
            ),
            (Some("audit_untrusted"), Some("run_id")),
            "{case}: {restore}"
        );
        assert_eq!(
            env.sim.snapshot().mailboxes,
            before,
            "{case}: nothing granted"
        );
    }
}

/// Two deliveries of one removal batch write at once: the second record at a place its twin
/// took is refused (`ChainPlaceTaken`, so the writer links after the new head), never
/// written beside it: the chain does not fork.
#[tokio::test(flavor = "multi_thread")]
async fn a_twin_write_at_a_taken_chain_place_is_refused_and_the_chain_does_not_fork() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let run_id = finished_run(&env).await;
    let items = audit_items(&env, &run_id).await;
    let first = record_of(&at(&items, "batch#00000", 0));
    let head = AuditManifest::of(std::slice::from_ref(&first)).chains["batch#00000"].clone();
    let taken = record_of(&at(&items, "batch#00000", 1));
    let mut twin = taken.clone();
    twin.record_id = "item#99999#before".into();
    let twin = twin.sealed("batch#00000", Some(&head));
    let store = &env.intake.store;
    match store.append_audit(&twin).await {
        Err(StoreError::ChainPlaceTaken { chain, seq }) => {
            assert_eq!((chain.as_str(), seq), ("batch#00000", 1))
        }
        other => panic!("a second record at a taken place: {other:?}"),
    }
    assert!(
        audit_items(&env, &run_id)
            .await
            .iter()
            .all(|i| record_id(i) != "item#99999#before"),
        "nothing written beside the record at that place"
    );
    assert_eq!(verify(&env, &run_id).await["status"], "intact");
    // The record already written is still answered as written once (a redelivery).
    assert!(!store.append_audit(&taken).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_route_answers_404_for_an_unknown_run_and_400_for_a_bad_verify() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (status, body) = env
        .http("GET", "/revocations/no-such-run/audit?verify=1", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (404, json!("run_id"))
    );
    let (status, body) = env
        .http(
            "GET",
            "/revocations/no-such-run/audit?verify=yes",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("verify"))
    );
}
