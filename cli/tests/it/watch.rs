//! `revoke365 watch`: the alert poller on one machine, against the sandbox tenant's Defender
//! XDR alerts and Entra ID Protection risky users.

use crate::kit::{assert_refused, events, ok_json, printed_files, revoke365, stdout_json, JOHN};
use serde_json::Value;
use std::path::Path;

const JANE: &str = "jane.doe@acmecorp.com";

fn watch_once(data_dir: &Path) -> std::process::Output {
    watch_fixture_once(&events("acme-alerts-tenant.json"), data_dir)
}

/// (user, alert_source, run_id, created, success) of each run a poll names.
fn runs(summary: &Value) -> Vec<(String, String, String, bool, Option<bool>)> {
    let mut runs: Vec<_> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user_email"].as_str().unwrap().to_string(),
                r["alert_source"].as_str().unwrap().to_string(),
                r["run_id"].as_str().unwrap().to_string(),
                r["created"].as_bool().unwrap(),
                r["success"].as_bool(),
            )
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn watch_once_contains_each_compromised_user_and_a_second_poll_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = watch_once(&data);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout_json(&out);
    assert_eq!(first["started"], 2, "{first:#}");
    // Each run's note and email, as a run's are, and only files that were written.
    let written = printed_files(&out, &data);
    for (_, _, run_id, _, _) in runs(&first) {
        assert!(
            written
                .iter()
                .any(|p| p.ends_with(format!("{run_id}.email.html"))),
            "{written:?}"
        );
    }
    let started = runs(&first);
    // John from the Defender alert, Jane as a confirmed-compromised risky user; each run ran
    // to its end and succeeded.
    assert_eq!(
        started
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.3, r.4))
            .collect::<Vec<_>>(),
        [
            (JANE, "entra_id_protection", true, Some(true)),
            (JOHN, "defender", true, Some(true)),
        ]
    );
    let skipped = first["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 4, "{skipped:?}");

    // The stored run is a contain run with the alert's fields.
    let show = revoke365(
        &["show", &started[1].2, "--data-dir", data.to_str().unwrap()],
        &[],
        tmp.path(),
    );
    assert_eq!(show.status.code(), Some(0));
    let result = stdout_json(&show);
    assert_eq!(result["removal_summary"]["user_email"], JOHN);
    assert_eq!(result["success"], true);

    // Polled again (a new sandbox from the same fixture, the same data directory): the
    // same alerts return the runs they started, and no new run is made.
    let out = watch_once(&data);
    assert_eq!(out.status.code(), Some(0));
    let second = stdout_json(&out);
    assert_eq!(second["started"], 0, "{second:#}");
    let again = runs(&second);
    assert_eq!(
        again
            .iter()
            .map(|r| (r.2.as_str(), r.3))
            .collect::<Vec<_>>(),
        started
            .iter()
            .map(|r| (r.2.as_str(), false))
            .collect::<Vec<_>>()
    );
}

/// The `n`-th user of a crowd an alert names.
fn crowd(n: usize) -> String {
    format!("staff{n:03}@acmecorp.com")
}

/// The alerts tenant whose only Defender alert names 501 users as compromised (the first
/// seven hold Full Access to the finance mailbox), the first of them one the company never
/// contains; a resolved alert names John.
fn crowd_fixture(dir: &Path) -> std::path::PathBuf {
    let mut f: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-alerts-tenant.json")).unwrap())
            .unwrap();
    for n in 1..=7 {
        f["users"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"upn": crowd(n), "display_name": format!("Staff {n}")}));
        let finance = f["mailboxes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|m| m["upn"] == "finance@acmecorp.com")
            .unwrap();
        finance["full_access"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"user": crowd(n)}));
    }
    let evidence: Vec<Value> = (1..=501)
        .map(|n| serde_json::json!({"user": crowd(n), "roles": ["compromised"]}))
        .collect();
    f["security_alerts"] = serde_json::json!([
        {"id": "da-crowd", "incident_id": "5000", "title": "Phishing campaign", "severity": "high",
            "evidence": evidence},
        {"id": "da-resolved", "incident_id": "5001", "severity": "high", "status": "resolved",
            "evidence": [{"user": JOHN, "roles": ["compromised"]}]}
    ]);
    f["organization"]["alerts"] = serde_json::json!({"entra_id_protection": false, "never_contain": ["Staff001@AcmeCorp.com"]});
    let path = dir.join("crowd-tenant.json");
    std::fs::write(&path, f.to_string()).unwrap();
    path
}

fn watch_fixture_once(fixture: &Path, data_dir: &Path) -> std::process::Output {
    revoke365(
        &[
            "watch",
            "--company-id",
            "acme",
            "--once",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        data_dir.parent().unwrap(),
    )
}

fn emails(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_email"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_alert_naming_501_users_contains_five_asks_approval_for_495_and_never_contains_the_listed_one()
{
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture = crowd_fixture(tmp.path());
    let out = watch_fixture_once(&fixture, &data);
    let first = ok_json(&out);
    assert_eq!(first["started"], 5);
    assert_eq!(
        emails(&first["runs"]),
        (2..=6).map(crowd).collect::<Vec<_>>()
    );
    for r in first["runs"].as_array().unwrap() {
        assert_eq!(
            (&r["created"], &r["success"]),
            (&Value::Bool(true), &Value::Bool(true))
        );
    }
    assert_eq!(emails(&first["never_contain"]), [crowd(1)]);
    assert_eq!(
        emails(&first["awaiting_approval"]),
        (7..=501).map(crowd).collect::<Vec<_>>()
    );
    assert!(first["skipped"]
        .to_string()
        .contains("da-resolved: status 'resolved'"));
    // Each contained user's run removed their one grant.
    for r in first["runs"].as_array().unwrap() {
        let show = revoke365(
            &[
                "show",
                r["run_id"].as_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            tmp.path(),
        );
        let result = stdout_json(&show);
        assert_eq!(
            result["removal_summary"]["total_permissions_removed"], 1,
            "{result}"
        );
    }

    // One note and one email name the users awaiting approval and the never_contain one.
    let reference = first["approval_notices"][0]["reference"].as_str().unwrap();
    let written = printed_files(&out, &data);
    let of_notice: Vec<_> = written
        .iter()
        .filter(|p| p.to_string_lossy().contains(reference))
        .collect();
    assert_eq!(of_notice.len(), 2, "{written:?}");
    for path in of_notice {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("Awaiting approval (495)"), "{text}");
        for n in [1, 7, 501] {
            assert!(text.contains(&crowd(n)), "{}", crowd(n));
        }
        assert!(text.contains("never_contain"));
        assert!(text.contains("revoke365 run --company-id acme --user"));
    }

    // Polled again: the same runs, the same users waiting, no new run and no second notice.
    let out = watch_fixture_once(&fixture, &data);
    assert_eq!(out.status.code(), Some(0));
    let second = stdout_json(&out);
    assert_eq!(second["started"], 0, "{second:#}");
    assert_eq!(second["awaiting_approval"], first["awaiting_approval"]);
    assert_eq!(second["approval_notices"][0]["sent_before"], true);
    assert!(!printed_files(&out, &data)
        .iter()
        .any(|p| p.to_string_lossy().contains(reference)));
}

/// The crowd tenant with `alerts` as its Defender alerts (each naming its users as
/// compromised) and the company's hourly budget at three.
fn budget_fixture(dir: &Path, name: &str, alerts: &[(&str, &[usize])]) -> std::path::PathBuf {
    let crowd_path = crowd_fixture(dir);
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(crowd_path).unwrap()).unwrap();
    f["security_alerts"] = alerts
        .iter()
        .enumerate()
        .map(|(i, (id, users))| {
            let evidence: Vec<Value> = users
                .iter()
                .map(|n| serde_json::json!({"user": crowd(*n), "roles": ["compromised"]}))
                .collect();
            serde_json::json!({"id": id, "severity": "high", "minutes_ago": 10 - i as i64,
                "evidence": evidence})
        })
        .collect();
    f["organization"]["alerts"] =
        serde_json::json!({"entra_id_protection": false, "max_contain_per_hour": 3});
    let path = dir.join(name);
    std::fs::write(&path, f.to_string()).unwrap();
    path
}

/// The hourly budget counts per clock hour: a test of it starts clear of the hour's end.
fn clear_of_the_hour_end() {
    let into_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3600;
    if into_hour > 3540 {
        std::thread::sleep(std::time::Duration::from_secs(3601 - into_hour));
    }
}

#[test]
fn the_hourly_budget_holds_across_alerts_and_across_watch_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    clear_of_the_hour_end();
    let two = budget_fixture(
        tmp.path(),
        "two.json",
        &[("da-a", &[1, 2]), ("da-b", &[3, 4])],
    );
    let out = watch_fixture_once(&two, &data);
    let first = ok_json(&out);
    assert_eq!(emails(&first["runs"]), [crowd(1), crowd(2), crowd(3)]);
    assert_eq!(emails(&first["awaiting_approval"]), [crowd(4)]);
    assert_eq!(first["approval_notices"][0]["alert_id"], "da-b");

    // Another process, another alert, the same hour: the budget is spent.
    let third = budget_fixture(tmp.path(), "third.json", &[("da-c", &[5])]);
    let out = watch_fixture_once(&third, &data);
    assert_eq!(out.status.code(), Some(0));
    let second = stdout_json(&out);
    assert_eq!(second["started"], 0, "{second:#}");
    assert_eq!(emails(&second["awaiting_approval"]), [crowd(5)]);
}

#[test]
fn watch_needs_once_or_a_sensible_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = events("acme-alerts-tenant.json");
    let fixture = fixture.to_str().unwrap();
    for (flags, field) in [
        (vec!["--every", "5x"], "every"),
        (vec!["--every", "1s"], "every"),
        (vec![], "once"),
        (vec!["--once", "--company-id", "nope"], "company_id"),
    ] {
        let mut args = vec!["watch", "--sandbox", fixture];
        if !flags.contains(&"--company-id") {
            args.extend(["--company-id", "acme"]);
        }
        args.extend(flags.iter().copied());
        assert_refused(&revoke365(&args, &[], tmp.path()), field);
    }
}

/// The `[company.alerts]` block of docs/alerts.md loads as printed, and a misspelt key is named.
#[test]
fn the_readme_alert_settings_load_as_printed() {
    let readme = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/alerts.md"),
    )
    .unwrap();
    let start = readme
        .find("# Security alerts")
        .expect("a Security alerts section");
    let section = &readme[start..];
    let block = section
        .split("```toml\n")
        .nth(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .expect("a TOML block");
    assert!(block.contains("[company.alerts]"));
    let tmp = tempfile::tempdir().unwrap();
    let config = |alerts: &str| {
        format!(
            r#"[m365]
client_id = "app"

[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f"
psa_kind = "none"
m365_permission_ticket_board = "Service Desk"
notification_sender = "automation@acmecorp.com"
{alerts}"#
        )
    };
    let path = tmp.path().join("alerts.toml");
    std::fs::write(&path, config(block)).unwrap();
    let out = revoke365(
        &["org", "get", "acme", "--config", path.to_str().unwrap()],
        &[],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_json(&out)["alerts"]["min_severity"], "medium");
    std::fs::write(&path, config("[company.alerts]\nmin_severty = \"high\"\n")).unwrap();
    let out = revoke365(
        &["org", "get", "acme", "--config", path.to_str().unwrap()],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_severty"));
}
