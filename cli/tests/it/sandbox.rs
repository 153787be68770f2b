//! A sandbox tenant lives in the data directory: every command against the same fixture and
//! data directory sees what the last one left, and fixtures that share a tenant id keep apart.

use crate::kit::{acme_run, events, revoke365, stdout_as, stdout_json, RunResult, JOHN};
use serde_json::Value;
use std::path::Path;

#[test]
fn a_second_run_finds_nothing_left_to_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let first: RunResult = stdout_as(&acme_run(&data_dir, JOHN, &[]));
    assert!(first.success, "{first:?}");
    assert_eq!(first.removal_summary.total_permissions_removed, 8);

    let second = acme_run(&data_dir, JOHN, &[]);
    assert_eq!(second.status.code(), Some(0));
    let second: RunResult = stdout_as(&second);
    assert!(second.success, "{second:?}");
    assert_eq!(second.status, "completed");
    assert_eq!(second.removal_summary.total_permissions_removed, 0);
    for (kind, entries) in second.permissions_removed.counts() {
        assert_eq!(entries, 0, "{kind}");
    }
    assert!(second.verification.all_permissions_cleared);
    assert_eq!(second.errors, Vec::<String>::new());
    let note =
        std::fs::read_to_string(data_dir.join(format!("{}.psa-note.txt", second.run_id))).unwrap();
    assert!(note.contains("No direct grants were found."), "{note}");
}

/// `revoke365 <command> --sandbox events/<fixture> --company-id acme --data-dir <data_dir>`.
fn sandbox(command: &[&str], fixture: &str, data_dir: &Path) -> Value {
    let fixture = events(fixture);
    let mut args = command.to_vec();
    args.extend([
        "--sandbox",
        fixture.to_str().unwrap(),
        "--company-id",
        "acme",
    ]);
    args.extend(["--data-dir", data_dir.to_str().unwrap()]);
    stdout_json(&revoke365(&args, &[], data_dir.parent().unwrap()))
}

fn removed(result: &Value) -> &Value {
    &result["removal_summary"]["total_permissions_removed"]
}

#[test]
fn fixtures_that_share_a_tenant_id_keep_their_tenants_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let run = ["run", "--user", JOHN];
    // Both fixtures are tenant 3f6d2c1a-…, company acme, with John's grants of their own.
    let acme = sandbox(&run, "acme-tenant.json", &data_dir);
    assert_eq!(
        (removed(&acme), &acme["success"]),
        (&8.into(), &true.into())
    );
    let review = sandbox(&run, "review-tenant.json", &data_dir);
    assert_eq!(review["removal_summary"]["company"], "Acme Corp (review)");
    assert_eq!(
        (removed(&review), &review["success"]),
        (&8.into(), &true.into()),
        "{review}"
    );
    // Each goes on from its own tenant.
    let acme = sandbox(&run, "acme-tenant.json", &data_dir);
    assert_eq!(
        (removed(&acme), &acme["success"]),
        (&0.into(), &true.into())
    );
    let review = sandbox(&run, "review-tenant.json", &data_dir);
    assert_eq!(
        (removed(&review), &review["success"]),
        (&0.into(), &true.into())
    );
    let kept = std::fs::read_dir(data_dir.join("sandbox")).unwrap().count();
    assert_eq!(kept, 2, "one kept tenant per fixture");
}

/// The permission index keeps apart per fixture too: a sweep of the Acme fixture is never
/// the snapshot a review of the review fixture (same tenant id, same company id) reads.
#[test]
fn fixtures_that_share_a_company_keep_their_permission_indexes_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let acme = sandbox(&["sweep"], "acme-tenant.json", &data_dir);
    let review_fixture = events("review-tenant.json");
    let unswept = revoke365(
        &[
            "review",
            "--sandbox",
            review_fixture.to_str().unwrap(),
            "--company-id",
            "acme",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        tmp.path(),
    );
    crate::kit::assert_refused(&unswept, "company_id");
    let swept = sandbox(&["sweep"], "review-tenant.json", &data_dir);
    assert_ne!(swept["snapshot_id"], acme["snapshot_id"]);
    let review = sandbox(&["review"], "review-tenant.json", &data_dir);
    assert_eq!(review["snapshot_id"], swept["snapshot_id"], "{review}");
    let listed: Vec<&str> = review["trustees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trustee"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"Old Temp Account"), "{listed:?}");
    // The Acme fixture still answers from its own sweep.
    let access = sandbox(&["access", "--user", JOHN], "acme-tenant.json", &data_dir);
    assert_eq!(access["snapshot_id"], acme["snapshot_id"], "{access}");
}
