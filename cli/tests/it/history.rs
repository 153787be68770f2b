//! `revoke365 runs`, `show` and `org` as people and scripts use them: on the embedded store
//! of sandbox runs, on a config's companies, and (`--aws`) on tables in DynamoDB Local.

use crate::kit::{acme_run, assert_refused, ok_json, revoke365, AwsTables, JOHN};
use revoke365::model::{OrgSettings, RevocationRequest, Run, RunStatus};
use revoke365::ports::{OrgStore, RunRecords};
use serde_json::{json, Value};
use std::path::Path;

fn run_ids(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

fn runs(dir: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["runs", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    revoke365(&args, &[], dir.parent().unwrap())
}

#[test]
fn runs_lists_the_data_directorys_runs_newest_first_filtered_and_in_pages_and_show_prints_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dry = ok_json(&acme_run(&dir, JOHN, &["--dry-run"]));
    let real = ok_json(&acme_run(&dir, JOHN, &["--ticket", "48213"]));
    // Discovery finds no such mailbox: the run exists, failed (exit 2). (A user the tenant
    // does not know is refused before any run is made.)
    let missing = acme_run(&dir, JOHN, &["--mailbox", "nosuch@acmecorp.com"]);
    assert_eq!(missing.status.code(), Some(2));
    let (dry_id, real_id) = (
        dry["run_id"].as_str().unwrap().to_string(),
        real["run_id"].as_str().unwrap().to_string(),
    );

    let all = ok_json(&runs(&dir, &[]));
    let ids = run_ids(&all);
    assert_eq!(ids.len(), 3, "{all}");
    assert_eq!(ids[1..], [real_id.clone(), dry_id.clone()], "newest first");
    let failed_id = ids[0].clone();
    let newest = &all["runs"][0];
    assert_eq!(
        (
            newest["status"].as_str(),
            newest["user_email"].as_str(),
            newest["kind"].as_str()
        ),
        (Some("failed"), Some(JOHN), Some("revoke"))
    );
    let removed = &all["runs"][1];
    assert_eq!(removed["counts"]["done"], 8, "{removed}");
    assert_eq!(removed["ticket_id"], "48213");
    assert_eq!(removed["success"], true);

    let johns = ok_json(&runs(
        &dir,
        &["--user", &JOHN.to_uppercase(), "--company-id", "acme"],
    ));
    assert_eq!(
        run_ids(&johns),
        [ids[0].clone(), real_id.clone(), dry_id.clone()]
    );
    let failed = ok_json(&runs(&dir, &["--status", "failed"]));
    assert_eq!(run_ids(&failed), vec![failed_id.clone()]);
    let none = ok_json(&runs(&dir, &["--since", "2999-01-01"]));
    assert!(run_ids(&none).is_empty());
    assert!(run_ids(&ok_json(&runs(&dir, &["--company-id", "globex"]))).is_empty());

    let first = ok_json(&runs(&dir, &["--limit", "2"]));
    assert_eq!(run_ids(&first), [failed_id.clone(), real_id.clone()]);
    let next = first["next"].as_str().expect("a second page");
    let second = ok_json(&runs(&dir, &["--limit", "2", "--next", next]));
    assert_eq!(run_ids(&second), vec![dry_id]);
    assert!(second.get("next").is_none());

    let table = runs(&dir, &["--format", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("RUN ID"), "{text}");
    let line = text.lines().find(|l| l.starts_with(&real_id)).unwrap();
    for cell in ["revoke", JOHN, "acme", "completed", "8/0/0", "48213"] {
        assert!(line.contains(cell), "{cell} in {line}");
    }

    for (flags, field) in [
        (&["--status", "done"][..], "status"),
        (&["--since", "yesterday"], "since"),
        (&["--limit", "0"], "limit"),
        (&["--user", "not-an-address"], "user"),
        (&["--next", "garbage"], "next"),
    ] {
        assert_refused(&runs(&dir, flags), field);
    }
    let nowhere = tmp.path().join("nowhere");
    assert_refused(&runs(&nowhere, &[]), "data_dir");
    assert!(!nowhere.exists(), "reading history made no directory");

    // show: the result of a finished run, the failure of a failed one, the audit on request.
    let show = |id: &str, flags: &[&str]| {
        let mut args = vec!["show", id, "--data-dir", dir.to_str().unwrap()];
        args.extend_from_slice(flags);
        revoke365(&args, &[], tmp.path())
    };
    let shown = ok_json(&show(&real_id, &[]));
    assert_eq!(shown, real, "show prints the result the run printed");
    let shown = ok_json(&show(&failed_id, &[]));
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["failure"]["code"], "mailbox_not_found");
    let with_audit = ok_json(&show(&real_id, &["--audit"]));
    assert_eq!(with_audit["result"], real);
    let records = with_audit["audit"].as_array().unwrap();
    assert!(records.len() >= 8, "one record per removal at least");
    assert!(records.iter().all(|r| r["run_id"] == real_id.as_str()));
    assert_refused(&show("no-such-run", &[]), "run_id");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const ORG_TOML: &str = r#"
[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "11111111-1111-1111-1111-111111111111"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
m365_permission_notification_recipients = ["secops@msp.example"]
notification_sender = "automation@acmecorp.com"
allowed_principals = ["arn:aws:iam::123456789012:role/Helpdesk"]

[[company]]
company_id = "globex"
company_name = "Globex"
tenant_id = "22222222-2222-2222-2222-222222222222"
psa_company = "Globex"
m365_permission_ticket_board = "Service Desk"
notification_sender = "it@globexcorp.com"
"#;

/// Files each wrong in one way, and the field their error must name.
fn bad_org_files(dir: &Path) -> Vec<(std::path::PathBuf, &'static str)> {
    vec![
        (
            write(
                dir,
                "typo.toml",
                &ORG_TOML.replace("tenant_id = \"1", "tennant_id = \"1"),
            ),
            "tennant_id",
        ),
        (
            write(
                dir,
                "missing.toml",
                &ORG_TOML.replace("notification_sender = \"it@globexcorp.com\"", ""),
            ),
            "notification_sender",
        ),
        (
            write(
                dir,
                "blank.toml",
                &ORG_TOML.replace("company_name = \"Globex\"", "company_name = \" \""),
            ),
            "company_name",
        ),
        (
            write(
                dir,
                "id.toml",
                &ORG_TOML.replace("\"globex\"", "\"glo bex\""),
            ),
            "company_id",
        ),
        (
            write(
                dir,
                "twice.toml",
                &ORG_TOML.replace("\"globex\"", "\"acme\""),
            ),
            "company_id",
        ),
        (
            write(
                dir,
                "scope.toml",
                &ORG_TOML.replace(
                    "notification_sender = \"it@",
                    "m365_permission_removal_scope = [\"everything\"]\nnotification_sender = \"it@",
                ),
            ),
            "m365_permission_removal_scope",
        ),
        (write(dir, "empty.toml", "# nothing here\n"), "company"),
        (
            write(
                dir,
                "typo.json",
                &json!({"company_id": "acme", "company_nam": "Acme"}).to_string(),
            ),
            "company_nam",
        ),
    ]
}

#[test]
fn org_put_without_aws_checks_the_file_and_names_the_bad_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "orgs.toml", ORG_TOML);
    let out = revoke365(&["org", "put", good.to_str().unwrap()], &[], tmp.path());
    let shown = ok_json(&out);
    assert_eq!(shown[0]["company_id"], "acme");
    assert_eq!(shown[1]["company_id"], "globex");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing written"));
    // The same companies as JSON.
    let json_file = write(
        tmp.path(),
        "orgs.json",
        &json!({"company": shown}).to_string(),
    );
    assert_eq!(
        ok_json(&revoke365(
            &["org", "put", json_file.to_str().unwrap()],
            &[],
            tmp.path()
        )),
        shown
    );
    for (file, field) in bad_org_files(tmp.path()) {
        let out = revoke365(&["org", "put", file.to_str().unwrap()], &[], tmp.path());
        assert_refused(&out, field);
    }
}

#[test]
fn org_get_and_list_read_the_configs_companies_and_a_bad_config_company_is_refused_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "c.toml",
        &format!("[m365]\nclient_id = \"app\"\n{ORG_TOML}"),
    );
    let c = config.to_str().unwrap();
    let listed = ok_json(&revoke365(&["org", "list", "--config", c], &[], tmp.path()));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let acme = ok_json(&revoke365(
        &["org", "get", "acme", "--config", c],
        &[],
        tmp.path(),
    ));
    assert_eq!(acme["tenant_id"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(
        acme["allowed_principals"][0],
        "arn:aws:iam::123456789012:role/Helpdesk"
    );
    let table = revoke365(
        &["org", "get", "globex", "--config", c, "--format", "table"],
        &[],
        tmp.path(),
    );
    assert!(String::from_utf8_lossy(&table.stdout).starts_with("globex (Globex)"));
    assert_refused(
        &revoke365(&["org", "get", "initech", "--config", c], &[], tmp.path()),
        "company_id",
    );
    assert_refused(&revoke365(&["org", "list"], &[], tmp.path()), "config");

    let blank = ORG_TOML.replace("company_name = \"Globex\"", "company_name = \"\"");
    let bad = write(
        tmp.path(),
        "bad.toml",
        &format!("[m365]\nclient_id = \"app\"\n{blank}"),
    );
    assert_refused(
        &revoke365(
            &["org", "list", "--config", bad.to_str().unwrap()],
            &[],
            tmp.path(),
        ),
        "company_name",
    );
}

fn run_at(company: &str, user: &str, hours: i64, status: RunStatus) -> Run {
    let request =
        RevocationRequest::from_json(&json!({"user_email": user, "company_id": company})).unwrap();
    let mut run = Run::new(request);
    run.created_at = chrono::Utc::now() - chrono::Duration::hours(48 - hours);
    run.status = status;
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn with_aws_org_put_writes_the_table_get_and_list_read_it_back_and_a_bad_file_writes_nothing()
{
    let aws = AwsTables::provision().await;
    let tmp = tempfile::tempdir().unwrap();
    let env = aws.env();
    for (file, field) in bad_org_files(tmp.path()) {
        let out = revoke365(
            &["org", "put", file.to_str().unwrap(), "--aws"],
            &env,
            tmp.path(),
        );
        assert_refused(&out, field);
    }
    let listed = ok_json(&revoke365(&["org", "list", "--aws"], &env, tmp.path()));
    assert_eq!(listed, json!([]), "no bad file wrote anything");

    let good = write(tmp.path(), "orgs.toml", ORG_TOML);
    let put = revoke365(
        &["org", "put", good.to_str().unwrap(), "--aws"],
        &env,
        tmp.path(),
    );
    let written = ok_json(&put);
    assert!(String::from_utf8_lossy(&put.stderr).contains(&aws.names.org_table));
    let listed = ok_json(&revoke365(&["org", "list", "--aws"], &env, tmp.path()));
    assert_eq!(listed, written);
    let acme = ok_json(&revoke365(
        &["org", "get", "acme", "--aws"],
        &env,
        tmp.path(),
    ));
    assert_eq!(acme, written[0]);
    // What the functions read is what was put.
    let stored: OrgSettings = serde_json::from_value(acme).unwrap();
    assert_eq!(
        aws.run_store().org_settings("acme").await.unwrap(),
        Some(stored)
    );
    assert_refused(
        &revoke365(&["org", "get", "initech", "--aws"], &env, tmp.path()),
        "company_id",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_aws_runs_and_show_read_the_runs_table_by_company() {
    let aws = AwsTables::provision().await;
    let store = aws.run_store();
    let runs = [
        run_at("acme", JOHN, 1, RunStatus::Completed),
        run_at("acme", "jane.doe@acmecorp.com", 2, RunStatus::Failed),
        run_at("globex", JOHN, 3, RunStatus::Completed),
        run_at("acme", JOHN, 4, RunStatus::Accepted),
    ];
    for run in &runs {
        store.create_run(run).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let env = aws.env();
    let aws_runs = |flags: &[&str]| {
        let mut args = vec!["runs", "--aws"];
        args.extend_from_slice(flags);
        revoke365(&args, &env, tmp.path())
    };
    let id = |i: usize| runs[i].run_id.0.clone();
    let acme = ok_json(&aws_runs(&["--company-id", "acme"]));
    assert_eq!(run_ids(&acme), [id(3), id(1), id(0)]);
    let first = ok_json(&aws_runs(&["--company-id", "acme", "--limit", "2"]));
    assert_eq!(run_ids(&first), [id(3), id(1)]);
    let next = first["next"].as_str().unwrap();
    let rest = ok_json(&aws_runs(&[
        "--company-id",
        "acme",
        "--limit",
        "2",
        "--next",
        next,
    ]));
    assert_eq!(run_ids(&rest), [id(0)]);
    let johns = ok_json(&aws_runs(&[
        "--company-id",
        "acme",
        "--user",
        JOHN,
        "--status",
        "completed",
    ]));
    assert_eq!(run_ids(&johns), [id(0)]);
    assert_refused(&aws_runs(&[]), "company_id");

    let shown = ok_json(&revoke365(&["show", &id(1), "--aws"], &env, tmp.path()));
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["kind"], "revoke");
    assert_refused(
        &revoke365(&["show", "no-such-run", "--aws"], &env, tmp.path()),
        "run_id",
    );
}

/// Run ids name files in the data directory: `show`, `resume`, `restore` and `audit verify`
/// refuse one that is not a run id (exit 2, field `run_id`) instead of reading outside it.
#[test]
fn a_run_id_that_is_a_path_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir = data.to_str().unwrap();
    for args in [
        vec!["show", "../evil/planted", "--data-dir", dir],
        vec!["resume", "../evil/planted", "--data-dir", dir],
        vec!["restore", "../evil/planted", "--data-dir", dir],
        vec!["audit", "verify", "../evil/planted", "--data-dir", dir],
    ] {
        let out = crate::kit::revoke365(&args, &[], tmp.path());
        crate::kit::assert_refused(&out, "run_id");
    }
}
