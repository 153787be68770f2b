//! `revoke365 restore RUN_ID` as an operator uses it: run, then restore against the sandbox
//! in the state the run left it; exit codes and the result on stdout.

mod kit;

use kit::{acme_run, revoke365, stderr_error, stdout_json, JOHN};
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
fn run(data_dir: &Path, extra: &[&str]) -> Value {
    stdout_json(&acme_run(data_dir, JOHN, extra))
}

#[test]
fn restore_puts_back_what_the_run_removed_and_a_second_restore_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), &[]);
    assert_eq!(result["kind"], "revoke");
    let removed = result["removal_summary"]["total_permissions_removed"]
        .as_u64()
        .unwrap();
    assert_eq!(removed, 8);
    let run_id = result["run_id"].as_str().unwrap();

    let out = cli(&["restore", run_id], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restore = stdout_json(&out);
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
    let out = cli(&["restore", dry["run_id"].as_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let e = stderr_error(&out);
    assert_eq!(e["error"]["code"], "conflict");
    assert!(e["error"]["message"].as_str().unwrap().contains("dry run"));

    let live = run(dir.path(), &["--new"]);
    let id = live["run_id"].as_str().unwrap();
    let out = cli(
        &["restore", id, "--dry-run", "--mailbox", "ceo@acmecorp.com"],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let would = stdout_json(&out);
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
    let tenant = kit::events("victim-tenant.json");
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stdout_json(&out);
    let v = &result["victim_mailbox"];
    assert_eq!(v["forwarding"]["status"], "cleared", "{v}");
    assert_eq!(v["inbox_rules"].as_array().unwrap().len(), 2);
    assert_eq!(result["removal_summary"]["total_permissions_removed"], 8);
    let run_id = result["run_id"].as_str().unwrap();

    let out = cli(&["restore", run_id], dir.path());
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
