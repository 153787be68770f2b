//! Containment's identity actions end to end: the binary polls the contain tenant's alert
//! (`watch --once`) or contains a user (`run --contain`) with a config file against a
//! separately started simulator over HTTP, and the tenant afterwards, the result, the ticket
//! note and the email are read.

use crate::kit::{events, revoke365, secrets_env, stdout_json, JOHN};
use revoke365_sim::{Fixture, SimHandle, SimOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

const SECRET: &str = "contain-test-secret";
const CW_KEY: &str = "contain-test-cw-key";
const JANE: &str = "jane.doe@acmecorp.com";

/// The contain tenant, edited, served apart from the CLI.
async fn contain_sim(edit: impl FnOnce(&mut Value)) -> SimHandle {
    let mut raw: Value =
        serde_json::from_str(&std::fs::read_to_string(events("contain-tenant.json")).unwrap())
            .unwrap();
    edit(&mut raw);
    let options = SimOptions {
        client_secret: Some(SECRET.into()),
        cw_private_key: Some(CW_KEY.into()),
        ..Default::default()
    };
    revoke365_sim::start(Fixture::from_json(&raw.to_string()).unwrap(), options)
        .await
        .unwrap()
}

/// A config for the simulator's tenant, with `contain` as the company's `[company.contain]`.
fn config(dir: &Path, sim: &SimHandle, contain: &str) -> PathBuf {
    let b = &sim.base_url;
    let text = format!(
        r#"data_dir = "{data}"
[m365]
client_id = "contain-test-app"
[urls]
login = "{b}"
graph = "{b}"
exo = "{b}"
psa = "{b}"
[psa]
kind = "connectwise"

[[company]]
company_id = "acme"
company_name = "Acme Corp"
tenant_id = "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f"
psa_company = "AcmeCorp"
m365_permission_ticket_board = "Service Desk"
m365_permission_removal_scope = ["full_access", "send_as", "send_on_behalf", "calendar"]
m365_permission_notification_recipients = ["secops@msp.example"]
notification_sender = "automation@acmecorp.com"
{contain}
"#,
        data = dir.join("data").display()
    );
    let path = dir.join("revoke365.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The binary, off the runtime's threads (the simulator answers on them meanwhile).
async fn cli(args: &[&str], cwd: &Path) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let cwd = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let env = secrets_env(Some(SECRET), CW_KEY);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        revoke365(&args, &env, &cwd)
    })
    .await
    .unwrap()
}

/// `watch --once` on the tenant; the one run it started, as `show` prints its result.
async fn watch_and_show(dir: &Path, config: &Path) -> (std::process::Output, Value) {
    let c = config.to_str().unwrap();
    let out = cli(
        &["watch", "--config", c, "--company-id", "acme", "--once"],
        dir,
    )
    .await;
    let summary = stdout_json(&out);
    let runs = summary["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{summary:#}");
    assert_eq!(runs[0]["user_email"], JOHN);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let data = dir.join("data");
    let show = cli(
        &["show", &run_id, "--data-dir", data.to_str().unwrap()],
        dir,
    )
    .await;
    assert_eq!(
        show.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    (out, stdout_json(&show))
}

fn actions<'a>(result: &'a Value, kind: &str) -> Vec<&'a Value> {
    result["contain_actions"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["action"] == kind).collect())
        .unwrap_or_default()
}

fn at(v: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_revokes_sessions_and_mail_consents_first_and_says_when_access_ends() {
    // Graph throttles the revocation once and a consent deletion once (429, Retry-After).
    let sim = contain_sim(|raw| {
        raw["sim"]["retry_after_secs"] = serde_json::json!(0);
        raw["sim"]["faults"] = serde_json::json!([
            {"endpoint": "graph POST revokeSignInSessions", "answer": "429", "times": 1},
            {"endpoint": "graph DELETE oauth2PermissionGrants", "answer": "429", "times": 1}
        ]);
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), &sim, "");
    let (out, result) = watch_and_show(tmp.path(), &config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result["success"], true, "{result:#}");

    // The tenant: John's sessions revoked, his account still enabled (the default policy),
    // his two mail consents gone and his sign-in-only one kept; nobody else touched.
    let state = sim.snapshot();
    let identity = &state.identity;
    let john = identity.user(JOHN).expect("John's sign-in state");
    assert_eq!(john.sessions_revoked, 1);
    assert!(john.account_enabled);
    assert_eq!(john.account_enabled_changes, 0);
    let kept: Vec<&str> = identity
        .consents_of(JOHN)
        .iter()
        .map(|c| c.app.as_str())
        .collect();
    assert_eq!(kept, ["Team Polls"]);
    assert_eq!(
        identity.consents_of(JANE).len(),
        1,
        "Jane's consent is hers"
    );
    assert!(
        identity.consents.iter().any(|c| c.app == "Company Portal"),
        "admin consent kept"
    );
    for other in identity.users.iter().filter(|u| u.upn != JOHN) {
        assert_eq!(other.sessions_revoked, 0, "{}", other.upn);
        assert!(other.account_enabled, "{}", other.upn);
        assert!(other.confirmed_compromised_at.is_none());
    }
    assert!(
        state.direct_grants_of(JOHN).is_empty(),
        "every grant of John's removed"
    );
    assert_eq!(
        state.counters.injected_faults, 2,
        "both throttled, both retried"
    );

    // The result: the actions, each consent named, the clock.
    let revoke = actions(&result, "revoke_sessions");
    assert_eq!(revoke.len(), 1);
    assert_eq!(revoke[0]["status"], "done");
    assert!(
        actions(&result, "disable_sign_in").is_empty(),
        "not the policy"
    );
    let consents = actions(&result, "remove_consent");
    let mut removed: Vec<(&str, &str)> = consents
        .iter()
        .map(|c| {
            (
                c["app_name"].as_str().unwrap(),
                c["scope"].as_str().unwrap(),
            )
        })
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ("Legacy Mail Bridge", "EWS.AccessAsUser.All"),
            ("Mail Sync Pro", "Mail.Read offline_access")
        ]
    );
    let clients: Vec<&str> = state
        .identity
        .service_principals
        .iter()
        .filter(|s| s.display_name == "Mail Sync Pro" || s.display_name == "Legacy Mail Bridge")
        .map(|s| s.id.as_str())
        .collect();
    for c in &consents {
        assert_eq!(c["status"], "done");
        assert!(clients.contains(&c["client_id"].as_str().unwrap()), "{c}");
        // Sessions first, then consents.
        assert!(at(c, "at") >= at(revoke[0], "at"));
    }
    let revoked_at = at(revoke[0], "at");
    assert_eq!(
        at(revoke[0], "effective_by"),
        revoked_at + chrono::Duration::minutes(60)
    );
    let ends = at(&result, "access_ends_by");
    let grant_ends: Vec<_> = result["permissions_removed"]["full_access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| at(g, "effective_by"))
        .collect();
    assert!(!grant_ends.is_empty());
    assert!(grant_ends.iter().all(|e| *e <= ends && *e > revoked_at));
    assert_eq!(
        Some(&ends),
        grant_ends
            .iter()
            .chain([&(revoked_at + chrono::Duration::minutes(60))])
            .max()
    );
    assert!(result["containment"]["seconds_to_sessions_revoked"]
        .as_f64()
        .is_some());

    // The note on the run's ticket and the email say it in words.
    let hm = ends.format("%H:%M UTC").to_string();
    let revoked_words = format!("Sessions revoked {}", revoked_at.format("%H:%M:%S UTC"));
    let note = state
        .tickets
        .iter()
        .flat_map(|t| t.notes.iter())
        .map(|n| n.text.clone())
        .find(|t| t.contains(JOHN) || t.contains("John Smith"))
        .expect("a note about John");
    let mail = state.mail_to("secops@msp.example");
    let email = &mail.last().expect("an email").body;
    for text in [&note, email] {
        assert!(text.contains(&revoked_words), "{text}");
        assert!(text.contains(&format!("Access ends by {hm}")), "{text}");
        assert!(text.contains("Mail Sync Pro"), "{text}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_role_fails_only_its_action_and_a_synced_account_is_disabled_with_advice() {
    let sim = contain_sim(|raw| {
        raw["sim"]["missing_roles"] = serde_json::json!(["User.RevokeSessions.All"]);
        raw["users"][0]["on_premises_sync_enabled"] = serde_json::json!(true);
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let policy = "[company.contain]\ndisable_sign_in = true\nconfirm_compromised = true\n";
    let config = config(tmp.path(), &sim, policy);
    let (out, result) = watch_and_show(tmp.path(), &config).await;
    assert_eq!(out.status.code(), Some(1), "a failed action fails the run");
    assert_eq!(result["success"], false);
    let revoke = actions(&result, "revoke_sessions");
    assert_eq!(revoke[0]["status"], "failed");
    assert_eq!(revoke[0]["missing_role"], "User.RevokeSessions.All");
    let errors = result["errors"].to_string();
    assert!(errors.contains("User.RevokeSessions.All"), "{errors}");
    // The rest was done.
    let disable = actions(&result, "disable_sign_in");
    assert_eq!(disable[0]["status"], "done");
    assert!(disable[0]["note"]
        .as_str()
        .unwrap()
        .contains("disable it in AD too"));
    assert_eq!(actions(&result, "confirm_compromised")[0]["status"], "done");
    assert_eq!(actions(&result, "remove_consent").len(), 2);
    assert!(result["on_premises_note"]
        .as_str()
        .unwrap()
        .contains("disable it in AD too"));
    let state = sim.snapshot();
    let john = state.identity.user(JOHN).unwrap();
    assert!(!john.account_enabled);
    assert!(john.confirmed_compromised_at.is_some());
    assert_eq!(john.sessions_revoked, 0);
    assert!(state
        .identity
        .users
        .iter()
        .filter(|u| u.upn != JOHN)
        .all(|u| u.account_enabled));
    let mail = state.mail_to("secops@msp.example");
    assert!(mail.last().unwrap().body.contains("disable it in AD too"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_reports_what_it_would_do_and_changes_nothing() {
    let sim = contain_sim(|_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(
        tmp.path(),
        &sim,
        "[company.contain]\ndisable_sign_in = true\n",
    );
    let before = sim.snapshot().identity;
    let c = config.to_str().unwrap();
    let out = cli(
        &[
            "run",
            "--config",
            c,
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--contain",
            "--dry-run",
        ],
        tmp.path(),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stdout_json(&out);
    let statuses: Vec<(&str, &str)> = result["contain_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("revoke_sessions", "would_do"),
            ("disable_sign_in", "would_do"),
            ("remove_consent", "would_do"),
            ("remove_consent", "would_do")
        ]
    );
    assert!(result.get("access_ends_by").is_none());
    assert_eq!(sim.snapshot().identity, before, "nothing changed");
    sim.shutdown().await;
}

/// `[company.contain]` loads as docs/configuration.md prints it; a misspelt key or a value of
/// another type is named.
#[test]
fn the_contain_policy_loads_and_bad_keys_are_named() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let start = doc
        .find("\n[company.contain]")
        .expect("the block in the docs")
        + 1;
    let block: String = doc[start..]
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let tmp = tempfile::tempdir().unwrap();
    let write = |contain: &str| {
        let path = tmp.path().join("c.toml");
        std::fs::write(
            &path,
            format!(
                "[m365]\nclient_id = \"app\"\n\n[[company]]\ncompany_id = \"acme\"\ncompany_name = \"Acme\"\n\
                 tenant_id = \"3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f\"\npsa_kind = \"none\"\n\
                 m365_permission_ticket_board = \"Service Desk\"\nnotification_sender = \"automation@acmecorp.com\"\n{contain}\n"
            ),
        )
        .unwrap();
        revoke365(
            &["org", "get", "acme", "--config", path.to_str().unwrap()],
            &[],
            tmp.path(),
        )
    };
    let out = write(&block);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let org = stdout_json(&out);
    assert_eq!(org["contain"]["revoke_sessions"], true);
    assert_eq!(org["contain"]["disable_sign_in"], false);
    for (bad, named) in [
        (
            "[company.contain]\nrevoke_session = true\n",
            "revoke_session",
        ),
        (
            "[company.contain]\ndisable_sign_in = \"yes\"\n",
            "disable_sign_in",
        ),
    ] {
        let out = write(bad);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{bad}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_enables_sign_in_and_recreates_the_consents_but_not_the_sessions() {
    let sim = contain_sim(|_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config(
        tmp.path(),
        &sim,
        "[company.contain]\ndisable_sign_in = true\n",
    );
    let (_, result) = watch_and_show(tmp.path(), &config).await;
    assert_eq!(result["success"], true, "{result:#}");
    let run_id = result["run_id"].as_str().unwrap().to_string();
    let removed: Vec<(String, String, String)> = sim
        .snapshot()
        .identity
        .consents
        .iter()
        .map(|c| (c.client_id.clone(), c.resource_id.clone(), c.scope.clone()))
        .collect();
    assert!(!sim.snapshot().identity.user(JOHN).unwrap().account_enabled);

    let c = config.to_str().unwrap();
    let out = cli(&["restore", &run_id, "--config", c], tmp.path()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restore = stdout_json(&out);
    let statuses: Vec<(&str, &str)> = restore["contain_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("revoke_sessions", "not_restorable"),
            ("disable_sign_in", "restored"),
            ("remove_consent", "restored"),
            ("remove_consent", "restored")
        ],
        "{restore:#}"
    );
    let state = sim.snapshot().identity;
    let john = state.user(JOHN).unwrap();
    assert!(john.account_enabled);
    assert_eq!(john.sessions_revoked, 1, "sessions stay revoked");
    let mut apps: Vec<(&str, &str)> = state
        .consents_of(JOHN)
        .iter()
        .map(|c| (c.app.as_str(), c.scope.as_str()))
        .collect();
    apps.sort();
    assert_eq!(
        apps,
        [
            ("Legacy Mail Bridge", "EWS.AccessAsUser.All"),
            ("Mail Sync Pro", "Mail.Read offline_access"),
            ("Team Polls", "openid profile User.Read")
        ]
    );
    // Nothing else came into being; the re-created grants are the removed ones, for John.
    assert_eq!(state.consents.len(), removed.len() + 2);
    for c in state.consents_of(JOHN) {
        assert_eq!(c.consent_type, "Principal");
    }
    // A second restore finds everything back.
    let again = cli(&["restore", &run_id, "--config", c], tmp.path()).await;
    let again = stdout_json(&again);
    assert!(
        again["contain_actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] != "revoke_sessions")
            .all(|a| a["status"] == "already_present"),
        "{again:#}"
    );
    assert_eq!(sim.snapshot().identity.consents.len(), removed.len() + 2);
    sim.shutdown().await;
}

/// `revoke365 check` names the Graph permission an enabled contain action lacks, as a warning
/// (a contain run does the rest); a disabled action's is not asked for.
#[test]
fn check_names_the_permissions_of_the_enabled_contain_actions() {
    let tmp = tempfile::tempdir().unwrap();
    let mut raw: Value =
        serde_json::from_str(&std::fs::read_to_string(events("contain-tenant.json")).unwrap())
            .unwrap();
    raw["sim"]["missing_roles"] =
        serde_json::json!(["User.RevokeSessions.All", "User.EnableDisableAccount.All"]);
    let fixture = tmp.path().join("contain.json");
    std::fs::write(&fixture, raw.to_string()).unwrap();
    let f = fixture.to_str().unwrap();
    let out = revoke365(
        &["check", "--sandbox", f, "--company-id", "acme"],
        &[],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let body = stdout_json(&out);
    let contain = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "contain_roles")
        .expect("a contain_roles check")
        .clone();
    let warning = contain["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("User.RevokeSessions.All (for revoke_sessions)"),
        "{warning}"
    );
    assert!(
        !warning.contains("User.EnableDisableAccount.All"),
        "not enabled: {warning}"
    );
}
