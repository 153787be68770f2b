//! What the CLI's test modules share beyond `revoke365-testkit`: running the real
//! `revoke365` binary, and (for `--aws`) tables of their own in DynamoDB Local.

use std::path::{Path, PathBuf};
use std::process::Output;

pub use revoke365_testkit::cli::{
    assert_refused, ok_json, printed_files, stderr_error, stdout_as, stdout_json,
};
pub use revoke365_testkit::{RunResult, JOHN};

const BIN: &str = env!("CARGO_BIN_EXE_revoke365");

/// A fixture under `events/`.
pub fn events(name: &str) -> PathBuf {
    revoke365_testkit::events_dir().join(name)
}

/// Runs the binary in `cwd` with `env` on top of the test's environment, less the service
/// URL and secret variables a developer's shell may hold.
/// The environment a config-file run reads its secrets from: ConnectWise's keys (its private
/// key `cw_key`) and, when `m365_secret` is given, the app's client secret.
pub fn secrets_env(m365_secret: Option<&str>, cw_key: &str) -> Vec<(String, String)> {
    let psa = [
        ("REVOKE365_CW_COMPANY", "msp"),
        ("REVOKE365_CW_PUBLIC_KEY", "pub"),
        ("REVOKE365_CW_PRIVATE_KEY", cw_key),
        (
            "REVOKE365_CW_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ];
    m365_secret
        .map(|s| ("REVOKE365_M365_CLIENT_SECRET", s))
        .into_iter()
        .chain(psa)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn revoke365(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    revoke365_testkit::cli::run(
        BIN,
        args,
        env,
        &[
            "REVOKE365_LOGIN_URL",
            "REVOKE365_GRAPH_URL",
            "REVOKE365_EXO_URL",
            "REVOKE365_PSA_URL",
            "REVOKE365_M365_CLIENT_SECRET",
            "REVOKE365_M365_CERTIFICATE",
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
        ],
        cwd,
    )
}

/// Runs the binary with `env` as its whole environment (and `PATH`), as cron or `env -i`
/// starts it: no `USER`, no `HOME` and no AWS settings unless given.
pub fn revoke365_env_only(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    revoke365_testkit::cli::run_env_only(BIN, args, env, cwd)
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
        revoke365_testkit::aws::require_emulators(&[
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SQS",
        ]);
        let prefix = revoke365_testkit::aws::fresh_prefix('c');
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
