//! The `revoke365` binary as people and scripts use it: flags, stdout, stderr, exit codes.

use revoke365::model::Report;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn events(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name)
}

fn revoke365(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revoke365"));
    cmd.args(args).current_dir(cwd);
    for var in [
        "REVOKE365_LOGIN_URL",
        "REVOKE365_GRAPH_URL",
        "REVOKE365_EXO_URL",
        "REVOKE365_PSA_URL",
        "REVOKE365_M365_CLIENT_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("revoke365 runs")
}

async fn revoke365_async(args: Vec<String>, env: Vec<(String, String)>, cwd: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        revoke365(&args, &env, &cwd)
    })
    .await
    .unwrap()
}

fn stderr_error(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("{\"error\""))
        .unwrap_or_else(|| panic!("no error JSON on stderr: {text}"));
    serde_json::from_str(line).unwrap()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn bad_input_exits_2_naming_the_field_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let acme = events("acme-tenant.json");
    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["--user", "not-an-email"],
            "user_email",
            "not a valid email",
        ),
        (&["--user", ""], "user_email", "must not be empty"),
        (
            &[
                "--user",
                "john.smith@acmecorp.com",
                "--types",
                "full_access,read",
            ],
            "permission_types",
            "full_access, send_as, send_on_behalf, calendar",
        ),
        (
            &["--user", "john.smith@acmecorp.com", "--mailbox", "ceo@"],
            "target_mailboxes",
            "not a valid email",
        ),
        (
            &["--user", "john.smith@acmecorp.com", "--company-id", "nope"],
            "company_id",
            "configured companies: acme",
        ),
        (
            &[
                "--user",
                "john.smith@acmecorp.com",
                "--ticket",
                "OFF-2026-015",
            ],
            "ticket_id",
            "digits only",
        ),
        (
            &["--user", "john.smith@acmecorp.com", "--concurrency", "0"],
            "concurrency",
            "at least 1",
        ),
    ];
    for (extra, field, needle) in cases {
        let mut args = vec![
            "run",
            "--sandbox",
            acme.to_str().unwrap(),
            "--audit-dir",
            audit.to_str().unwrap(),
        ];
        if !extra.contains(&"--company-id") {
            args.extend(["--company-id", "acme"]);
        }
        args.extend(extra);
        let out = revoke365(&args, &[], tmp.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{extra:?}: stdout holds only a result"
        );
        let err = stderr_error(&out);
        assert_eq!(err["error"]["field"], field, "{extra:?}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{extra:?}: {err}"
        );
        assert_eq!(files_in(&audit), 0, "{extra:?}: no run was created");
    }
}

#[test]
fn sandbox_run_prints_the_result_and_where_to_read_the_audit_note_and_email() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = events("acme-tenant.json");
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            acme.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: Report =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly the result JSON");
    assert!(result.success);
    assert_eq!(result.removal_summary.total_permissions_removed, 8);
    assert!(result.verification.all_permissions_cleared);
    for label in ["audit trail: ", "PSA note: ", "email: "] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no '{label}' in {stderr}"));
        let path = tmp.path().join(line.trim_start_matches(label));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains("ceo@acmecorp.com"), "{label}");
    }
}

#[test]
fn table_format_and_failure_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let hard = events("hard-tenant.json");
    let base = [
        "run",
        "--sandbox",
        hard.to_str().unwrap(),
        "--company-id",
        "globex",
    ];

    let out = revoke365(
        &[
            &base[..],
            &["--user", "john.smith@globexcorp.com", "--format", "table"],
        ]
        .concat(),
        &[],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failing mailbox makes the run unsuccessful"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Mailbox")
            && table.contains("legal@globexcorp.com")
            && table.contains("FAILED"),
        "{table}"
    );
    assert!(
        table.lines().next().unwrap().contains("ACTION NEEDED"),
        "the first line says which case: {table}"
    );

    let out = revoke365(
        &[&base[..], &["--user", "john.smyth@globexcorp.com"]].concat(),
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "an unknown user is bad input");
    assert!(out.stdout.is_empty());
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "user_not_found");
    assert_eq!(err["error"]["field"], "user_email");

    let out = revoke365(
        &[
            &base[..],
            &["--user", "john.smith@globexcorp.com", "--dry-run"],
        ]
        .concat(),
        &[],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "a completed dry run is a success"
    );
    let result: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result.removal_summary.total_permissions_removed, 0);
}

/// The `label: path` file the CLI named on stderr, read; `None` when it named none.
fn named_file(out: &Output, label: &str, cwd: &Path) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.starts_with(label))?;
    let path = cwd.join(line.trim_start_matches(label));
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn a_dry_run_leaves_no_note_or_email_unless_notify_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = events("acme-tenant.json");
    let base = [
        "run",
        "--sandbox",
        acme.to_str().unwrap(),
        "--company-id",
        "acme",
        "--user",
        "john.smith@acmecorp.com",
        "--dry-run",
        "--format",
        "table",
    ];
    let out = revoke365(&base, &[], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table.lines().next().unwrap(),
        "Revoke365 mailbox access removal: DRY RUN — nothing was changed; would remove 8 grants"
    );
    assert!(!table.contains("Grants removed: 0"), "{table}");
    assert_eq!(named_file(&out, "PSA note: ", tmp.path()), None);
    assert_eq!(named_file(&out, "email: ", tmp.path()), None);

    let out = revoke365(&[&base[..], &["--notify"]].concat(), &[], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    let note = named_file(&out, "PSA note: ", tmp.path()).expect("a note with --notify");
    assert!(note.contains("would remove 8 grants"), "{note}");
    let email = named_file(&out, "email: ", tmp.path()).expect("an email with --notify");
    assert!(email.contains("would remove 8 grants"));
}

#[test]
fn the_table_says_when_only_part_of_the_access_was_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = events("acme-tenant.json");
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            acme.to_str().unwrap(),
            "--company-id",
            "acme",
            "--user",
            "john.smith@acmecorp.com",
            "--types",
            "full_access,calendar",
            "--format",
            "table",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().unwrap().contains("PARTIAL"), "{table}");
    assert!(
        table.contains("Only Full Access and calendar were checked")
            && table.contains("Send As not checked")
            && !table.contains("all cleared"),
        "{table}"
    );
}

const SECRET: &str = "cli-test-secret";
const CW_KEY: &str = "cli-test-cw-key";

fn secrets_env() -> Vec<(String, String)> {
    [
        ("REVOKE365_M365_CLIENT_SECRET", SECRET),
        ("REVOKE365_CW_COMPANY", "msp"),
        ("REVOKE365_CW_PUBLIC_KEY", "pub"),
        ("REVOKE365_CW_PRIVATE_KEY", CW_KEY),
        (
            "REVOKE365_CW_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn config_toml(urls: &str, tenant_id: &str) -> String {
    format!(
        r#"
[m365]
client_id = "cli-test-app"
{urls}
[psa]
kind = "connectwise"

[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "{tenant_id}"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
m365_permission_removal_scope = ["full_access", "send_as", "send_on_behalf", "calendar"]
m365_permission_notification_recipients = ["secops@msp.example"]
notification_sender = "automation@acmecorp.com"
"#
    )
}

/// The path a real tenant takes: a config file and env secrets, against a simulator that the
/// CLI did not start.
#[tokio::test(flavor = "multi_thread")]
async fn config_file_runs_against_a_separately_started_simulator() {
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let tenant_id = serde_json::from_str::<Value>(&text).unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    for use_env_urls in [false, true] {
        let sim = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&text).unwrap(),
            revoke365_sim::SimOptions {
                client_secret: Some(SECRET.into()),
                cw_private_key: Some(CW_KEY.into()),
            },
        )
        .await
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut env = secrets_env();
        let urls = if use_env_urls {
            // Config URLs lead nowhere; the REVOKE365_*_URL variables win.
            for var in [
                "REVOKE365_LOGIN_URL",
                "REVOKE365_GRAPH_URL",
                "REVOKE365_EXO_URL",
                "REVOKE365_PSA_URL",
            ] {
                env.push((var.into(), sim.base_url.clone()));
            }
            "[urls]\nlogin = \"http://127.0.0.1:9\"\ngraph = \"http://127.0.0.1:9\"\nexo = \"http://127.0.0.1:9\"\npsa = \"http://127.0.0.1:9\"\n".to_string()
        } else {
            let b = &sim.base_url;
            format!("[urls]\nlogin = \"{b}\"\ngraph = \"{b}\"\nexo = \"{b}\"\npsa = \"{b}\"\n")
        };
        let config = tmp.path().join("revoke365.toml");
        std::fs::write(&config, config_toml(&urls, &tenant_id)).unwrap();
        let args = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--ticket",
            "48213",
        ];
        let out = revoke365_async(
            args.iter().map(|s| s.to_string()).collect(),
            env,
            tmp.path().to_path_buf(),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "env urls: {use_env_urls}: {stderr}"
        );
        assert!(!stderr.contains(SECRET) && !String::from_utf8_lossy(&out.stdout).contains(SECRET));
        let result: Report = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result.removal_summary.total_permissions_removed, 8);
        let state = sim.snapshot();
        let ticket = state.ticket("48213").expect("ticket 48213 in the PSA");
        assert_eq!(ticket.notes.len(), 1);
        assert!(
            tmp.path()
                .join("revoke365-audit")
                .read_dir()
                .unwrap()
                .count()
                >= 2,
            "audit and result files under ./revoke365-audit"
        );
        sim.shutdown().await;
    }
}

#[test]
fn config_problems_exit_2_and_name_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, config_toml("", "t")).unwrap();
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--user",
        "john.smith@acmecorp.com",
        "--company-id",
        "acme",
    ];
    let out = revoke365(&args, &[], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_error(&out)["error"]["field"],
        "REVOKE365_M365_CLIENT_SECRET"
    );

    std::fs::write(&config, "[m365]\nclient_id = 5\n").unwrap();
    let out = revoke365(&args, &[], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_error(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("client_id"));

    let out = revoke365(
        &[
            "run",
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "neither --config nor --sandbox");
}

/// The Acme fixture with `change` applied, written to `dir`; its PSA also holds ticket 7001 of
/// another company.
fn acme_variant(dir: &Path, name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let mut fx: Value = serde_json::from_str(&text).unwrap();
    fx["psa_tickets"].as_array_mut().unwrap().push(
        serde_json::json!({"id": "7001", "company_id": "GlobexCorp", "summary": "Globex printer"}),
    );
    change(&mut fx);
    let path = dir.join(name);
    std::fs::write(&path, fx.to_string()).unwrap();
    path
}

fn check_entries(out: &Output) -> Vec<Value> {
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    body["checks"].as_array().unwrap().clone()
}

#[test]
fn check_passes_every_check_on_a_well_set_up_company() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = acme_variant(tmp.path(), "acme.json", |_| {});
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            acme.to_str().unwrap(),
            "--company-id",
            "acme",
            "--ticket",
            "48213",
            "--send-test",
        ],
        &[],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let checks = check_entries(&out);
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "m365_credentials",
            "m365_roles",
            "exchange_access",
            "mail_roles",
            "notification_sender",
            "notification_recipients",
            "psa_ticket",
            "send_test"
        ]
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:#?}");

    // Without a ticket the company itself is looked up; the table says each check's state.
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            acme.to_str().unwrap(),
            "--company-id",
            "acme",
            "--format",
            "table",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ok    psa_company"), "{table}");
    assert!(table.contains("All checks passed."), "{table}");

    // Mail.Send may be granted on the sender alone (RBAC for Applications): a warning only.
    let scoped = acme_variant(tmp.path(), "scoped.json", |fx| {
        fx["sim"]["missing_roles"] = serde_json::json!(["Mail.Send"]);
    });
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            scoped.to_str().unwrap(),
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let checks = check_entries(&out);
    let mail = checks.iter().find(|c| c["check"] == "mail_roles").unwrap();
    assert!(
        mail["warning"].as_str().unwrap().contains("Mail.Send"),
        "{mail}"
    );
}

#[test]
fn check_names_each_problem_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = acme_variant(tmp.path(), "broken.json", |fx| {
        fx["sim"]["rest_disabled_mailboxes"] = serde_json::json!(["automation@acmecorp.com"]);
        fx["sim"]["missing_roles"] = serde_json::json!(["Calendars.ReadWrite"]);
    });
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            broken.to_str().unwrap(),
            "--company-id",
            "acme",
            "--ticket",
            "7001",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let checks = check_entries(&out);
    let entry = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
            .clone()
    };
    let ticket = entry("psa_ticket");
    assert_eq!(ticket["ok"], false);
    assert_eq!(ticket["code"], "ticket_not_for_company");
    assert_eq!(ticket["field"], "ticket_id");
    let sender = entry("notification_sender");
    assert_eq!(sender["code"], "sender_invalid");
    assert!(sender["why"]
        .as_str()
        .unwrap()
        .contains("MailboxNotEnabledForRESTAPI"));
    let roles = entry("m365_roles");
    assert_eq!(roles["field"], "m365_app_roles");
    assert!(roles["why"]
        .as_str()
        .unwrap()
        .contains("Calendars.ReadWrite"));
    assert_eq!(entry("m365_credentials")["ok"], true);
    assert_eq!(entry("notification_recipients")["ok"], true);

    // Rejected credentials: both sides say so.
    let rejected = acme_variant(tmp.path(), "rejected.json", |fx| {
        fx["sim"]["m365_credentials_rejected"] = serde_json::json!(true);
        fx["sim"]["psa_credentials_rejected"] = serde_json::json!(true);
    });
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            rejected.to_str().unwrap(),
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let checks = check_entries(&out);
    let fields: Vec<&str> = checks.iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(
        fields,
        ["m365_credentials", "psa_credentials"],
        "{checks:#?}"
    );

    // An unknown company is bad input, before any check.
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            broken.to_str().unwrap(),
            "--company-id",
            "initech",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_error(&out)["error"]["field"], "company_id");
}

#[test]
fn run_with_another_companys_ticket_exits_2_naming_the_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = acme_variant(tmp.path(), "acme.json", |_| {});
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            acme.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--ticket",
            "7001",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "ticket_not_for_company");
    assert_eq!(err["error"]["field"], "ticket_id");

    // A sender without a mailbox: refused, and the email that could not go is said.
    let no_mailbox = acme_variant(tmp.path(), "no-mailbox.json", |fx| {
        fx["sim"]["rest_disabled_mailboxes"] = serde_json::json!(["automation@acmecorp.com"]);
    });
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            no_mailbox.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_error(&out)["error"]["field"], "notification_sender");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("not notified: ") && l.contains("email")),
        "{stderr}"
    );
}

#[test]
fn an_os_user_not_allowed_for_the_company_exits_2_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    fixture["organization"]["allowed_principals"] = serde_json::json!(["os-user:jane"]);
    let acme = tmp.path().join("acme-allow-list.json");
    std::fs::write(&acme, fixture.to_string()).unwrap();
    let args = [
        "run",
        "--sandbox",
        acme.to_str().unwrap(),
        "--audit-dir",
        audit.to_str().unwrap(),
        "--company-id",
        "acme",
        "--user",
        "john.smith@acmecorp.com",
        "--dry-run",
        "--format",
        "json",
    ];
    let out = revoke365(&args, &[("USER", "mallory")], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "forbidden");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("os-user:mallory"));
    assert_eq!(files_in(&audit), 0, "no run was created");

    let out = revoke365(&args, &[("USER", "jane")], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report.request_context.requested_by_principal.as_deref(),
        Some("os-user:jane")
    );
}
