//! `revoke365 restore RUN_ID` as an operator uses it: run, then restore against the sandbox
//! in the state the run left it; exit codes and the result on stdout.

use crate::kit::{
    acme_run, ok_json, revoke365, stderr_error, stdout_as, stdout_json, RunResult, JOHN,
};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// `revoke365 ARGS --data-dir DIR`.
fn cli(args: &[&str], data_dir: &Path) -> Output {
    let mut all = args.to_vec();
    all.extend(["--data-dir", data_dir.to_str().unwrap()]);
    revoke365(&all, &[], data_dir)
}

/// A sandbox run of John Smith; its result.
fn run(data_dir: &Path, extra: &[&str]) -> RunResult {
    stdout_as(&acme_run(data_dir, JOHN, extra))
}

#[test]
fn restore_puts_back_what_the_run_removed_and_a_second_restore_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), &[]);
    assert_eq!(result.kind, "revoke");
    let removed = result.removal_summary.total_permissions_removed;
    assert_eq!(removed, 8);
    let run_id = result.run_id.as_str();

    let out = cli(&["restore", run_id], dir.path());
    let restore = ok_json(&out);
    assert_eq!(restore["kind"], "restore");
    assert_eq!(restore["success"], true);
    assert_eq!(restore["restored_from"], run_id);
    assert_eq!(
        restore["restored"].as_array().unwrap().len() as u64,
        removed
    );
    assert_eq!(restore["verification"]["all_restored"], true);
    assert!(restore["restored"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["restored"] == true && e.get("note").is_none()));

    // The sandbox kept the restored tenant: the second restore finds every grant there.
    let out = cli(&["restore", run_id, "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let again = stdout_json(&out);
    assert!(again["restored"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["note"] == "already present: nothing was added"));

    // A restore cannot be restored; typos and unknown runs are refused; nothing is created.
    let out = cli(
        &["restore", restore["run_id"].as_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_error(&out)["error"]["code"], "conflict");
    let out = cli(&["restore", run_id, "--types", "mail"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_error(&out)["error"]["field"], "permission_types");
    let out = cli(&["restore", "no-such-run"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_error(&out)["error"]["code"], "run_not_found");
}

#[test]
fn a_dry_run_cannot_be_restored_and_a_dry_restore_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dry = run(dir.path(), &["--dry-run"]);
    let out = cli(&["restore", dry.run_id.as_str()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let e = stderr_error(&out);
    assert_eq!(e["error"]["code"], "conflict");
    assert!(e["error"]["message"].as_str().unwrap().contains("dry run"));

    let live = run(dir.path(), &["--new"]);
    let id = live.run_id.as_str();
    let out = cli(
        &["restore", id, "--dry-run", "--mailbox", "ceo@acmecorp.com"],
        dir.path(),
    );
    let would = ok_json(&out);
    let entries = would["restored"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{would}");
    assert!(entries.iter().all(|e| e["mailbox"] == "ceo@acmecorp.com"
        && e["would_restore"] == true
        && e["restored"] == false));
    // Nothing was put back: the real restore after it restores all eight.
    let out = cli(&["restore", id], dir.path());
    let restore = stdout_json(&out);
    assert!(
        restore["restored"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("note").is_none()),
        "{restore}"
    );
}

#[test]
fn a_victim_mailbox_run_contains_the_users_mailbox_and_restore_sets_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = crate::kit::events("victim-tenant.json");
    let out = cli(
        &[
            "run",
            "--sandbox",
            tenant.to_str().unwrap(),
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--victim-mailbox",
        ],
        dir.path(),
    );
    let result = ok_json(&out);
    let v = &result["victim_mailbox"];
    assert_eq!(v["forwarding"]["status"], "cleared", "{v}");
    assert_eq!(v["inbox_rules"].as_array().unwrap().len(), 2);
    assert_eq!(result["removal_summary"]["total_permissions_removed"], 8);
    let run_id = result["run_id"].as_str().unwrap();

    // A restore scoped to one grant puts that grant back and nothing of the attacker's
    // set-up, and says so.
    let out = cli(
        &[
            "restore",
            run_id,
            "--types",
            "full_access",
            "--mailbox",
            "ceo@acmecorp.com",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let scoped = stdout_json(&out);
    assert_eq!(scoped["restored"].as_array().unwrap().len(), 1, "{scoped}");
    assert!(scoped.get("victim_mailbox").is_none(), "{scoped}");
    assert!(scoped["left_out"].as_array().unwrap().iter().any(|l| l
        .as_str()
        .unwrap()
        .starts_with(
            "victim mailbox settings not restored: not asked for (--include-victim-mailbox"
        )));
    // Without it, still nothing comes back on the victim's mailbox.
    let out = cli(&["restore", run_id], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout_json(&out).get("victim_mailbox").is_none());

    // Named: the re-read finds forwarding and rules off until now, and puts them back.
    let out = cli(&["restore", run_id, "--include-victim-mailbox"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let restore = stdout_json(&out);
    assert_eq!(
        restore["victim_mailbox"]["forwarding"]["status"],
        "restored"
    );
    assert!(restore["victim_mailbox"]["inbox_rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "restored"));

    // --remove-recent-delegates means nothing without --victim-mailbox.
    let out = cli(
        &[
            "run",
            "--sandbox",
            tenant.to_str().unwrap(),
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--remove-recent-delegates",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_mailbox_named_by_its_upn_is_found_and_one_the_run_removed_nothing_on_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The CEO's mailbox answers to carol.chen@ (its primary address), which the run records.
    let mut tenant: Value =
        serde_json::from_slice(&std::fs::read(crate::kit::events("acme-tenant.json")).unwrap())
            .unwrap();
    let ceo = tenant["users"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["upn"] == "ceo@acmecorp.com")
        .unwrap();
    ceo["mail"] = "carol.chen@acmecorp.com".into();
    let fixture = dir.path().join("renamed-ceo.json");
    std::fs::write(&fixture, tenant.to_string()).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = cli(
        &[
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            JOHN,
            "--company-id",
            "acme",
        ],
        &data,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = stdout_json(&out)["run_id"].as_str().unwrap().to_string();

    let out = cli(&["restore", &run_id, "--mailbox", "ceo@acmecorp.co"], &data);
    crate::kit::assert_refused(&out, "mailbox");
    let message = stderr_error(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("ceo@acmecorp.co'") && message.contains("carol.chen@acmecorp.com"),
        "{message}"
    );

    let out = cli(
        &["restore", &run_id, "--mailbox", "ceo@acmecorp.com"],
        &data,
    );
    let restore = ok_json(&out);
    let entries = restore["restored"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{restore}");
    assert!(entries
        .iter()
        .all(|e| e["mailbox"] == "carol.chen@acmecorp.com"
            && e["restored"] == true
            && e.get("note").is_none()));
}

#[test]
fn a_refused_later_run_does_not_stop_the_restore_of_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &[]);
    let run_id = first.run_id.as_str();
    let out = acme_run(dir.path(), JOHN, &["--mailbox", "ceo@acmecorp.co", "--new"]);
    crate::kit::assert_refused(&out, "target_mailboxes");
    let out = acme_run(dir.path(), JOHN, &["--dry-run", "--new"]);
    assert_eq!(out.status.code(), Some(0));

    let out = cli(&["restore", run_id], dir.path());
    let restore = ok_json(&out);
    assert_eq!(restore["skipped"].as_array().unwrap().len(), 0, "{restore}");
    let entries = restore["restored"].as_array().unwrap();
    assert_eq!(entries.len(), 8);
    // Put back by this restore: none was there already.
    assert!(entries
        .iter()
        .all(|e| e["restored"] == true && e.get("note").is_none()));
}

/// The `label: path` lines on stderr, as paths under `cwd`.
fn printed_paths(out: &Output, cwd: &Path) -> Vec<(String, std::path::PathBuf)> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(label, _)| ["result", "audit trail", "PSA note", "email"].contains(label))
        .map(|(label, path)| (label.to_string(), cwd.join(path)))
        .collect()
}

#[test]
fn a_dry_restore_prints_only_its_own_files_and_a_restore_its_own_note_and_email() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &[]);
    let run_id = first.run_id.as_str();

    let out = cli(&["restore", run_id, "--dry-run"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let dry_id = stdout_json(&out)["run_id"].as_str().unwrap().to_string();
    let printed = printed_paths(&out, dir.path());
    let labels: Vec<&str> = printed.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        ["audit trail", "result"],
        "a dry restore writes no note or email"
    );
    for (label, path) in &printed {
        assert!(path.exists(), "{label}: {}", path.display());
        assert!(
            path.to_str().unwrap().contains(&dry_id),
            "{label}: {}",
            path.display()
        );
    }

    let out = cli(&["restore", run_id], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let restore_id = stdout_json(&out)["run_id"].as_str().unwrap().to_string();
    let printed = printed_paths(&out, dir.path());
    let labels: Vec<&str> = printed.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["audit trail", "result", "PSA note", "email"]);
    for (label, path) in &printed[2..] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(
            text.contains(&restore_id) && text.contains("restore"),
            "{label}: {text}"
        );
    }
}

/// The saved grants of the sandbox tenant in `data_dir`.
fn tenant_grants(data_dir: &Path) -> Value {
    let file = std::fs::read_dir(data_dir.join("sandbox"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".tenant.json"))
        .expect("the sandbox tenant's saved state");
    let state: Value = serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
    state["tenant"]["grants"].clone()
}

/// Rewrites the trail of `run_id` in `data_dir` as a writer of the trail (without the audit
/// key in `keys/`) could: `case` is `edited` (a `before` record on ceo@ names sales@),
/// `resealed` (that edit, every chain's hashes recomputed and the manifest written anew with
/// the seal it had), `no manifest`, or `stripped` (every record out of its chain, no
/// manifest).
fn tamper(data_dir: &Path, run_id: &str, case: &str) {
    use revoke365::model::{AuditManifest, AuditPhase, AuditRecord, ChainHead};
    let path = data_dir.join(format!("{run_id}.audit.jsonl"));
    let manifest = data_dir.join(format!("{run_id}.audit-manifest.json"));
    let mut records: Vec<AuditRecord> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    if matches!(case, "edited" | "resealed") {
        let grant = records
            .iter_mut()
            .filter(|r| r.phase == AuditPhase::Before)
            .filter_map(|r| r.grant.as_mut())
            .find(|g| g.mailbox == "ceo@acmecorp.com")
            .expect("a before record on ceo@");
        grant.trustee = "sales@acmecorp.com".into();
        grant.trustee_as_shown = None;
    }
    if case == "resealed" {
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
        let old: AuditManifest =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let mut rewritten = AuditManifest::of(&records);
        rewritten.mac = old.mac;
        std::fs::write(&manifest, serde_json::to_vec(&rewritten).unwrap()).unwrap();
    }
    if case == "stripped" {
        for r in &mut records {
            (r.chain, r.seq, r.prev_hash, r.hash) = (None, None, None, None);
        }
    }
    if matches!(case, "no manifest" | "stripped") {
        std::fs::remove_file(&manifest).unwrap();
    }
    let lines: String = records
        .iter()
        .map(|r| format!("{}\n", serde_json::to_string(r).unwrap()))
        .collect();
    std::fs::write(&path, lines).unwrap();
}

/// Each way a writer of the trail can rewrite it without the audit key is reported by
/// `audit verify` (exit 1, `tampered`, the problem named) and refused by `restore` (exit 2,
/// `audit_untrusted` naming `run_id`), and sales@ gains nothing. The untouched trail verifies
/// (exit 0) and restores, each line naming the trustee.
#[test]
fn a_trail_edited_resealed_unanchored_or_stripped_is_reported_and_not_restored() {
    for case in ["edited", "resealed", "no manifest", "stripped"] {
        let dir = tempfile::tempdir().unwrap();
        let result = run(dir.path(), &[]);
        let run_id = result.run_id.as_str();
        tamper(dir.path(), run_id, case);

        let out = cli(&["audit", "verify", run_id], dir.path());
        assert_eq!(out.status.code(), Some(1), "{case}");
        let check = stdout_json(&out);
        assert_eq!(check["status"], "tampered", "{case}: {check}");
        let table = cli(
            &["audit", "verify", run_id, "--format", "table"],
            dir.path(),
        );
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.contains("TAMPERED"), "{case}: {text}");
        let said = match case {
            "resealed" => "seal (MAC) does not verify",
            "edited" => "was changed after it was written",
            _ => "manifest anchored then is missing",
        };
        assert!(text.contains(said), "{case}: {text}");

        let before = tenant_grants(dir.path());
        let out = cli(&["restore", run_id], dir.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let error = &stderr_error(&out)["error"];
        assert_eq!(
            (error["code"].as_str(), error["field"].as_str()),
            (Some("audit_untrusted"), Some("run_id")),
            "{case}: {error}"
        );
        assert_eq!(tenant_grants(dir.path()), before, "{case}: nothing granted");
    }

    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), &[]);
    let run_id = result.run_id.as_str();
    let out = cli(&["audit", "verify", run_id], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["status"], "intact");
    let out = cli(&["restore", run_id, "--format", "table"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Restored:")
        .skip(1)
        .take_while(|l| l.starts_with("  - "))
        .collect();
    assert!(
        lines.len() == 8 && lines.iter().all(|l| l.ends_with(&format!(" for {JOHN}"))),
        "every restore line names the trustee: {text}"
    );
}
