//! The audit trail is hash-chained per removal batch and anchored in the run: editing the
//! JSONL file on disk (changing, deleting or inserting a line) is found and the record named.

use revoke365::model::{AuditCheck, AuditStatus, ProblemKind};
use revoke365::ports::RunRecords;
use revoke365::steps::check_run_audit;
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture};
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

fn strip_chains(lines: &mut [Value]) {
    for line in lines {
        for field in ["chain", "seq", "prev_hash", "hash"] {
            line.as_object_mut().unwrap().remove(field);
        }
    }
}

/// Stripping every record of its chain and deleting the manifest makes a trail look as the
/// first release wrote it; but the run was created since chaining began (its id is a UUIDv7,
/// its creation after the date), so the trail is tampered: the missing manifest and every
/// unchained record are named.
#[tokio::test]
async fn a_stripped_chain_of_a_run_created_since_chaining_is_tampered() {
    let (h, run_id, path) = finished_run().await;
    let mut lines = read_lines(&path);
    strip_chains(&mut lines);
    write_lines(&path, &lines);
    std::fs::remove_file(h.store.manifest_path(&run_id)).unwrap();

    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered, "{checked:?}");
    assert!(
        checked
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::Removed
                && p.record_id.is_none()
                && p.message.contains("manifest")),
        "{checked:?}"
    );
    for line in &lines {
        let id = line["record_id"].as_str().unwrap();
        assert!(
            named(&checked, ProblemKind::Inserted, id),
            "{id}: {checked:?}"
        );
    }
}

/// A run the first release wrote (before chaining: no chain fields, no manifest) copied into
/// the store.
async fn first_release_run(h: &Harness) -> revoke365::model::RunId {
    const COMPLETED: &str = "e2530dd0-7cea-4369-b7fd-3ac60da22142";
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/release-1");
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(COMPLETED) {
            std::fs::copy(entry.path(), h.store.dir().join(&name)).unwrap();
        }
    }
    let id = revoke365::model::RunId(COMPLETED.into());
    assert!(h.store.get_run(&id).await.unwrap().is_some(), "it loads");
    id
}

#[tokio::test]
async fn records_written_before_chaining_verify_as_unchained() {
    let h = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let run_id = first_release_run(&h).await;
    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Unchained, "{checked:?}");
    assert!(checked.problems.is_empty());
    assert_eq!(checked.records, 17);
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

/// The trail of a finished acme run, as records.
fn records_of(path: &PathBuf) -> Vec<revoke365::model::AuditRecord> {
    read_lines(path)
        .into_iter()
        .map(|l| serde_json::from_value(l).unwrap())
        .collect()
}

/// What a writer of the trail can do without the audit key: recompute every chain's hashes
/// and write the manifest anew (keeping the seal it finds: it cannot make one).
fn reseal(records: &mut [revoke365::model::AuditRecord], manifest: &std::path::Path) {
    use revoke365::model::{AuditManifest, ChainHead};
    let old: AuditManifest = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    records.sort_by(|a, b| (&a.chain, a.seq).cmp(&(&b.chain, b.seq)));
    let mut heads: std::collections::BTreeMap<String, ChainHead> = Default::default();
    for r in records.iter_mut() {
        let chain = r.chain.clone().unwrap();
        *r = r.clone().sealed(&chain, heads.get(&chain));
        let head = ChainHead {
            length: r.seq.unwrap() + 1,
            head: r.hash.clone().unwrap(),
        };
        heads.insert(chain, head);
    }
    let mut rewritten = AuditManifest::of(records);
    rewritten.mac = old.mac;
    std::fs::write(manifest, serde_json::to_vec(&rewritten).unwrap()).unwrap();
}

/// A restore grants access, so it acts only on a trail that verifies `intact` and names the
/// run's user. A `before` record edited to name sales@; the same edit with every chain
/// re-sealed and the manifest rewritten (the chains link, but the manifest's seal, a MAC under
/// the data directory's audit key, no longer verifies); a finished run whose manifest is gone;
/// a trail stripped of its chains: each restore is refused (`audit_untrusted`), and sales@
/// gains nothing on the CEO's mailbox. The untouched trail verifies and restores.
#[tokio::test]
async fn a_restore_refuses_a_trail_that_is_edited_resealed_unanchored_or_stripped() {
    for case in ["edited", "resealed", "no manifest", "stripped"] {
        let (h, run_id, path) = finished_run().await;
        let manifest = h.store.manifest_path(&run_id);
        let mut records = records_of(&path);
        let edited = records
            .iter_mut()
            .find(|r| {
                r.phase == revoke365::model::AuditPhase::Before
                    && r.grant
                        .as_ref()
                        .is_some_and(|g| g.mailbox == "ceo@acmecorp.com")
            })
            .expect("a before record on ceo@");
        if matches!(case, "edited" | "resealed") {
            let grant = edited.grant.as_mut().unwrap();
            grant.trustee = "sales@acmecorp.com".into();
            grant.trustee_as_shown = None;
        }
        if case == "resealed" {
            reseal(&mut records, &manifest);
        }
        let mut lines: Vec<Value> = records.iter().map(|r| json!(r)).collect();
        if case == "stripped" {
            strip_chains(&mut lines);
        }
        if matches!(case, "no manifest" | "stripped") {
            std::fs::remove_file(&manifest).unwrap();
        }
        write_lines(&path, &lines);
        let checked = check(&h, &run_id).await;
        assert_eq!(checked.status, AuditStatus::Tampered, "{case}: {checked:?}");
        if case == "resealed" {
            // The chains link again: only the seal gives the rewrite away.
            assert_eq!(checked.problems.len(), 1, "{checked:?}");
            assert!(checked.problems[0].message.contains("seal"), "{checked:?}");
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

    let (h, run_id, _) = finished_run().await;
    assert_eq!(check(&h, &run_id).await.status, AuditStatus::Intact);
    let restore = h.restore(&run_id, json!({})).await;
    let report = restore
        .restore_result
        .expect("the untouched trail restores");
    assert!(report.success && report.restored.len() == 8, "{report:?}");
    assert!(
        report
            .restored
            .iter()
            .all(|e| e.trustee.as_deref() == Some("john.smith@acmecorp.com")),
        "every line names whom it gave access: {:?}",
        report.restored
    );
}

/// The data directory's audit key is all that vouches for its trails: with it deleted, a
/// trail it sealed no longer verifies (`tampered`, the seal named), while the next run makes a
/// new key and its own trail verifies.
#[tokio::test]
async fn a_deleted_audit_key_leaves_the_trails_it_sealed_unverifiable() {
    let (h, run_id, _) = finished_run().await;
    let key = revoke365::adapters::audit_key::audit_key_path(h.store.dir());
    assert!(key.is_file(), "made by the first run: {}", key.display());
    std::fs::remove_file(&key).unwrap();
    let checked = check(&h, &run_id).await;
    assert_eq!(checked.status, AuditStatus::Tampered, "{checked:?}");
    assert!(
        checked.problems.len() == 1 && checked.problems[0].message.contains("seal"),
        "{checked:?}"
    );
    let next = h
        .run(json!({"user_email": "jane.doe@acmecorp.com", "company_id": "acme"}))
        .await;
    assert!(key.is_file(), "a new key");
    assert_eq!(check(&h, &next.run_id).await.status, AuditStatus::Intact);
    assert_eq!(check(&h, &run_id).await.status, AuditStatus::Tampered);
}
