//! Certificate credentials through the binary: `cert new`, then `check` and `run` with only
//! `[m365] certificate_file` (no secret in the environment) against a simulator that holds
//! the certificate and refuses secrets; the refusals exit 2 naming the credentials.

use crate::kit::{assert_refused, events, ok_json, revoke365, stderr_error, JOHN};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

fn psa_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("REVOKE365_CW_COMPANY", "msp"),
        ("REVOKE365_CW_PUBLIC_KEY", "pub"),
        ("REVOKE365_CW_PRIVATE_KEY", "cert-test-cw-key"),
        (
            "REVOKE365_CW_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ]
}

async fn in_dir(dir: &Path, args: &[&str]) -> Output {
    let (dir, args) = (
        dir.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        revoke365(&args, &psa_env(), &dir)
    })
    .await
    .unwrap()
}

fn cert_new(dir: &Path, name: &str, days: &str) -> Value {
    ok_json(&revoke365(
        &["cert", "new", "--out", name, "--days", days],
        &[],
        dir,
    ))
}

/// The acme tenant holding `cer` (the bytes of a .cer) and refusing client secrets.
async fn acme_with_certificate(cer: Vec<u8>) -> (revoke365_sim::SimHandle, String) {
    let text = std::fs::read_to_string(events("acme-tenant.json")).unwrap();
    let tenant_id = serde_json::from_str::<Value>(&text).unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let options = revoke365_sim::SimOptions {
        cw_private_key: Some("cert-test-cw-key".into()),
        certificates: vec![cer],
        refuse_client_secrets: true,
        ..Default::default()
    };
    let sim = revoke365_sim::start(revoke365_sim::Fixture::from_json(&text).unwrap(), options)
        .await
        .unwrap();
    (sim, tenant_id)
}

fn config(dir: &Path, base: &str, tenant_id: &str, certificate: &str) -> String {
    let text = format!(
        r#"
[m365]
client_id = "cli-test-app"
certificate_file = "{certificate}"
[urls]
login = "{base}"
graph = "{base}"
exo = "{base}"
psa = "{base}"
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
    );
    let path = dir.join("revoke365.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn no_key_material(out: &Output, pem: &Path) {
    let key_line = std::fs::read_to_string(pem)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    for text in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(text);
        assert!(
            !text.contains(&key_line) && !text.contains("PRIVATE KEY"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_cert_new_runs_with_no_secret_at_a_certificate_only_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let made = cert_new(tmp.path(), "revoke365.pem", "20");
    let pem = tmp.path().join("revoke365.pem");
    let cer = tmp.path().join("revoke365.cer");
    assert_eq!(
        std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(made["sha256_thumbprint"].as_str().unwrap().len(), 64);
    assert_eq!(made["sha1_thumbprint"].as_str().unwrap().len(), 40);
    assert_eq!(made["certificate"], "revoke365.cer");

    let (sim, tenant_id) = acme_with_certificate(std::fs::read(&cer).unwrap()).await;
    let config = config(tmp.path(), &sim.base_url, &tenant_id, "revoke365.pem");

    // check: every check passes; the certificate's expiry is reported, with a warning
    // (20 days is inside the 30 days' notice).
    let out = in_dir(
        tmp.path(),
        &["check", "--config", &config, "--company-id", "acme"],
    )
    .await;
    let checked = ok_json(&out);
    let expiry: Vec<&Value> = checked["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "certificate_expiry")
        .collect();
    assert_eq!(expiry.len(), 1, "{checked}");
    let warning = expiry[0]["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("expires in")
            && warning.contains(made["sha256_thumbprint"].as_str().unwrap()),
        "{warning}"
    );
    no_key_material(&out, &pem);

    // run: removes everything, with no secret anywhere in the environment.
    let out = in_dir(
        tmp.path(),
        &[
            "run",
            "--config",
            &config,
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--ticket",
            "48213",
        ],
    )
    .await;
    let result = ok_json(&out);
    assert_eq!(
        result["removal_summary"]["total_permissions_removed"], 8,
        "{result}"
    );
    assert!(sim.snapshot().direct_grants_of(JOHN).is_empty());
    no_key_material(&out, &pem);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_the_app_does_not_hold_fails_cleanly_and_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    cert_new(tmp.path(), "registered.pem", "90");
    cert_new(tmp.path(), "other.pem", "90");
    let registered = std::fs::read(tmp.path().join("registered.cer")).unwrap();
    let (sim, tenant_id) = acme_with_certificate(registered).await;
    let before = sim.snapshot().direct_grants_of(JOHN);
    let config = config(tmp.path(), &sim.base_url, &tenant_id, "other.pem");

    let out = in_dir(
        tmp.path(),
        &[
            "run",
            "--config",
            &config,
            "--user",
            JOHN,
            "--company-id",
            "acme",
            "--ticket",
            "48213",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("AADSTS700027"), "{shown}");
    assert!(
        shown.contains("other.pem"),
        "names the certificate: {shown}"
    );
    assert_eq!(
        sim.snapshot().direct_grants_of(JOHN),
        before,
        "nothing removed"
    );
    no_key_material(&out, &tmp.path().join("other.pem"));

    // A key file others can read is refused before anything is sent.
    std::fs::set_permissions(
        tmp.path().join("registered.pem"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let config = self::config(tmp.path(), &sim.base_url, &tenant_id, "registered.pem");
    let out = in_dir(
        tmp.path(),
        &["check", "--config", &config, "--company-id", "acme"],
    )
    .await;
    assert_refused(&out, "m365.certificate_file");
    assert!(stderr_error(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("chmod 600"));
}

#[test]
fn cert_new_keeps_an_existing_key_and_checks_its_days() {
    let tmp = tempfile::tempdir().unwrap();
    cert_new(tmp.path(), "k.pem", "30");
    let first = std::fs::read(tmp.path().join("k.pem")).unwrap();
    let out = revoke365(&["cert", "new", "--out", "k.pem"], &[], tmp.path());
    assert_refused(&out, "out");
    assert_eq!(std::fs::read(tmp.path().join("k.pem")).unwrap(), first);
    let out = revoke365(
        &["cert", "new", "--out", "n.pem", "--days", "0"],
        &[],
        tmp.path(),
    );
    assert_refused(&out, "days");
}

/// `cert new --kms-key-id`: the certificate of a key in (LocalStack's) KMS, its public key the
/// key's, written without any private key.
#[tokio::test(flavor = "multi_thread")]
async fn cert_new_makes_the_certificate_of_a_kms_key() {
    revoke365_testkit::aws::require_emulators(&["AWS_ENDPOINT_URL_KMS"]);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key_id = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let tmp = tempfile::tempdir().unwrap();
    let out = in_dir(
        tmp.path(),
        &[
            "cert",
            "new",
            "--out",
            "kms.pem",
            "--kms-key-id",
            &key_id,
            "--days",
            "90",
        ],
    )
    .await;
    let made = ok_json(&out);
    assert_eq!(made["pem_holds"], "certificate");
    let pem = std::fs::read_to_string(tmp.path().join("kms.pem")).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE") && !pem.contains("PRIVATE KEY"));
    let cert = revoke365::adapters::m365::certificate::Certificate::from_der(
        &std::fs::read(tmp.path().join("kms.cer")).unwrap(),
        "kms.cer",
    )
    .unwrap();
    assert_eq!(made["sha256_thumbprint"], cert.sha256_thumbprint());
    let public = revoke365::adapters::aws::kms_signer::KmsSigner::public_key(&kms, &key_id)
        .await
        .unwrap();
    assert_eq!(cert.rsa_public_key(), public.as_slice());
    // An unknown key is named.
    let out = in_dir(
        tmp.path(),
        &[
            "cert",
            "new",
            "--out",
            "x.pem",
            "--kms-key-id",
            "alias/none",
        ],
    )
    .await;
    assert_refused(&out, "kms_key_id");
}

/// `REVOKE365_M365_CERTIFICATE` holds the PEM text in place of a file; a client secret in the
/// environment beside it is not used (the tenant refuses every secret).
#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_may_come_from_the_environment_and_then_no_secret_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    cert_new(tmp.path(), "env.pem", "90");
    let pem = std::fs::read_to_string(tmp.path().join("env.pem")).unwrap();
    let cer = std::fs::read(tmp.path().join("env.cer")).unwrap();
    std::fs::remove_file(tmp.path().join("env.pem")).unwrap();
    let (sim, tenant_id) = acme_with_certificate(cer).await;
    // certificate_file names a file that is not there: the environment wins over it.
    let config = config(tmp.path(), &sim.base_url, &tenant_id, "missing.pem");
    let (dir, config2) = (tmp.path().to_path_buf(), config.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut env = psa_env();
        env.push(("REVOKE365_M365_CERTIFICATE", pem.as_str()));
        env.push((
            "REVOKE365_M365_CLIENT_SECRET",
            "a-secret-the-tenant-refuses",
        ));
        revoke365(
            &["check", "--config", &config2, "--company-id", "acme"],
            &env,
            &dir,
        )
    })
    .await
    .unwrap();
    let checked = ok_json(&out);
    let expiry = checked["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "certificate_expiry")
        .expect("the certificate's expiry");
    assert!(
        expiry["detail"]
            .as_str()
            .unwrap()
            .contains("REVOKE365_M365_CERTIFICATE"),
        "{expiry}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("a-secret-the-tenant-refuses") && !stderr.contains("PRIVATE KEY"));
}
