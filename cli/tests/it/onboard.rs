//! `tenant onboard`: the consent URL, every check, and the company block written only when
//! they all pass.

use crate::kit::{events, ok_json, revoke365, JOHN};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

async fn in_dir(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let (dir, args, env) = (
        dir.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        revoke365(&args, &env, &dir)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_only_on_the_sandbox_reports_each_check_and_writes_a_valid_company_block() {
    let tmp = tempfile::tempdir().unwrap();
    let acme = events("acme-tenant.json");
    let out = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--sandbox",
            acme.to_str().unwrap(),
            "--check-only",
            "--out",
            "companies.toml",
        ],
        &[],
    )
    .await;
    let result = ok_json(&out);
    let tenant_id = serde_json::from_str::<Value>(&std::fs::read_to_string(&acme).unwrap())
        .unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = result["consent_url"].as_str().unwrap();
    assert!(
        consent.ends_with(&format!(
            "/{tenant_id}/adminconsent?client_id={}",
            consent.rsplit('=').next().unwrap()
        )),
        "{consent}"
    );
    let names: Vec<&str> = result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for wanted in [
        "m365_credentials",
        "m365_roles",
        "exchange_access",
        "notification_sender",
        "psa_company",
    ] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    assert_eq!(result["written_to"], "companies.toml");
    // The block written is a valid company: a config made of it checks and runs.
    let block = std::fs::read_to_string(tmp.path().join("companies.toml")).unwrap();
    assert_eq!(block, result["company_block"].as_str().unwrap());
    let parsed: toml::Table = toml::from_str(&block).unwrap();
    let company = &parsed["company"].as_array().unwrap()[0];
    assert_eq!(company["company_id"].as_str(), Some("acme"));
    assert_eq!(company["tenant_id"].as_str(), Some(tenant_id.as_str()));
    let config = format!("[m365]\nclient_id = \"x\"\n\n{block}");
    std::fs::write(tmp.path().join("revoke365.toml"), config).unwrap();
    let out = in_dir(
        tmp.path(),
        &["org", "get", "acme", "--config", "revoke365.toml"],
        &[],
    )
    .await;
    let org = ok_json(&out);
    assert_eq!(org["company_id"], "acme", "{org}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_exchange_role_names_the_step_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(events("acme-tenant.json")).unwrap())
            .unwrap();
    fixture["sim"]["forbidden_cmdlets"] = serde_json::json!(["Get-Recipient"]);
    let path = tmp.path().join("tenant.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let out = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--sandbox",
            path.to_str().unwrap(),
            "--check-only",
            "--out",
            "companies.toml",
        ],
        &[],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let exchange = result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "exchange_access")
        .unwrap();
    assert_eq!(exchange["ok"], false, "{result}");
    let why = exchange["why"].as_str().unwrap();
    assert!(
        why.contains("Add-RoleGroupMember") && why.contains("Exchange Recipient Administrator"),
        "{why}"
    );
    assert!(result["written_to"].is_null());
    assert!(!tmp.path().join("companies.toml").exists());
    let _ = JOHN;
}

/// A new customer against a tenant that takes certificates only: the company's block from a
/// file of its own, the consent already given (no wait), every check passes, and the block
/// lands in the config, which then checks as any other company.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_company_is_added_to_the_config_once_every_check_passes() {
    let tmp = tempfile::tempdir().unwrap();
    ok_json(&revoke365(
        &["cert", "new", "--out", "revoke365.pem"],
        &[],
        tmp.path(),
    ));
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let tenant_id = serde_json::from_str::<Value>(&text).unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sim = revoke365_sim::start(
        revoke365_sim::Fixture::from_json(&text).unwrap(),
        revoke365_sim::SimOptions {
            cw_private_key: Some("onboard-cw-key".into()),
            certificates: vec![std::fs::read(tmp.path().join("revoke365.cer")).unwrap()],
            refuse_client_secrets: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b = &sim.base_url;
    let config = format!(
        "[m365]\nclient_id = \"onboard-app\"\ncertificate_file = \"revoke365.pem\"\n[urls]\nlogin = \"{b}\"\ngraph = \"{b}\"\nexo = \"{b}\"\npsa = \"{b}\"\n[psa]\nkind = \"connectwise\"\n"
    );
    std::fs::write(tmp.path().join("revoke365.toml"), config).unwrap();
    let company = format!(
        "[[company]]\ncompany_id = \"acme\"\ncompany_name = \"Acme Corp\"\ntenant_id = \"{tenant_id}\"\npsa_company = \"AcmeCorp\"\nm365_permission_ticket_board = \"Service Desk\"\nm365_permission_notification_recipients = [\"secops@msp.example\"]\nnotification_sender = \"automation@acmecorp.com\"\n"
    );
    std::fs::write(tmp.path().join("acme.toml"), company).unwrap();
    let env = [
        ("REVOKE365_CW_COMPANY", "msp"),
        ("REVOKE365_CW_PUBLIC_KEY", "pub"),
        ("REVOKE365_CW_PRIVATE_KEY", "onboard-cw-key"),
        (
            "REVOKE365_CW_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ];
    let out = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--config",
            "revoke365.toml",
            "--company",
            "acme.toml",
            "--wait-secs",
            "5",
        ],
        &env,
    )
    .await;
    let result = ok_json(&out);
    assert_eq!(result["written_to"], "revoke365.toml", "{result}");
    assert!(result["consent_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "{b}/{tenant_id}/adminconsent?client_id=onboard-app"
        )));
    let out = in_dir(
        tmp.path(),
        &[
            "check",
            "--config",
            "revoke365.toml",
            "--company-id",
            "acme",
        ],
        &env,
    )
    .await;
    ok_json(&out);
    // Onboarding again adds no second block.
    let before = std::fs::read_to_string(tmp.path().join("revoke365.toml")).unwrap();
    let again = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--config",
            "revoke365.toml",
            "--check-only",
        ],
        &env,
    )
    .await;
    ok_json(&again);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("revoke365.toml")).unwrap(),
        before
    );
}

/// `--aws`: once every check passes the company is in the deployment's org table, as
/// `org get --aws` then reads it.
#[tokio::test(flavor = "multi_thread")]
async fn with_aws_the_company_goes_to_the_org_table() {
    let aws = crate::kit::AwsTables::provision().await;
    let tmp = tempfile::tempdir().unwrap();
    let acme = events("acme-tenant.json");
    let out = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--sandbox",
            acme.to_str().unwrap(),
            "--check-only",
            "--aws",
        ],
        &aws.env(),
    )
    .await;
    let result = ok_json(&out);
    assert!(
        result["org_table"]
            .as_str()
            .unwrap()
            .starts_with(&aws.prefix),
        "{result}"
    );
    let out = in_dir(tmp.path(), &["org", "get", "acme", "--aws"], &aws.env()).await;
    assert_eq!(ok_json(&out)["company_id"], "acme");
}

/// Without `--check-only` onboarding waits for the consent: the tenant refuses tokens
/// (AADSTS700016) until its administrator consents, then every check passes and the block is
/// written.
#[tokio::test(flavor = "multi_thread")]
async fn onboarding_waits_for_the_consent() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let tenant_id = serde_json::from_str::<Value>(&text).unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sim = revoke365_sim::start(
        revoke365_sim::Fixture::from_json(&text).unwrap(),
        revoke365_sim::SimOptions {
            client_secret: Some("onboard-secret".into()),
            cw_private_key: Some("onboard-cw-key".into()),
            consent_pending: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b = sim.base_url.clone();
    std::fs::write(
        tmp.path().join("revoke365.toml"),
        format!("[m365]\nclient_id = \"onboard-app\"\n[urls]\nlogin = \"{b}\"\ngraph = \"{b}\"\nexo = \"{b}\"\npsa = \"{b}\"\n"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("acme.toml"),
        format!("[[company]]\ncompany_id = \"acme\"\ncompany_name = \"Acme Corp\"\ntenant_id = \"{tenant_id}\"\npsa_company = \"AcmeCorp\"\nm365_permission_ticket_board = \"Service Desk\"\nm365_permission_notification_recipients = [\"secops@msp.example\"]\nnotification_sender = \"automation@acmecorp.com\"\n"),
    )
    .unwrap();
    let env = [
        ("REVOKE365_M365_CLIENT_SECRET", "onboard-secret"),
        ("REVOKE365_CW_COMPANY", "msp"),
        ("REVOKE365_CW_PUBLIC_KEY", "pub"),
        ("REVOKE365_CW_PRIVATE_KEY", "onboard-cw-key"),
        (
            "REVOKE365_CW_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ];
    let onboarding = in_dir(
        tmp.path(),
        &[
            "tenant",
            "onboard",
            "--company-id",
            "acme",
            "--config",
            "revoke365.toml",
            "--company",
            "acme.toml",
            "--wait-secs",
            "120",
        ],
        &env,
    );
    let consenting = async {
        // The administrator consents once onboarding has been refused a token.
        while sim.snapshot().requests("token") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        sim.grant_consent();
    };
    let (out, ()) = tokio::join!(onboarding, consenting);
    let result = ok_json(&out);
    assert_eq!(result["written_to"], "revoke365.toml", "{result}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("waiting for the consent"), "{stderr}");
    assert!(
        stderr.contains(&format!("/{tenant_id}/adminconsent?client_id=onboard-app")),
        "{stderr}"
    );
}
