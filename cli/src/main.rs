//! `revoke365`: runs the whole job in one process — the same steps as the Lambda functions,
//! with an in-process queue and a file-backed audit store.

mod args;
mod check;
mod config;
mod progress;
mod sandbox;

use args::{Cli, Command, Format, RunArgs};
use clap::Parser;
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::file_store::FileRunStore;
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::config::{HttpSettings, Recheck};
use revoke365::engine::LocalEngine;
use revoke365::model::{InvalidRequest, RevocationRequest, RunStatus};
use revoke365::ports::RunStore;
use revoke365::steps::{intake_as, IntakeError};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit codes (product.md §5).
const EXIT_SUCCESS: u8 = 0;
const EXIT_NOT_SUCCESSFUL: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

/// An error the CLI reports as the §2 error JSON.
#[derive(Debug)]
pub struct CliError {
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    pub exit: u8,
}

impl CliError {
    pub fn config(field: &str, message: impl Into<String>) -> CliError {
        CliError {
            code: "invalid_configuration".into(),
            field: Some(field.to_string()),
            message: message.into(),
            exit: EXIT_BAD_INPUT,
        }
    }

    fn print(&self, format: Format) {
        match format {
            Format::Json => eprintln!(
                "{}",
                json!({"error": {"code": self.code, "message": self.message, "field": self.field}})
            ),
            Format::Table => eprintln!("error: {}", self.message),
        }
    }
}

impl From<InvalidRequest> for CliError {
    fn from(e: InvalidRequest) -> Self {
        CliError {
            code: "invalid_request".into(),
            field: Some(e.field.clone()),
            message: e.to_string(),
            exit: EXIT_BAD_INPUT,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REVOKE365_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Command::Run(args) => {
            let format = args.format;
            match runtime.block_on(run(args)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    e.print(format);
                    ExitCode::from(e.exit)
                }
            }
        }
        Command::Check(args) => {
            let format = args.format;
            match runtime.block_on(check::check(args)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    e.print(format);
                    ExitCode::from(e.exit)
                }
            }
        }
    }
}

async fn run(args: RunArgs) -> Result<u8, CliError> {
    // Validate the request before anything else: no config read, no simulator, no network.
    let body = args.request_body();
    RevocationRequest::from_json(&body)?;

    let (orgs, connector, audit_dir, sandbox) = match (&args.config, &args.sandbox) {
        (Some(path), _) => {
            let s = config::load(path)?;
            let core = http_core(args.concurrency, s.http)?;
            let connector = HttpConnector {
                core,
                urls: s.urls,
                m365_client_id: s.m365_client_id,
                m365_client_secret: s.m365_client_secret,
                connectwise: s.connectwise,
                recheck: Recheck::default(),
                shard_time: DEFAULT_SHARD_TIME,
            };
            (s.orgs, connector, s.audit_dir, None)
        }
        (None, Some(fixture)) => {
            let sb = sandbox::start(fixture).await?;
            let connector = HttpConnector {
                core: http_core(args.concurrency, config::HttpSection::default())?,
                urls: sb.urls.clone(),
                m365_client_id: sb.client_id.clone(),
                m365_client_secret: sb.client_secret.clone(),
                connectwise: sb.connectwise.clone(),
                recheck: Recheck::default(),
                shard_time: DEFAULT_SHARD_TIME,
            };
            (
                vec![sb.org.clone()],
                connector,
                PathBuf::from(config::DEFAULT_AUDIT_DIR),
                Some(sb),
            )
        }
        (None, None) => {
            return Err(CliError::config(
                "config",
                "pass --config FILE for a real tenant or --sandbox FIXTURE for the simulator",
            ))
        }
    };
    let audit_dir = args.audit_dir.clone().unwrap_or(audit_dir);
    let store = Arc::new(FileRunStore::open(&audit_dir, orgs).map_err(|e| {
        CliError::config(
            "audit_dir",
            format!("cannot use {}: {e}", audit_dir.display()),
        )
    })?);
    let bars = Arc::new(progress::Bars::default());
    bars.show_throttling(connector.core.clone());
    let engine = LocalEngine {
        store: store.clone(),
        queue: Arc::new(MemoryQueue::default()),
        connector: Arc::new(connector),
        progress: bars.clone(),
    };
    // The operator's own tool: its caller is the OS user, and it may name its config's
    // companies when one is unknown.
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let started = async {
        let accepted = intake_as(
            store.as_ref(),
            engine.queue.as_ref(),
            Some(&principal),
            &body,
            None,
        )
        .await?;
        engine.run_until_idle().await;
        let run = store.get_run(&accepted.run.run_id).await?;
        Ok::<_, IntakeError>(run.unwrap_or(accepted.run))
    };
    let run = match started.await {
        Ok(run) => run,
        Err(IntakeError::Invalid(e)) if e.field == "company_id" => {
            let known = store.company_ids().await.unwrap_or_default();
            let mut e = CliError::from(e);
            e.message = format!("{}; configured companies: {}", e.message, known.join(", "));
            return Err(e);
        }
        Err(IntakeError::Invalid(e)) => return Err(CliError::from(e)),
        Err(IntakeError::Refused(e)) => {
            return Err(CliError {
                code: "forbidden".into(),
                field: Some("company_id".into()),
                message: e.to_string(),
                exit: EXIT_BAD_INPUT,
            })
        }
        Err(other) => {
            return Err(CliError {
                code: "internal".into(),
                field: None,
                message: other.to_string(),
                exit: EXIT_NOT_SUCCESSFUL,
            })
        }
    };
    bars.finish();

    let audit_path = store.audit_path(&run.run_id);
    if let Some(sb) = &sandbox {
        eprintln!("sandbox: simulator at {}", sb.sim.base_url);
    }
    eprintln!("audit trail: {}", audit_path.display());
    if run.status == RunStatus::Failed {
        let failure = run.failure.unwrap_or_else(|| {
            revoke365::model::RunFailure::new(
                revoke365::model::FailureCode::Internal,
                None,
                "run failed",
            )
        });
        let exit = if failure.code.is_bad_input() {
            EXIT_BAD_INPUT
        } else {
            EXIT_NOT_SUCCESSFUL
        };
        let code = serde_json::to_value(failure.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        for problem in &failure.notification_errors {
            eprintln!("not notified: {problem}");
        }
        return Err(CliError {
            code,
            field: failure.field,
            message: failure.message,
            exit,
        });
    }
    let report = run.result.ok_or_else(|| CliError {
        code: "internal".into(),
        field: None,
        message: format!(
            "run {} ended as {} without a result",
            run.run_id,
            run.status.as_str()
        ),
        exit: EXIT_NOT_SUCCESSFUL,
    })?;
    eprintln!("result: {}", store.result_path(&run.run_id).display());
    if let Some(sb) = &sandbox {
        match sb.write_artifacts(&audit_dir, &report.run_id, report.ticket_id.as_deref()) {
            Ok(paths) => paths
                .iter()
                .for_each(|(what, p)| eprintln!("{what}: {}", p.display())),
            Err(e) => eprintln!("could not write sandbox artifacts: {e}"),
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Format::Table => print!("{}", revoke365::render::text_report(&report)),
    }
    Ok(if report.success {
        EXIT_SUCCESS
    } else {
        EXIT_NOT_SUCCESSFUL
    })
}

/// The OS user running the CLI (`USER`, or `USERNAME` on Windows).
fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The HTTP core with the ceilings asked for: `--concurrency` caps both services, the
/// config's `[http]` may cap each; the limits below are learnt from the tenant.
fn http_core(
    concurrency: Option<usize>,
    section: config::HttpSection,
) -> Result<Arc<HttpCore>, CliError> {
    let mut settings = HttpSettings::default();
    for (field, value) in [
        ("concurrency", concurrency),
        ("http.concurrency", section.concurrency),
        ("http.exchange_concurrency", section.exchange_concurrency),
        ("http.graph_concurrency", section.graph_concurrency),
    ] {
        if value == Some(0) {
            return Err(CliError::config(field, "must be at least 1"));
        }
    }
    if let Some(n) = concurrency.or(section.concurrency) {
        settings = settings.with_ceiling(n);
    }
    for (budget, ceiling) in [
        (&mut settings.exchange, section.exchange_concurrency),
        (&mut settings.graph, section.graph_concurrency),
    ] {
        if let Some(n) = ceiling {
            budget.ceiling = budget.ceiling.min(n);
            budget.initial = budget.initial.min(budget.ceiling);
        }
    }
    HttpCore::new(settings).map_err(|e| CliError::config("http", e.to_string()))
}
