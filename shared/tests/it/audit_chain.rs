//! The audit trail is hash-chained per removal batch and anchored in the run: editing the
//! JSONL file on disk (changing, deleting or inserting a line) is found and the record named.

use crate::harness::Harness;
use crate::kit::{fast_http, fixture};
use revoke365::model::{AuditCheck, AuditStatus, ProblemKind};
use revoke365::ports::RunStore;
use revoke365::steps::check_run_audit;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A finished run on the acme tenant and where its audit file is.
async fn finished_run() -> (Harness, revoke365::model::RunId, PathBuf) {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let run = h
        .run(json!({"user_email": "john.smith@acmecorp.com", "company_id": "acme"}))
        .await;
    assert!(run.result.as_ref().is_some_and(|r| r.success), "{run:?}");
    let path = h.store.audit_path(&run.run_id);
    (h, run.run_id, path)
}

fn read_lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(path: &PathBuf, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

async fn check(h: &Harness, run_id: &revoke365::model::RunId) -> AuditCheck {
    check_run_audit(h.store.as_ref(), run_id).await.unwrap()
}

/// The record of `chain` at `seq` in the file's lines.
fn position(lines: &[Value], chain: &str, seq: u64) -> usize {
    lines
        .iter()
        .position(|l| l["chain"] == chain && l["seq"] == seq)
        .unwrap_or_else(|| panic!("no record {chain} #{seq}"))
}

fn named(check: &AuditCheck, kind: ProblemKind, record_id: &str) -> bool {
    check
        .problems
        .iter()
        .any(|p| p.kind == kind && p.record_id.as_deref() == Some(record_id))
}

#[tokio::test]
async fn an_untouched_trail_verifies_with_one_chain_per_removal_batch() {
    let (h, run_id, path) = finished_run().await;
    let lines = read_lines(&path);
    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Intact, "{checked:?}");
    assert!(checked.problems.is_empty());
    assert_eq!(checked.records, lines.len());
    let batches = h
        .store
        .get_run(&run_id)
        .await
        .unwrap()
        .unwrap()
        .batches_total as usize;
    assert!(batches >= 2, "acme removes in several batches");
    assert_eq!(
        checked.chains,
        batches + 1,
        "one chain per batch and verification's"
    );
    for line in &lines {
        assert!(
            line["hash"].is_string() && line["chain"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_changed_record_is_named() {
    let (h, run_id, path) = finished_run().await;
    let mut lines = read_lines(&path);
    let i = position(&lines, "batch#00000", 1);
    let id = lines[i]["record_id"].as_str().unwrap().to_string();
    lines[i]["user_email"] = json!("someone.else@acmecorp.com");
    write_lines(&path, &lines);

    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered);
    assert!(named(&checked, ProblemKind::Modified, &id), "{checked:?}");
    assert_eq!(checked.problems.len(), 1, "only that record: {checked:?}");
}

#[tokio::test]
async fn a_deleted_record_is_named_by_its_place_and_the_one_after_it() {
    let (h, run_id, path) = finished_run().await;
    let mut lines = read_lines(&path);
    let next = lines[position(&lines, "batch#00000", 2)]["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    lines.remove(position(&lines, "batch#00000", 1));
    write_lines(&path, &lines);

    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered);
    let p = &checked.problems[0];
    assert_eq!(
        (p.kind, p.record_id.as_deref(), p.chain.as_deref(), p.seq),
        (
            ProblemKind::Removed,
            Some(next.as_str()),
            Some("batch#00000"),
            Some(1)
        ),
        "{checked:?}"
    );
    assert!(p.message.contains(&next), "{}", p.message);
}

#[tokio::test]
async fn a_record_deleted_from_the_end_of_a_chain_is_found_against_the_manifest() {
    let (h, run_id, path) = finished_run().await;
    let mut lines = read_lines(&path);
    lines.retain(|l| l["chain"] != "verification");
    let last_of_batch = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["chain"] == "batch#00000")
        .max_by_key(|(_, l)| l["seq"].as_u64())
        .map(|(i, _)| i)
        .unwrap();
    lines.remove(last_of_batch);
    write_lines(&path, &lines);

    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered);
    let chains: Vec<_> = checked
        .problems
        .iter()
        .map(|p| (p.kind, p.chain.clone().unwrap()))
        .collect();
    assert_eq!(
        chains,
        [
            (ProblemKind::Removed, "batch#00000".to_string()),
            (ProblemKind::Removed, "verification".to_string())
        ],
        "{checked:?}"
    );
}

#[tokio::test]
async fn an_inserted_record_is_named() {
    let (h, run_id, path) = finished_run().await;
    let original = read_lines(&path);

    // A record made up by hand, in no chain.
    let mut lines = original.clone();
    let mut forged = lines[0].clone();
    for field in ["chain", "seq", "prev_hash", "hash"] {
        forged.as_object_mut().unwrap().remove(field);
    }
    forged["record_id"] = json!("item#99999#before");
    lines.push(forged);
    write_lines(&path, &lines);
    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered);
    assert!(
        named(&checked, ProblemKind::Inserted, "item#99999#before"),
        "{checked:?}"
    );

    // A copy of a chained record under a new id, taking its place in the chain.
    let mut lines = original.clone();
    let mut copy = lines[position(&lines, "batch#00000", 1)].clone();
    copy["record_id"] = json!("item#99998#outcome");
    lines.push(copy);
    write_lines(&path, &lines);
    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered);
    assert!(
        named(&checked, ProblemKind::Inserted, "item#99998#outcome"),
        "{checked:?}"
    );
    assert_eq!(checked.problems.len(), 1, "{checked:?}");
}

#[tokio::test]
async fn records_written_before_chaining_verify_as_unchained() {
    let (h, run_id, path) = finished_run().await;
    let mut lines = read_lines(&path);
    for line in &mut lines {
        for field in ["chain", "seq", "prev_hash", "hash"] {
            line.as_object_mut().unwrap().remove(field);
        }
    }
    write_lines(&path, &lines);
    std::fs::remove_file(h.store.manifest_path(&run_id)).unwrap();

    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Unchained, "{checked:?}");
    assert!(checked.problems.is_empty());
    assert_eq!(checked.records, lines.len());
}

#[cfg(unix)]
#[tokio::test]
async fn the_audit_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (h, run_id, path) = finished_run().await;
    for file in [
        path,
        h.store.manifest_path(&run_id),
        h.store.result_path(&run_id),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// A restore grants access, so it acts only on a trail that verifies and names the run's user.
/// A `before` record edited to name sales@, the same edit with every chain re-sealed and the
/// manifest rewritten (so the chains verify), and a finished run whose manifest is gone: each
/// restore is refused (`audit_untrusted`), and sales@ gains nothing on the CEO's mailbox.
#[tokio::test]
async fn a_restore_refuses_a_trail_that_is_edited_resealed_or_unanchored() {
    use revoke365::model::{AuditManifest, AuditRecord, ChainHead};
    for case in ["edited", "resealed", "no manifest"] {
        let (h, run_id, path) = finished_run().await;
        let mut records: Vec<AuditRecord> = read_lines(&path)
            .into_iter()
            .map(|l| serde_json::from_value(l).unwrap())
            .collect();
        let edited = records
            .iter_mut()
            .find(|r| {
                r.phase == revoke365::model::AuditPhase::Before
                    && r.grant
                        .as_ref()
                        .is_some_and(|g| g.mailbox == "ceo@acmecorp.com")
            })
            .expect("a before record on ceo@");
        match case {
            "no manifest" => std::fs::remove_file(h.store.manifest_path(&run_id)).unwrap(),
            _ => {
                let grant = edited.grant.as_mut().unwrap();
                grant.trustee = "sales@acmecorp.com".into();
                grant.trustee_as_shown = None;
            }
        }
        if case == "resealed" {
            // A writer of the trail re-seals every chain and writes the manifest anew.
            records.sort_by(|a, b| (&a.chain, a.seq).cmp(&(&b.chain, b.seq)));
            let mut heads: std::collections::BTreeMap<String, ChainHead> = Default::default();
            records = records
                .into_iter()
                .map(|r| {
                    let chain = r.chain.clone().unwrap();
                    let sealed = r.sealed(&chain, heads.get(&chain));
                    heads.insert(
                        chain,
                        ChainHead {
                            length: sealed.seq.unwrap() + 1,
                            head: sealed.hash.clone().unwrap(),
                        },
                    );
                    sealed
                })
                .collect();
            std::fs::write(
                h.store.manifest_path(&run_id),
                serde_json::to_vec(&AuditManifest::of(&records)).unwrap(),
            )
            .unwrap();
        }
        if case != "no manifest" {
            let lines: Vec<Value> = records.iter().map(|r| json!(r)).collect();
            write_lines(&path, &lines);
        }
        if case == "resealed" {
            assert!(
                check(&h, &run_id).await.is_intact(),
                "re-sealed, the chains verify"
            );
        }
        let before = h.snapshot().mailboxes;
        let restore = h.restore(&run_id, json!({})).await;
        let failure = restore
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{case}: {restore:?}"));
        assert_eq!(
            failure.code.as_str(),
            "audit_untrusted",
            "{case}: {failure:?}"
        );
        assert_eq!(failure.field.as_deref(), Some("run_id"));
        assert_eq!(
            h.snapshot().mailboxes,
            before,
            "{case}: nothing was granted"
        );
    }
}
