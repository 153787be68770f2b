//! The audit trail in DynamoDB is tamper-evident: after a run, editing the audit table
//! directly (changing, deleting or inserting an item) makes
//! `GET /revocations/{id}/audit?verify=1` name the record; records written before chaining
//! verify as `unchained`.

use crate::aws_kit::{Env, JOHN};
use crate::kit::fixture;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::HashMap;

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

#[tokio::test(flavor = "multi_thread")]
async fn records_written_before_chaining_verify_as_unchained() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let run_id = finished_run(&env).await;
    // As the first releases wrote them: no chain fields, no manifest on the run.
    for mut item in audit_items(&env, &run_id).await {
        let mut record = item["record"].as_m().unwrap().clone();
        for field in ["chain", "seq", "prev_hash", "hash"] {
            record.remove(field);
        }
        item.insert("record".into(), AttributeValue::M(record));
        put(&env, item).await;
    }
    env.ddb
        .update_item()
        .table_name(&env.names.runs_table)
        .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
        .key("sk", AttributeValue::S("RUN".into()))
        .update_expression("REMOVE audit_manifest")
        .send()
        .await
        .unwrap();

    let check = verify(&env, &run_id).await;
    assert_eq!(check["status"], "unchained", "{check}");
    assert_eq!(problems(&check), vec![]);
    assert_eq!(check["records"], 17);
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
