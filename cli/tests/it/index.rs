//! `revoke365 sweep`, `access`, `run --contain` and `review` as an operator types them,
//! against the sandbox: the snapshot lives in the data directory's revoke365.db.

use crate::kit::{
    acme_run, assert_refused, events, ok_json, printed_files, revoke365, stdout_json, JOHN,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

fn on_sandbox(command: &str, fixture: &str, dir: &Path, extra: &[&str]) -> Output {
    let fixture = events(fixture);
    let mut args = vec![
        command,
        "--sandbox",
        fixture.to_str().unwrap(),
        "--company-id",
        "acme",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    revoke365(&args, &[], dir.parent().unwrap())
}

fn grants_of(map: &Value) -> BTreeSet<(String, String)> {
    map["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["mailbox"].as_str().unwrap().to_string(),
                g["permission"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn sweep_then_access_answers_from_the_index_and_a_contain_run_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // Before any sweep: a clear refusal naming the company.
    let none = on_sandbox("access", "acme-tenant.json", &dir, &["--user", JOHN]);
    assert_refused(&none, "company_id");

    let summary = ok_json(&on_sandbox("sweep", "acme-tenant.json", &dir, &[]));
    assert_eq!(summary["company_id"], "acme");
    assert_eq!(summary["grants"], 24);
    assert!(summary["calls"]["exchange"].as_u64().unwrap() > 0);

    let map = ok_json(&on_sandbox(
        "access",
        "acme-tenant.json",
        &dir,
        &["--user", JOHN],
    ));
    assert_eq!(map["snapshot_id"], summary["snapshot_id"]);
    assert_eq!(map["as_of"], summary["taken_at"]);
    assert_eq!(map["live"], false);
    let expected: BTreeSet<(String, String)> = [
        ("billing@acmecorp.com", "full_access"),
        ("billing@acmecorp.com", "send_as"),
        ("ceo@acmecorp.com", "calendar"),
        ("ceo@acmecorp.com", "full_access"),
        ("finance@acmecorp.com", "full_access"),
        ("info@acmecorp.com", "send_as"),
        ("sales@acmecorp.com", "send_on_behalf"),
        ("support@acmecorp.com", "full_access"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(grants_of(&map), expected);

    let table = on_sandbox(
        "access",
        "acme-tenant.json",
        &dir,
        &["--mailbox", "ceo@acmecorp.com", "--format", "table"],
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("ceo@acmecorp.com (Carol Chen, UserMailbox)"),
        "{text}"
    );
    assert!(text.contains("5 grants"), "{text}");

    // Both or neither of --user and --mailbox, or --live with --mailbox: refused.
    let both = on_sandbox(
        "access",
        "acme-tenant.json",
        &dir,
        &["--mailbox", "ceo@acmecorp.com", "--live"],
    );
    assert_refused(&both, "live");

    let run = acme_run(&dir, JOHN, &["--contain"]);
    let report = ok_json(&run);
    assert_eq!(report["success"], true);
    assert_eq!(report["containment"]["indexed_grants"], 8);
    assert_eq!(report["containment"]["snapshot_id"], summary["snapshot_id"]);
    assert_eq!(report["removal_summary"]["total_permissions_removed"], 8);
}

#[test]
fn review_lists_what_should_not_hold_access_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok_json(&on_sandbox("sweep", "review-tenant.json", &dir, &[]));
    let out = on_sandbox("review", "review-tenant.json", &dir, &[]);
    assert_eq!(out.status.code(), Some(1), "something to review");
    let review = stdout_json(&out);
    assert_eq!(review["grants"], 6);
    let reasons: BTreeSet<String> = review["summary"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        reasons,
        [
            "disabled",
            "external",
            "guest",
            "orphaned_sid",
            "unresolved"
        ]
        .map(String::from)
        .into()
    );
    let table = on_sandbox("review", "review-tenant.json", &dir, &["--format", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("disabled accounts                1 trustee(s), 2 grant(s)"),
        "{text}"
    );
    assert!(
        text.contains("dana.left@acmecorp.com (disabled accounts)"),
        "{text}"
    );

    // With --inactive-days: who has not signed in since June 2026 (it.admin, Jane never).
    let cut_off: chrono::DateTime<chrono::Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let days = (chrono::Utc::now() - cut_off).num_days().to_string();
    let out = on_sandbox(
        "review",
        "review-tenant.json",
        &dir,
        &["--inactive-days", &days, "--format", "table"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("inactive users                   2 trustee(s)"),
        "{text}"
    );
    assert!(
        text.contains("it.admin@acmecorp.com (inactive users, last sign-in 2025-03-02)"),
        "{text}"
    );
    assert!(
        text.contains("jane.doe@acmecorp.com (inactive users, never signed in)"),
        "{text}"
    );
    let bad = on_sandbox(
        "review",
        "review-tenant.json",
        &dir,
        &["--inactive-days", "0"],
    );
    assert_eq!(bad.status.code(), Some(2));

    // --revoke: a revocation or a cleanup per listed trustee, one digest for all of them.
    let out = on_sandbox("review", "review-tenant.json", &dir, &["--revoke"]);
    let done = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{done:#}");
    assert_eq!(done["success"], true);
    let runs = done["revocations"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    let modes: BTreeSet<(String, String)> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["success"], true, "{r}");
            (
                r["trustee"].as_str().unwrap().to_string(),
                r["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(modes.contains(&("dana.left@acmecorp.com".into(), "revoke".into())));
    assert!(modes.contains(&("Old Temp Account".into(), "cleanup".into())));
    assert!(done["digest"]["ticket_id"].is_string(), "{done:#}");
    assert_eq!(done["digest"]["mailed_to"].as_array().unwrap().len(), 1);
    // The digest's note and email are files too, and they are the digest's.
    let written = printed_files(&out, &dir);
    assert_eq!(written.len(), 2, "{written:?}");
    for file in written {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("access-review acme"),
            "{}: {text}",
            file.display()
        );
    }
}

#[test]
fn restore_as_of_puts_a_mailbox_back_from_the_snapshot_and_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let summary = ok_json(&on_sandbox("sweep", "acme-tenant.json", &dir, &[]));
    let id = summary["snapshot_id"].as_str().unwrap();

    // A fresh sandbox holds every grant of the snapshot: each is found present, none added.
    let report = ok_json(&on_sandbox(
        "restore",
        "acme-tenant.json",
        &dir,
        &["--mailbox", "billing@acmecorp.com", "--as-of", id],
    ));
    assert_eq!(report["kind"], "restore");
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(report["backup"]["snapshot_id"], id);
    assert_eq!(report["backup"]["mailbox"], "billing@acmecorp.com");
    let restored = report["restored"].as_array().unwrap();
    assert_eq!(restored.len(), 5, "{report}");
    assert!(restored
        .iter()
        .all(|e| e["note"].as_str().unwrap().starts_with("already present")));
    assert!(restored.iter().any(|e| e["trustee"] == JOHN));

    // `--ticket`, as in every command (`--ticket-id` was this one's first spelling).
    for flag in ["--ticket", "--ticket-id"] {
        let noted = ok_json(&on_sandbox(
            "restore",
            "acme-tenant.json",
            &dir,
            &[
                "--mailbox",
                "billing@acmecorp.com",
                "--as-of",
                id,
                flag,
                "48213",
            ],
        ));
        assert_eq!(noted["ticket_id"], "48213", "{flag}: {noted}");
    }

    for (extra, field) in [
        (vec!["--as-of", id], "mailbox"),
        (
            vec!["--mailbox", "billing@acmecorp.com", "--as-of", "yesterday"],
            "as_of",
        ),
        (
            vec!["--mailbox", "billing@acmecorp.com", "--as-of", "2000-01-01"],
            "as_of",
        ),
        (
            vec!["--mailbox", "nobody@acmecorp.com", "--as-of", id],
            "mailbox",
        ),
    ] {
        let out = on_sandbox("restore", "acme-tenant.json", &dir, &extra);
        assert_refused(&out, field);
    }
}
