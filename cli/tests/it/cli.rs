//! The `revoke365` binary as people and scripts use it: flags, stdout, stderr, exit codes.

use crate::kit::{
    assert_refused, events, revoke365, revoke365_env_only, secrets_env, stderr_error, stdout_json,
    RunResult, JOHN,
};
use revoke365::model::Report;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

async fn revoke365_async(args: Vec<String>, env: Vec<(String, String)>, cwd: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        revoke365(&args, &env, &cwd)
    })
    .await
    .unwrap()
}

/// Audit and result files in `dir`: what a run leaves (the store's database and the sandbox's
/// saved tenant are not runs).
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.ends_with(".audit.jsonl") || name.ends_with(".result.json")
                })
                .count()
        })
        .unwrap_or(0)
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
    let result: RunResult =
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
        // Each names people and mailboxes: its owner's only, as the audit trail is.
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{label}{}", path.display());
    }
    // So does the sandbox tenant's kept state.
    for kept in std::fs::read_dir(tmp.path().join("revoke365-audit/sandbox")).unwrap() {
        let path = kept.unwrap().path();
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}

/// `revoke365 runs | head -1`: the reader is gone before the answer is written; the CLI ends
/// as Unix tools do (SIGPIPE, or exit 0), never with a panic.
#[test]
fn a_reader_that_leaves_early_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let done = crate::kit::acme_run(&data, JOHN, &["--dry-run"]);
    assert_eq!(done.status.code(), Some(0));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_revoke365"))
        .args(["runs", "--data-dir", data.to_str().unwrap()])
        .current_dir(tmp.path())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert!(
        out.status.success() || out.status.signal() == Some(SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
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
    // Refused before its first record: no audit path (or any other) that was never written.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("audit trail:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::kit::printed_files(&out, tmp.path());

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
    let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
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
/// The acme fixture's tenant (a tenant id is a GUID).
const ACME_TENANT_ID: &str = "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f";

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

/// The Acme tenant's simulator, started apart from the CLI with `options`, and its tenant id:
/// what a config file for a real tenant points at.
async fn acme_simulator(options: revoke365_sim::SimOptions) -> (revoke365_sim::SimHandle, String) {
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let tenant_id = serde_json::from_str::<Value>(&text).unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sim = revoke365_sim::start(revoke365_sim::Fixture::from_json(&text).unwrap(), options)
        .await
        .unwrap();
    (sim, tenant_id)
}

/// The path a real tenant takes: a config file and env secrets, against a simulator that the
/// CLI did not start.
#[tokio::test(flavor = "multi_thread")]
async fn config_file_runs_against_a_separately_started_simulator() {
    for use_env_urls in [false, true] {
        let (sim, tenant_id) = acme_simulator(revoke365_sim::SimOptions {
            client_secret: Some(SECRET.into()),
            cw_private_key: Some(CW_KEY.into()),
            ..Default::default()
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        let mut env = secrets_env(Some(SECRET), CW_KEY);
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
        let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
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
    std::fs::write(&config, config_toml("", ACME_TENANT_ID)).unwrap();
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
    // Every missing value in one error, not one per run.
    let err = stderr_error(&out);
    assert_eq!(err["error"]["field"], "environment", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    for var in [
        "REVOKE365_M365_CLIENT_SECRET",
        "REVOKE365_CW_COMPANY",
        "REVOKE365_CW_PUBLIC_KEY",
        "REVOKE365_CW_PRIVATE_KEY",
        "REVOKE365_CW_CLIENT_ID",
    ] {
        assert!(message.contains(var), "{var} named: {message}");
    }

    // Identifiers that are not secrets may be in the config: only the secrets are then missing.
    let with_ids = config_toml("", ACME_TENANT_ID).replace(
        "kind = \"connectwise\"",
        "kind = \"connectwise\"\ncompany = \"msp\"\npublic_key = \"pub\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"",
    );
    std::fs::write(&config, with_ids).unwrap();
    let out = revoke365(&args, &[], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let message = stderr_error(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("REVOKE365_M365_CLIENT_SECRET")
            && message.contains("REVOKE365_CW_PRIVATE_KEY")
            && !message.contains("REVOKE365_CW_COMPANY")
            && !message.contains("REVOKE365_CW_PUBLIC_KEY")
            && !message.contains("REVOKE365_CW_CLIENT_ID"),
        "{message}"
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

/// The sample config of docs/configuration.md, exactly as printed.
fn readme_toml() -> String {
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let start = readme
        .find("```toml\n")
        .expect("a TOML block in docs/configuration.md")
        + 8;
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

/// The README's config loads as printed and runs (a dry run) against the simulator, with the
/// endpoints and secrets from the environment as the README says.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_config_loads_as_printed_and_dry_runs_against_the_simulator() {
    let toml_text = readme_toml();
    let tenant_id = toml_text
        .lines()
        .find_map(|l| l.strip_prefix("tenant_id = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("tenant_id in the README's config");
    // The sandbox tenant, given the README's tenant id.
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    fixture["tenant_id"] = Value::String(tenant_id);
    // The README's config names a certificate: made with `cert new`, held by the app, and
    // the only credential the tenant takes.
    let tmp = tempfile::tempdir().unwrap();
    let made = revoke365(&["cert", "new", "--out", "revoke365.pem"], &[], tmp.path());
    assert_eq!(
        made.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let sim = revoke365_sim::start(
        revoke365_sim::Fixture::from_json(&fixture.to_string()).unwrap(),
        revoke365_sim::SimOptions {
            cw_private_key: Some(CW_KEY.into()),
            certificates: vec![std::fs::read(tmp.path().join("revoke365.cer")).unwrap()],
            refuse_client_secrets: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let config = tmp.path().join("revoke365.toml");
    std::fs::write(&config, &toml_text).unwrap();
    let mut env = secrets_env(Some(SECRET), CW_KEY);
    env.retain(|(k, _)| k != "REVOKE365_M365_CLIENT_SECRET");
    for var in [
        "REVOKE365_LOGIN_URL",
        "REVOKE365_GRAPH_URL",
        "REVOKE365_EXO_URL",
        "REVOKE365_PSA_URL",
    ] {
        env.push((var.into(), sim.base_url.clone()));
    }
    let out = revoke365_async(
        [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--dry-run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env,
        tmp.path().to_path_buf(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result.dry_run && result.success);
    let would: usize = [
        &result.permissions_removed.full_access,
        &result.permissions_removed.send_as,
        &result.permissions_removed.send_on_behalf,
        &result.permissions_removed.calendar_delegates,
    ]
    .iter()
    .map(|v| v.len())
    .sum::<usize>()
        + result.permissions_removed.shared_mailboxes.len();
    assert!(would >= 5, "the dry run found the grants: {result:?}");
    assert_eq!(sim.snapshot().mailboxes, {
        let fresh = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&fixture.to_string()).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        fresh.snapshot().mailboxes
    });
    // The data directory the README names holds the run.
    let data_dir = toml_text
        .lines()
        .find_map(|l| l.strip_prefix("data_dir = "))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap()
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .expect("data_dir in the README's config");
    assert!(files_in(&tmp.path().join(data_dir)) >= 2, "{stderr}");

    // A data_dir written after [[company]] (where TOML puts it in that table) is explained.
    std::fs::write(
        &config,
        format!("{}\naudit_dir = \"./x\"\n", config_toml("", ACME_TENANT_ID)),
    )
    .unwrap();
    let out = revoke365(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--user",
            "a@b.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_error(&out);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("move it to the top"),
        "{err}"
    );
    sim.shutdown().await;
}

/// Runs the CLI with `args` and a config whose every endpoint (login, Graph, Exchange, PSA)
/// is `url`, with the secrets in the environment; the output and how long it took.
fn run_against(url: &str, args: &[&str]) -> (std::process::Output, std::time::Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        config_toml(
            &format!(
                "[urls]\nlogin = \"{url}\"\ngraph = \"{url}\"\nexo = \"{url}\"\npsa = \"{url}\"\n"
            ),
            ACME_TENANT_ID,
        ),
    )
    .unwrap();
    let owned = secrets_env(Some(SECRET), CW_KEY);
    let env: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut argv = vec![args[0], "--config", config.to_str().unwrap()];
    argv.extend_from_slice(&args[1..]);
    let started = std::time::Instant::now();
    let out = revoke365(&argv, &env, tmp.path());
    (out, started.elapsed())
}

/// A URL nothing listens on: a clear `unreachable` error naming it, exit 2, in seconds.
#[test]
fn an_unreachable_endpoint_is_named_within_seconds() {
    // Port 9 (discard) on loopback: connection refused.
    let (out, took) = run_against(
        "http://127.0.0.1:9",
        &[
            "run",
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "unreachable", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:9"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
}

/// `check` probes the endpoints as `run` does: a closed port is named `unreachable` at once,
/// not after the HTTP client's retries.
#[test]
fn check_names_an_unreachable_endpoint_within_seconds() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}");
    let (out, took) = run_against(&url, &["check", "--company-id", "acme"]);
    assert_refused(&out, "urls.login");
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "unreachable", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(&url),
        "{err}"
    );
    // A safety net only: the probe answers in about a second on loopback.
    assert!(took < std::time::Duration::from_secs(15));
}

/// The acme tenant with every simulated request slowed down, so that a run can be stopped
/// half-way.
fn slow_acme(dir: &Path) -> PathBuf {
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    fixture["sim"]["latency_ms"] = Value::from(250);
    // John has a second address, for the check that one person's interrupted run holds up
    // a new run however they are named.
    fixture["users"][0]["proxy_addresses"] =
        serde_json::json!(["SMTP:john.smith@acmecorp.com", "smtp:j.smith@acmecorp.com"]);
    let path = dir.join("slow-acme.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    path
}

/// Outcome records with `result: removed` in the run's audit file(s) under `dir`.
fn removed_outcomes(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(".audit.jsonl")
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                if let Ok(r) = serde_json::from_str::<Value>(line) {
                    if r["phase"] == "outcome" && r["result"] == "removed" {
                        out.push(r);
                    }
                }
            }
        }
    }
    out
}

/// Starts `revoke365 run` on the slow tenant and waits until the audit shows `removals`
/// removed grants.
fn start_slow_run(tmp: &Path, fixture: &Path, removals: usize) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_revoke365"))
        .args([
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--concurrency",
            "1",
        ])
        .current_dir(tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let audit = tmp.join("revoke365-audit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while removed_outcomes(&audit).len() < removals {
        assert!(std::time::Instant::now() < deadline, "no removals seen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn resume(tmp: &Path, run_id: &str) -> Output {
    revoke365(&["resume", run_id], &[], tmp)
}

/// What the resumed run's tenant, report, audit, note and email say: all 8 grants removed
/// once, by one run, and reported together.
fn assert_whole_run_reported(tmp: &Path, run_id: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result.run_id, run_id, "the same run goes on");
    assert!(result.success, "{result:?}");
    assert_eq!(result.removal_summary.total_permissions_removed, 8);
    assert!(result.verification.all_permissions_cleared);
    // One `removed` outcome per grant, over both parts.
    let audit = tmp.join("revoke365-audit");
    let removed = removed_outcomes(&audit);
    let mut items: Vec<i64> = removed
        .iter()
        .map(|r| r["item_id"].as_i64().unwrap())
        .collect();
    items.sort();
    items.dedup();
    assert_eq!((removed.len(), items.len()), (8, 8), "{removed:?}");
    // The note and the email list grants removed before the interruption and after it.
    for label in ["PSA note: ", "email: "] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no '{label}' in {stderr}"));
        let text = std::fs::read_to_string(tmp.join(line.trim_start_matches(label))).unwrap();
        for mailbox in [
            "ceo@acmecorp.com",
            "sales@acmecorp.com",
            "info@acmecorp.com",
            "support@acmecorp.com",
        ] {
            assert!(text.contains(mailbox), "{label} names {mailbox}");
        }
    }
    // The tenant the sandbox kept: nothing of John's left, nobody else's touched.
    let state_dir = audit.join("sandbox");
    let state: Value = std::fs::read_dir(&state_dir)
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).unwrap()).unwrap())
        .find(|s| s.to_string().contains("Remove-"))
        .expect("the sandbox tenant's saved state");
    let requests = &state["counters"]["requests"];
    let removal_calls: u64 = requests
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("Remove-") || k.contains("DELETE calendarPermissions"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert!(
        (7..=8).contains(&removal_calls),
        "every grant removed once (send on behalf is a Set-Mailbox): {requests}"
    );
}

#[test]
fn ctrl_c_stops_the_run_prints_the_partial_result_and_resume_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = slow_acme(tmp.path());
    let child = start_slow_run(tmp.path(), &fixture, 2);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let partial: Report = serde_json::from_slice(&out.stdout).expect("the partial result");
    assert_eq!(partial.status.as_str(), "interrupted");
    assert!(!partial.success);
    let done = partial.removal_summary.total_permissions_removed;
    assert!((2..8).contains(&done), "stopped half-way: {done}");
    // Every outcome reached the audit before the process ended.
    assert_eq!(
        removed_outcomes(&tmp.path().join("revoke365-audit")).len() as u32,
        done
    );
    let run_id = partial.run_id.clone();
    assert!(
        stderr.contains(&format!("revoke365 resume {run_id}")),
        "says how to resume: {stderr}"
    );
    // Progress, on a stderr that is not a terminal, counted in grants.
    assert!(stderr.contains("grants removed"), "{stderr}");
    // The partial result claims no verification: what it has not removed may remain.
    assert_unfinished(&partial, done);
    assert_history_tells_the_truth(tmp.path(), &run_id, done, "interrupted — resume it");
    // Its trail links but the run has not verified, so nothing anchors it: not tampering and
    // not proof (exit 3), and a restore waits for the resume that verifies and anchors it.
    let data_dir = tmp.path().join("revoke365-audit");
    let out = audit_verify(&run_id, &data_dir, "json", tmp.path());
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = stdout_json(&out);
    assert_eq!(
        (check["status"].as_str(), check["run_status"].as_str()),
        (Some("unanchored"), Some("interrupted")),
        "{check}"
    );
    let table = audit_verify(&run_id, &data_dir, "table", tmp.path());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("revoke365 resume {run_id}")),
        "{text}"
    );
    let refused = revoke365(&["restore", &run_id], &[], tmp.path());
    assert_eq!(refused.status.code(), Some(2));
    let err = stderr_error(&refused);
    assert_eq!(err["error"]["field"], "run_id", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("resume it first (revoke365 resume {run_id})")),
        "{err}"
    );

    // A new run for the same user and company points to the interrupted one.
    let again = revoke365(
        &[
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(again.status.code(), Some(2));
    let err = stderr_error(&again);
    assert_eq!(err["error"]["code"], "interrupted_run_exists");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("revoke365 resume {run_id}")));
    // So does a run that names John by his other address: the hold is on the person.
    let by_proxy = revoke365(
        &[
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            "J.Smith@acmecorp.com",
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(
        by_proxy.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&by_proxy.stderr)
    );
    assert_eq!(
        stderr_error(&by_proxy)["error"]["code"],
        "interrupted_run_exists"
    );

    // A dry run is not held up by it.
    let dry = revoke365(
        &[
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--dry-run",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );

    let out = resume(tmp.path(), &run_id);
    assert_whole_run_reported(tmp.path(), &run_id, &out);
    let out = resume(tmp.path(), &run_id);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a finished run is not resumed again"
    );
    assert_eq!(stderr_error(&out)["error"]["code"], "run_finished");
    let out = audit_verify(&run_id, &data_dir, "json", tmp.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "verified, its trail is anchored"
    );
    assert_eq!(stdout_json(&out)["status"], "intact");
}

/// A partial result: `done` removed, nothing verified, the rest of the 8 grants counted as
/// possibly remaining, access not called gone.
fn assert_unfinished(partial: &Report, done: u32) {
    let v = &partial.verification;
    assert!(!v.verified, "{v:?}");
    assert!(!v.all_permissions_cleared, "{v:?}");
    assert!(partial.residual_access, "unprocessed grants may remain");
    let left = v.remaining_full_access
        + v.remaining_send_as
        + v.remaining_send_on_behalf
        + v.remaining_calendar_delegates
        + v.remaining_shared_mailboxes;
    assert_eq!(left + done, 8, "{v:?}");
    let table = revoke365::render::text_report(partial);
    assert!(table.contains("UNFINISHED"), "{table}");
    assert!(!table.contains("verified."), "claims verification: {table}");
    assert!(table.contains("revoke365 resume"), "{table}");
}

/// `runs` counts what the stopped run removed and says it needs resuming (`status_text` in
/// the table); `show` prints its partial result and how to resume it.
fn assert_history_tells_the_truth(tmp: &Path, run_id: &str, done: u32, status_text: &str) {
    let out = revoke365(&["runs"], &[], tmp);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout_json(&out);
    let run = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id)
        .expect("the run is listed")
        .clone();
    assert_eq!(run["counts"]["done"], done, "{run}");
    assert_eq!(run["needs_resume"], true, "{run}");
    let out = revoke365(&["runs", "--format", "table"], &[], tmp);
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with(run_id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains(status_text), "{line}");
    assert!(line.contains(&format!("{done}/0/0")), "{line}");
    let out = revoke365(&["show", run_id, "--format", "table"], &[], tmp);
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("UNFINISHED"), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("revoke365 resume {run_id}")),
        "show says how to go on"
    );
    let out = revoke365(&["show", run_id], &[], tmp);
    let shown: Report = serde_json::from_slice(&out.stdout).expect("a partial result");
    assert_eq!(shown.removal_summary.total_permissions_removed, done);
    assert!(!shown.verification.verified);
}

/// The id of the one run whose audit trail is in `audit`.
fn run_id_in(audit: &std::path::Path) -> String {
    std::fs::read_dir(audit)
        .unwrap()
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".audit.jsonl")
                .map(str::to_string)
        })
        .expect("an audit trail")
}

#[test]
fn a_killed_run_resumes_from_its_state_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = slow_acme(tmp.path());
    let mut child = start_slow_run(tmp.path(), &fixture, 3);
    child.kill().unwrap(); // SIGKILL: nothing runs after it.
    child.wait().unwrap();
    let audit = tmp.path().join("revoke365-audit");
    let run_id = run_id_in(&audit);
    // Still `removing` on disk, with no process: history says so, with what it removed.
    let removed = removed_outcomes(&audit).len() as u32;
    assert_history_tells_the_truth(tmp.path(), &run_id, removed, "stalled — resume it");
    let out = resume(tmp.path(), &run_id);
    assert_whole_run_reported(tmp.path(), &run_id, &out);
}

/// Off a terminal, progress is plain lines counted in grants, with verification and the
/// waits a throttling service imposes, and how long they are.
#[test]
fn progress_off_a_terminal_counts_grants_and_shows_throttling_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    fixture["sim"]["exchange_concurrency_cap"] = Value::from(1);
    fixture["sim"]["retry_after_secs"] = Value::from(2);
    fixture["sim"]["latency_ms"] = Value::from(100);
    let path = tmp.path().join("throttling-acme.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            path.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--concurrency",
            "8",
        ],
        &[],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(
        progress
            .iter()
            .any(|l| l.contains("removing: ") && l.contains("grants removed")),
        "{stderr}"
    );
    assert!(
        progress.iter().any(|l| l.contains("verifying: ")),
        "{stderr}"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.contains("waiting") && l.contains("s: exchange is throttling")),
        "{stderr}"
    );
}

/// A second Ctrl-C quits at once, even with a call in flight; the run is then resumed like a
/// killed one, and the call that was in flight is checked against the tenant.
#[test]
fn a_second_ctrl_c_quits_at_once_and_the_run_still_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    // The first Send As removal is carried out, then answered only 8 s later.
    fixture["sim"]["faults"] = serde_json::json!([{
        "endpoint": "exo Remove-RecipientPermission",
        "answer": "hang_after_write",
        "hang_ms": 8000
    }]);
    let path = tmp.path().join("hanging-acme.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_revoke365"))
        .args([
            "run",
            "--sandbox",
            path.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
            "--concurrency",
            "1",
        ])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the Send As removal to be in flight (its before-state is in the audit).
    let audit = tmp.path().join("revoke365-audit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let in_flight = std::fs::read_dir(&audit)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".audit.jsonl"))
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("\"action\":\"remove_send_as\"")
            });
        if in_flight {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Send As removal seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        second.elapsed() < std::time::Duration::from_secs(3),
        "quit at once, not after the 8 s call: {:?}",
        second.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("quitting now"), "{stderr}");
    let run_id = run_id_in(&audit);
    let out = resume(tmp.path(), &run_id);
    assert_whole_run_reported(tmp.path(), &run_id, &out);
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
            "contain_roles",
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

/// The account running the CLI, as the system knows it.
fn os_account() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The principal is the OS account: `$USER` can neither pass for another user nor, unset
/// (cron, `env -i`), leave the run without one.
#[test]
fn the_os_account_is_the_principal_and_one_not_allowed_exits_2_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let account = os_account();
    let allowing = |name: &str, principal: &str| {
        acme_variant(tmp.path(), name, |fx| {
            fx["organization"]["allowed_principals"] = json!([principal]);
        })
    };
    let run = |fixture: &Path, env: &[(&str, &str)], only_env: bool| {
        let args = [
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--audit-dir",
            audit.to_str().unwrap(),
            "--company-id",
            "acme",
            "--user",
            JOHN,
            "--dry-run",
        ];
        if only_env {
            revoke365_env_only(&args, env, tmp.path())
        } else {
            revoke365(&args, env, tmp.path())
        }
    };

    let jane_only = allowing("jane-only.json", "os-user:jane");
    let out = run(&jane_only, &[("USER", "jane"), ("LOGNAME", "jane")], false);
    assert_refused(&out, "company_id");
    let err = stderr_error(&out);
    assert_eq!(err["error"]["code"], "forbidden");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("os-user:{account}")),
        "{err}"
    );
    assert_eq!(files_in(&audit), 0, "no run was created");

    let own = allowing("own.json", &format!("os-user:{account}"));
    let out = run(&own, &[], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report.request_context.requested_by_principal,
        Some(format!("os-user:{account}"))
    );
}

/// Log lines go to files and cron mail as plain text: no colour codes off a terminal.
#[test]
fn a_warning_off_a_terminal_carries_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let nobody = acme_variant(tmp.path(), "nobody.json", |fx| {
        fx["organization"]["allowed_principals"] = json!(["os-user:nobody-here"]);
    });
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            nobody.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--company-id",
            "acme",
            "--user",
            JOHN,
            "--dry-run",
        ],
        &[],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("refused")),
        "{stderr}"
    );
    assert!(!stderr.contains("\x1b["), "{stderr:?}");
}

/// A finished sandbox run on acme with its audit files in `audit`; its run id.
fn acme_run_with_audit_in(audit: &Path, cwd: &Path) -> String {
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
            "--audit-dir",
            audit.to_str().unwrap(),
        ],
        &[],
        cwd,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Report = serde_json::from_slice(&out.stdout).unwrap();
    result.run_id.to_string()
}

fn audit_verify(run_id: &str, audit: &Path, format: &str, cwd: &Path) -> Output {
    revoke365(
        &[
            "audit",
            "verify",
            run_id,
            "--audit-dir",
            audit.to_str().unwrap(),
            "--format",
            format,
        ],
        &[],
        cwd,
    )
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_audit_lines(path: &Path, lines: &[Value]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[test]
fn audit_verify_exits_0_on_an_untouched_trail_and_1_naming_a_changed_or_deleted_record() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let run_id = acme_run_with_audit_in(&audit, tmp.path());
    let out = audit_verify(&run_id, &audit, "json", tmp.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (check["status"].as_str(), check["records"].as_u64()),
        (Some("intact"), Some(17))
    );

    let path = audit.join(format!("{run_id}.audit.jsonl"));
    let original = audit_lines(&path);
    let target = original
        .iter()
        .position(|l| l["chain"] == "batch#00000" && l["seq"] == 1)
        .unwrap();
    let id = original[target]["record_id"].as_str().unwrap().to_string();

    let mut changed = original.clone();
    changed[target]["reason"] = json!("nothing to see here");
    write_audit_lines(&path, &changed);
    let out = audit_verify(&run_id, &audit, "json", tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["status"], "tampered");
    assert_eq!(check["problems"][0]["kind"], "modified");
    assert_eq!(check["problems"][0]["record_id"], id.as_str());
    let table = audit_verify(&run_id, &audit, "table", tmp.path());
    assert_eq!(table.status.code(), Some(1));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("TAMPERED") && text.contains(&format!("modified: record {id}")),
        "{text}"
    );

    let mut deleted = original.clone();
    deleted.remove(target);
    write_audit_lines(&path, &deleted);
    let out = audit_verify(&run_id, &audit, "json", tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["problems"][0]["kind"], "removed");
    assert_eq!(
        (
            check["problems"][0]["chain"].as_str(),
            check["problems"][0]["seq"].as_u64()
        ),
        (Some("batch#00000"), Some(1))
    );
}

/// Stripped of its chains and manifest, the trail of a run created since chaining began is
/// not taken for one written before it: `tampered`, exit 1 (it was `unchained`, exit 0,
/// before runs could be told apart by when they were made).
#[test]
fn audit_verify_exits_1_for_a_trail_stripped_of_its_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let run_id = acme_run_with_audit_in(&audit, tmp.path());
    let path = audit.join(format!("{run_id}.audit.jsonl"));
    let mut lines = audit_lines(&path);
    for line in &mut lines {
        for field in ["chain", "seq", "prev_hash", "hash"] {
            line.as_object_mut().unwrap().remove(field);
        }
    }
    write_audit_lines(&path, &lines);
    std::fs::remove_file(audit.join(format!("{run_id}.audit-manifest.json"))).unwrap();
    let out = audit_verify(&run_id, &audit, "table", tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TAMPERED") && text.contains("is in no chain"),
        "{text}"
    );
}

#[test]
fn audit_verify_of_an_unknown_run_exits_2_naming_run_id() {
    let tmp = tempfile::tempdir().unwrap();
    for run_id in ["no-such-run", "../etc/passwd"] {
        let out = audit_verify(run_id, tmp.path(), "json", tmp.path());
        assert_eq!(out.status.code(), Some(2), "{run_id}");
        assert_eq!(stderr_error(&out)["error"]["field"], "run_id", "{run_id}");
    }
}

const HALO_SECRET: &str = "cli-test-halo-secret";

/// A config whose default PSA is ConnectWise and whose one company moved to HaloPSA, with its
/// own outcome over the `[psa.halo]` default.
/// `--data-dir` names the data directory in every command; `--audit-dir` is its old name.
#[test]
fn audit_verify_takes_the_data_dir_flag_as_every_command_does() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run_id = acme_run_with_audit_in(&data, tmp.path());
    for flag in ["--data-dir", "--audit-dir"] {
        let out = revoke365(
            &["audit", "verify", &run_id, flag, data.to_str().unwrap()],
            &[],
            tmp.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout_json(&out)["status"], "intact", "{flag}");
    }
}

/// `--ticket` is the name wherever a ticket is taken; `--ticket-id` is accepted too.
#[test]
fn ticket_id_is_accepted_as_another_spelling_of_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = crate::kit::acme_run(&data, JOHN, &["--ticket-id", "48213"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(stdout_json(&run)["ticket_id"], "48213");

    let acme = events("acme-tenant.json");
    let check = revoke365(
        &[
            "check",
            "--sandbox",
            acme.to_str().unwrap(),
            "--company-id",
            "acme",
            "--ticket-id",
            "48213",
        ],
        &[],
        tmp.path(),
    );
    let ticket = check_entries(&check)
        .into_iter()
        .find(|c| c["check"] == "psa_ticket")
        .expect("the ticket is checked");
    assert_eq!(ticket["ok"], true, "{ticket}");
}

/// `--requested-by` and `--reason` say in `--help` what they are for.
#[test]
fn requested_by_and_reason_are_explained_in_help() {
    let tmp = tempfile::tempdir().unwrap();
    for command in ["run", "restore"] {
        let out = revoke365(&[command, "--help"], &[], tmp.path());
        let help = String::from_utf8_lossy(&out.stdout);
        for (flag, says) in [
            ("--requested-by <WHO>", "Who asked"),
            ("--reason <TEXT>", "Why"),
        ] {
            let after = &help[help
                .find(flag)
                .unwrap_or_else(|| panic!("{command}: no {flag} in {help}"))..];
            let explained = after
                .lines()
                .skip(1)
                .take_while(|l| !l.trim_start().starts_with('-'))
                .chain(after.lines().take(1))
                .any(|l| l.contains(says));
            assert!(explained, "{command} {flag}: {help}");
        }
    }
}

/// A long company name is cut after a whole word, inside its parentheses, with an ellipsis;
/// the user's address and the run marker the ticket is found by stay whole, within 100
/// characters.
#[test]
fn a_long_company_name_is_cut_at_a_word_in_the_ticket_title_and_the_marker_stays_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let long =
        "Acme Corporation International Holdings and Subsidiaries of the Greater Metropolitan Area";
    let fixture = acme_variant(tmp.path(), "long-name.json", |fx| {
        fx["organization"]["company_name"] = json!(long);
    });
    let out = revoke365(
        &[
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: RunResult = serde_json::from_slice(&out.stdout).unwrap();
    let ticket_id = report.ticket_id.clone().expect("a ticket was made");
    // The simulated PSA's tickets, as the sandbox saved them beside the run.
    let saved = std::fs::read_dir(data.join("sandbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tenant.json"))
        .expect("the sandbox tenant is saved");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    let summary = state["tenant"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"].to_string().trim_matches('"') == ticket_id)
        .expect("the run's ticket")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.chars().count() <= 100, "{summary}");
    let marker = format!(" [run {}]", report.run_id);
    let text = summary
        .strip_suffix(&marker)
        .unwrap_or_else(|| panic!("{summary}"));
    let name = text
        .strip_prefix(&format!("Remove mailbox access: {JOHN} ("))
        .and_then(|t| t.strip_suffix("…)"))
        .unwrap_or_else(|| panic!("the name is not cut with an ellipsis: {summary}"));
    assert!(
        long.starts_with(name) && long[name.len()..].starts_with(' '),
        "not cut after a whole word: {summary}"
    );
}

/// `org put` holds a file to the rules a run's config is held to, each refusal naming the
/// field and what it may be; the same file as a config stops `check` the same way.
#[test]
fn org_put_refuses_a_tenant_id_address_or_wildcard_a_run_cannot_use() {
    let tmp = tempfile::tempdir().unwrap();
    let company = |tenant: &str, sender: &str, recipients: &str, extra: &str| {
        format!(
            r#"[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "{tenant}"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
m365_permission_notification_recipients = {recipients}
notification_sender = "{sender}"
{extra}"#
        )
    };
    let (sender, recipients) = ("automation@acmecorp.com", r#"["secops@msp.example"]"#);
    let cases = [
        (
            company("not-a-guid", sender, recipients, ""),
            "tenant_id",
            "expected the tenant's GUID",
        ),
        (
            company(ACME_TENANT_ID, "automation", recipients, ""),
            "notification_sender",
            "not a valid email address",
        ),
        (
            company(ACME_TENANT_ID, sender, r#"["secops-at-msp"]"#, ""),
            "m365_permission_notification_recipients",
            "'secops-at-msp' is not a valid email address",
        ),
        (
            company(
                ACME_TENANT_ID,
                sender,
                recipients,
                r#"report_domains = ["*"]"#,
            ),
            "report_domains",
            "wildcards are not allowed",
        ),
        (
            company(
                ACME_TENANT_ID,
                sender,
                recipients,
                r#"allowed_principals = ["*"]"#,
            ),
            "allowed_principals",
            "every caller",
        ),
        (
            company(
                ACME_TENANT_ID,
                sender,
                recipients,
                r#"restore_principals = [""]"#,
            ),
            "restore_principals",
            "empty entry",
        ),
        (
            company(
                ACME_TENANT_ID,
                sender,
                recipients,
                r#"access_principals = ["arn:aws:iam::*:role/Helpdesk"]"#,
            ),
            "access_principals",
            "a '*' may only end a prefix",
        ),
    ];
    for (i, (text, field, says)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("org{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = revoke365(&["org", "put", file.to_str().unwrap()], &[], tmp.path());
        assert_refused(&out, field);
        let message = stderr_error(&out)["error"]["message"].to_string();
        assert!(message.contains(says), "{field}: {message}");
        assert!(message.contains("company 'acme'"), "{message}");
    }
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[m365]\nclient_id = \"app\"\n\n{}", cases[0].0),
    )
    .unwrap();
    let out = revoke365(
        &[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_refused(&out, "tenant_id");

    let valid = tmp.path().join("valid.toml");
    std::fs::write(
        &valid,
        company(
            ACME_TENANT_ID,
            sender,
            recipients,
            r#"report_domains = ["acmecorp.com", "@msp.example"]"#,
        ),
    )
    .unwrap();
    let out = revoke365(&["org", "put", valid.to_str().unwrap()], &[], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--aws` with no region or no credentials in the environment: one line saying which.
#[test]
fn aws_without_a_region_or_credentials_says_which_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let home = home.to_str().unwrap();
    // No instance metadata either: off EC2 the SDK would otherwise wait for it.
    let no_region = [("HOME", home), ("AWS_EC2_METADATA_DISABLED", "true")];
    let no_credentials = [
        ("HOME", home),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_REGION", "eu-west-1"),
    ];
    for (env, field, says) in [
        (
            &no_region[..],
            "aws_region",
            "AWS region not found: set AWS_REGION",
        ),
        (
            &no_credentials[..],
            "aws_credentials",
            "AWS credentials not found: set AWS_ACCESS_KEY_ID",
        ),
    ] {
        let out = revoke365_env_only(&["runs", "--aws", "--company-id", "acme"], env, tmp.path());
        assert_refused(&out, field);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("{ "), "an SDK struct: {stderr}");
        let message = stderr_error(&out)["error"]["message"].to_string();
        assert!(message.contains(says), "{message}");
    }
}

fn halo_company_toml(base: &str, tenant_id: &str) -> String {
    format!(
        r#"
[m365]
client_id = "cli-test-app"
[urls]
login = "{base}"
graph = "{base}"
exo = "{base}"
psa = "{base}"
[psa]
kind = "connectwise"
[psa.halo]
auth_url = "{base}/halo/auth"
api_url = "{base}/halo/api/"
outcome_id = 9

[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "{tenant_id}"
psa_kind = "halo"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
m365_permission_notification_recipients = ["secops@msp.example"]
notification_sender = "automation@acmecorp.com"
[company.halo]
outcome_id = 11
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_company_of_another_psa_keeps_its_kind_and_needs_only_that_psas_secrets() {
    let (sim, tenant_id) = acme_simulator(revoke365_sim::SimOptions {
        client_secret: Some(SECRET.into()),
        halo_client_secret: Some(HALO_SECRET.into()),
        ..Default::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("revoke365.toml");
    std::fs::write(&config, halo_company_toml(&sim.base_url, &tenant_id)).unwrap();
    let args: Vec<String> = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--user",
        "john.smith@acmecorp.com",
        "--company-id",
        "acme",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // Only the Halo values are asked for: no company uses ConnectWise.
    let env: Vec<(String, String)> = vec![("REVOKE365_M365_CLIENT_SECRET".into(), SECRET.into())];
    let out = revoke365_async(args.clone(), env.clone(), tmp.path().to_path_buf()).await;
    assert_eq!(out.status.code(), Some(2));
    let message = stderr_error(&out)["error"]["message"].to_string();
    assert!(
        message.contains("REVOKE365_HALO_CLIENT_SECRET"),
        "{message}"
    );
    assert!(message.contains("REVOKE365_HALO_CLIENT_ID"), "{message}");
    assert!(!message.contains("REVOKE365_CW_"), "{message}");

    let mut env = env;
    env.push(("REVOKE365_HALO_CLIENT_ID".into(), "revoke365".into()));
    env.push(("REVOKE365_HALO_CLIENT_SECRET".into(), HALO_SECRET.into()));
    let out = revoke365_async(args, env, tmp.path().to_path_buf()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains(HALO_SECRET)
            && !String::from_utf8_lossy(&out.stdout).contains(HALO_SECRET)
    );
    let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
    let ticket_id = result.ticket_id.expect("a Halo ticket");
    let state = sim.snapshot();
    assert_eq!(state.requests("cw POST tickets"), 0);
    let note = &state.ticket(&ticket_id).unwrap().notes[0];
    assert_eq!(note.outcome_id, Some(11), "the company's outcome wins");
    assert!(note.text.contains(&result.run_id));
    sim.shutdown().await;
}

#[test]
fn a_company_without_a_psa_runs_end_to_end_and_refuses_a_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = events("acme-no-psa-tenant.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--sandbox",
            fixture.to_str().unwrap(),
            "--user",
            "john.smith@acmecorp.com",
            "--company-id",
            "acme",
        ];
        args.extend_from_slice(extra);
        revoke365(&args, &[], tmp.path())
    };
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["success"], true);
    assert_eq!(result["ticket_id"], Value::Null);
    assert!(result["no_ticket"]
        .as_str()
        .unwrap()
        .contains("psa_kind = \"none\""));
    assert_eq!(result["errors"], json!([]));

    let out = run(&["--ticket", "48213", "--new"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_error(&out);
    assert_eq!(err["error"]["field"], "ticket_id", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("no PSA"));
}

#[test]
fn the_sandbox_plays_every_psa() {
    let tmp = tempfile::tempdir().unwrap();
    for (fixture, marker) in [
        ("acme-halo-tenant.json", "<br>"),
        (
            "acme-autotask-tenant.json",
            "Revoke365 mailbox access removal",
        ),
    ] {
        let data = tmp.path().join(fixture);
        let out = revoke365(
            &[
                "run",
                "--sandbox",
                events(fixture).to_str().unwrap(),
                "--user",
                "john.smith@acmecorp.com",
                "--company-id",
                "acme",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            tmp.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{fixture}: {stderr}");
        let result: RunResult = serde_json::from_slice(&out.stdout).unwrap();
        assert!(result.success, "{fixture}: {:?}", result.errors);
        assert_eq!(result.removal_summary.total_permissions_removed, 8);
        let note = std::fs::read_to_string(data.join(format!("{}.psa-note.txt", result.run_id)))
            .unwrap_or_else(|e| panic!("{fixture}: the PSA note beside the audit: {e}"));
        assert!(
            note.contains(marker) && note.contains(&result.run_id),
            "{fixture}: {note}"
        );
    }
}

/// `revoke365 check` on each PSA: the ticket's company, the company itself, and another
/// company's ticket refused, the same way in every PSA.
#[test]
fn check_reads_the_ticket_and_the_company_in_every_psa() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, name) in [("halo", "Acme Corp"), ("autotask", "Acme Corp")] {
        let fixture = acme_variant(tmp.path(), &format!("{kind}.json"), |fx| {
            fx["organization"]["psa_kind"] = json!(kind);
            fx["organization"]["psa_company"] = json!(name);
        });
        let check = |extra: &[&str]| {
            let mut args = vec![
                "check",
                "--sandbox",
                fixture.to_str().unwrap(),
                "--company-id",
                "acme",
            ];
            args.extend_from_slice(extra);
            revoke365(&args, &[], tmp.path())
        };
        let entry = |out: &Output, name: &str| {
            check_entries(out)
                .into_iter()
                .find(|c| c["check"] == name)
                .unwrap_or_else(|| panic!("{kind}: no {name} check"))
        };
        let own = check(&["--ticket", "48213"]);
        assert_eq!(
            own.status.code(),
            Some(0),
            "{kind}: {:?}",
            check_entries(&own)
        );
        let company = check(&[]);
        assert_eq!(company.status.code(), Some(0), "{kind}");
        assert_eq!(entry(&company, "psa_company")["ok"], true, "{kind}");
        let other = check(&["--ticket", "7001"]);
        assert_eq!(other.status.code(), Some(2), "{kind}");
        let refused = entry(&other, "psa_ticket");
        assert_eq!(
            refused["code"], "ticket_not_for_company",
            "{kind}: {refused}"
        );
        assert!(
            !refused.to_string().contains("GlobexCorp"),
            "{kind}: another customer is never named: {refused}"
        );
    }

    let none = acme_variant(tmp.path(), "none.json", |fx| {
        fx["organization"]["psa_kind"] = json!("none");
    });
    let out = revoke365(
        &[
            "check",
            "--sandbox",
            none.to_str().unwrap(),
            "--company-id",
            "acme",
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let psa = check_entries(&out)
        .into_iter()
        .find(|c| c["check"] == "psa_company")
        .unwrap();
    assert!(psa["detail"].as_str().unwrap().contains("no PSA"), "{psa}");
}

/// The TOML blocks of docs/psa.md's configuration part, each as a whole config: its `[psa.<kind>]`
/// table and a company of that kind with the block's own ids. They load as printed.
#[test]
fn the_readme_psa_tables_load_as_printed() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/psa.md"))
            .unwrap();
    let start = readme.find("# PSAs").expect("a PSAs section");
    let end = start + readme[start..].find("\n## The PSAs on the wire").unwrap();
    let section = &readme[start..end];
    let blocks: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert_eq!(blocks.len(), 3, "one block per PSA with settings");
    let tmp = tempfile::tempdir().unwrap();
    for (block, kind) in blocks.iter().zip(["connectwise", "halo", "autotask"]) {
        let (tables, company) = block.split_once("[[company]]").unwrap_or((block, ""));
        // The block's company keys, completed with the ones every company needs.
        let own_ids = company
            .split_once(&format!("[company.{kind}]"))
            .map(|(_, ids)| format!("[company.{kind}]{ids}"))
            .unwrap_or_default();
        let config = format!(
            r#"[m365]
client_id = "app"
{tables}
[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "{ACME_TENANT_ID}"
psa_kind = "{kind}"
psa_company = "Acme Corp"
m365_permission_ticket_board = "Service Desk"
m365_permission_notification_recipients = ["secops@msp.example"]
notification_sender = "automation@acmecorp.com"
{own_ids}"#
        );
        let path = tmp.path().join(format!("{kind}.toml"));
        std::fs::write(&path, &config).unwrap();
        // `org list --config` reads the whole config file (every table checked).
        let out = revoke365(
            &["org", "list", "--config", path.to_str().unwrap()],
            &[],
            tmp.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {}\n{config}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A typo in `--user` or `--ticket` is the operator's error alone: exit 2 on stderr naming the
/// field, and nothing reaches the customer — no run, no ticket, no note, no email.
#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_user_or_ticket_is_told_to_the_operator_only() {
    let (sim, tenant_id) = acme_simulator(revoke365_sim::SimOptions {
        client_secret: Some(SECRET.into()),
        cw_private_key: Some(CW_KEY.into()),
        ..Default::default()
    })
    .await;
    let before = sim.snapshot();
    let tmp = tempfile::tempdir().unwrap();
    let b = &sim.base_url;
    let urls = format!("[urls]\nlogin = \"{b}\"\ngraph = \"{b}\"\nexo = \"{b}\"\npsa = \"{b}\"\n");
    let config = tmp.path().join("revoke365.toml");
    std::fs::write(&config, config_toml(&urls, &tenant_id)).unwrap();
    for (user, ticket, code, field) in [
        (
            "john.smyth@acmecorp.com",
            "48213",
            "user_not_found",
            "user_email",
        ),
        (
            "john.smith@acmecorp.com",
            "99999",
            "ticket_not_found",
            "ticket_id",
        ),
    ] {
        let args = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--user",
            user,
            "--company-id",
            "acme",
            "--ticket",
            ticket,
        ];
        let out = revoke365_async(
            args.iter().map(|s| s.to_string()).collect(),
            secrets_env(Some(SECRET), CW_KEY),
            tmp.path().to_path_buf(),
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        let err = stderr_error(&out);
        assert_eq!(err["error"]["code"], code, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(if field == "user_email" { user } else { ticket }),
            "{message}"
        );

        let after = sim.snapshot();
        assert_eq!(
            after.tickets, before.tickets,
            "no ticket made, no note added"
        );
        assert!(after.sent_mail.is_empty(), "{:?}", after.sent_mail);
        assert_eq!(after.mailboxes, before.mailboxes, "nothing removed");
        assert_eq!(
            files_in(&tmp.path().join("revoke365-audit")),
            0,
            "no run was made"
        );
    }
    sim.shutdown().await;
}

/// `org put` and `check` say, per company, what each principal list left out means: an empty
/// `allowed_principals` lets every caller run, an empty `restore_principals` or
/// `access_principals` lets no deployed caller restore or read access. Warnings only: exit 0.
#[test]
fn org_put_and_check_warn_about_each_company_without_a_principal_list() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("companies.toml");
    std::fs::write(
        &file,
        format!(
            r#"[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "{ACME_TENANT_ID}"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
notification_sender = "automation@acmecorp.com"

[[company]]
company_id = "initech"
company_name = "Initech"
tenant_id = "22222222-2222-2222-2222-222222222222"
psa_kind = "none"
m365_permission_ticket_board = "-"
notification_sender = "it@initech.example"
allowed_principals = ["arn:aws:iam::123456789012:role/Helpdesk"]
restore_principals = ["arn:aws:iam::123456789012:role/Seniors"]
access_principals = ["arn:aws:iam::123456789012:role/Auditors"]
"#
        ),
    )
    .unwrap();
    let out = revoke365(&["org", "put", file.to_str().unwrap()], &[], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for says in [
        "warning: company 'acme' has no allowed_principals: every caller that reaches a trigger",
        "warning: company 'acme' has no restore_principals: on AWS no caller may restore its runs",
        "warning: company 'acme' has no access_principals: on AWS no caller may read who can open its mailboxes (GET /access)",
    ] {
        assert!(stderr.contains(says), "{says}\n{stderr}");
    }
    assert!(!stderr.contains("'initech' has no"), "{stderr}");
    assert_eq!(stderr.matches("warning:").count(), 3, "{stderr}");

    // `check` warns about the company it checks; its stdout stays the checks' JSON.
    let bare = acme_variant(tmp.path(), "bare.json", |_| {});
    let listed = acme_variant(tmp.path(), "listed.json", |fx| {
        let org = &mut fx["organization"];
        org["allowed_principals"] = json!(["os-user:jane"]);
        org["restore_principals"] = json!(["os-user:jane"]);
    });
    let check = |fixture: &Path| {
        revoke365(
            &[
                "check",
                "--sandbox",
                fixture.to_str().unwrap(),
                "--company-id",
                "acme",
            ],
            &[],
            tmp.path(),
        )
    };
    let out = check(&bare);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!check_entries(&out).is_empty());
    assert_eq!(
        stderr.matches("warning: company 'acme' has no").count(),
        3,
        "{stderr}"
    );
    let out = check(&listed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    assert!(stderr.contains("has no access_principals"), "{stderr}");
}
