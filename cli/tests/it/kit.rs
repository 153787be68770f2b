//! What the CLI's test modules share: running the real `revoke365` binary, reading its
//! output, and (for `--aws`) tables of their own in DynamoDB Local.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const JOHN: &str = "john.smith@acmecorp.com";

pub fn events(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name)
}

/// Runs the binary in `cwd` with `env` on top of the test's environment, less the service
/// URL and secret variables a developer's shell may hold.
pub fn revoke365(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revoke365"));
    cmd.args(args).current_dir(cwd);
    for var in [
        "REVOKE365_LOGIN_URL",
        "REVOKE365_GRAPH_URL",
        "REVOKE365_EXO_URL",
        "REVOKE365_PSA_URL",
        "REVOKE365_M365_CLIENT_SECRET",
        "REVOKE365_NAME_PREFIX",
        "REVOKE365_HALO_AUTH_URL",
        "REVOKE365_HALO_API_URL",
        "REVOKE365_HALO_CLIENT_ID",
        "REVOKE365_HALO_CLIENT_SECRET",
        "REVOKE365_HALO_TENANT",
        "REVOKE365_AUTOTASK_ZONE_URL",
        "REVOKE365_AUTOTASK_INTEGRATION_CODE",
        "REVOKE365_AUTOTASK_USERNAME",
        "REVOKE365_AUTOTASK_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("revoke365 runs")
}

/// Runs the binary with `env` as its whole environment (and `PATH`), as cron or `env -i`
/// starts it: no `USER`, no `HOME` and no AWS settings unless given.
pub fn revoke365_env_only(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revoke365"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("revoke365 runs")
}

/// A sandbox run against the acme tenant with `extra` flags, its state in `data_dir`.
pub fn acme_run(data_dir: &Path, user: &str, extra: &[&str]) -> Output {
    let acme = events("acme-tenant.json");
    let mut args = vec![
        "run",
        "--sandbox",
        acme.to_str().unwrap(),
        "--user",
        user,
        "--company-id",
        "acme",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    revoke365(&args, &[], data_dir.parent().unwrap())
}

/// stdout, which holds only the answer, as JSON.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The files a command says on stderr it wrote (`label: path` lines naming a path under
/// `dir`), each checked to exist: a printed path is never one that was not written.
pub fn printed_files(out: &Output, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let text = String::from_utf8_lossy(&out.stderr);
    let dir = dir.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(_, path)| path.trim())
        .filter(|path| path.contains(dir.as_ref()))
        .map(|path| {
            let path = std::path::PathBuf::from(path);
            assert!(
                path.is_file(),
                "printed but not written: {}\n{text}",
                path.display()
            );
            path
        })
        .collect()
}

/// The `{"error": ...}` line on stderr.
pub fn stderr_error(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("{\"error\""))
        .unwrap_or_else(|| panic!("no error JSON on stderr: {text}"));
    serde_json::from_str(line).unwrap()
}

/// Asserts a bad-input exit (2) whose error names `field`.
pub fn assert_refused(out: &Output, field: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stderr_error(out)["error"]["field"], field);
}

/// Tables of their own in the emulators (a fresh name prefix), and the environment that
/// points the binary's `--aws` at them. Needs LocalStack and DynamoDB Local, as the AWS tests
/// of the library do (`infra/test.sh` starts them).
pub struct AwsTables {
    pub prefix: String,
    pub names: revoke365::adapters::aws::resources::AwsNames,
    pub config: aws_config::SdkConfig,
}

impl AwsTables {
    pub async fn provision() -> AwsTables {
        for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"] {
            assert!(
                std::env::var(var).is_ok(),
                "{var} is not set: the --aws tests need LocalStack and DynamoDB Local; run them through infra/test.sh"
            );
        }
        let prefix = format!(
            "c{}-",
            (0..8)
                .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
                .collect::<String>()
        );
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let made = revoke365::adapters::aws::provision::provision(
            &config,
            &revoke365::adapters::aws::provision::Options {
                prefix: prefix.clone(),
                visibility_timeout_secs: Some(60),
                secret_json: None,
            },
        )
        .await
        .expect("provision the emulators");
        AwsTables {
            prefix,
            names: made.names,
            config,
        }
    }

    pub fn env(&self) -> [(&str, &str); 1] {
        [("REVOKE365_NAME_PREFIX", self.prefix.as_str())]
    }

    pub fn run_store(&self) -> revoke365::adapters::aws::dynamodb::DynamoRunStore {
        revoke365::adapters::aws::dynamodb::DynamoRunStore::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            &self.names,
        )
    }
}
