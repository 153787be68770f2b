//! `revoke365`: runs the whole job in one process — the same steps as the Lambda functions,
//! with an in-process queue and the run state on disk (`<data_dir>/revoke365.db`), so that an
//! interrupted or killed run can be resumed.

mod args;
mod audit;
mod aws_tables;
mod certificate;
mod check;
mod config;
mod history;
mod index;
mod onboard;
mod org;
mod org_file;
mod progress;
mod reachable;
mod restore;
mod review;
mod sandbox;
mod watch;

use args::{Cli, Command, Format, ResumeArgs, RunArgs};
use clap::Parser;
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::{HttpSettings, Recheck};
use revoke365::engine::{partial_report, LocalEngine, ResumeError, StopSignal, STOP_GRACE};
use revoke365::model::{InvalidRequest, OrgSettings, RevocationRequest, Run, RunId, RunStatus};
use revoke365::steps::IntakeError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit codes: 0 success, 1 finished without success, 2 bad input or configuration,
/// 130 interrupted (resumable).
pub(crate) const EXIT_SUCCESS: u8 = 0;
pub(crate) const EXIT_NOT_SUCCESSFUL: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

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
    die_quietly_on_closed_pipes();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(log_colours())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REVOKE365_LOG")
                // The SDK's credential chain warns with whole debug structs for each provider
                // it tries; `--aws` says in one line what is missing instead.
                .unwrap_or_else(|_| "warn,aws_config=error".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (format, result) = match cli.command {
        Command::Run(args) => (args.format, runtime.block_on(run(args))),
        Command::Resume(args) => (args.format, runtime.block_on(resume(args))),
        Command::Restore(args) => (args.format, runtime.block_on(restore::restore(args))),
        Command::Check(args) => (args.format, runtime.block_on(check::check(args))),
        Command::Audit(args::AuditArgs {
            command: args::AuditCommand::Verify(args),
        }) => (args.format, runtime.block_on(audit::verify(&args))),
        Command::Sweep(args) => (args.format, runtime.block_on(index::sweep(args))),
        Command::Access(args) => (args.format, runtime.block_on(index::access(args))),
        Command::Review(args) => (args.format, runtime.block_on(review::review(args))),
        Command::Runs(args) => (args.format, runtime.block_on(history::runs(&args))),
        Command::Show(args) => (args.format, runtime.block_on(history::show(&args))),
        Command::Watch(args) => (args.format, runtime.block_on(watch::watch(args))),
        Command::Cert(args::CertArgs {
            command: args::CertCommand::New(args),
        }) => (args.format, runtime.block_on(certificate::cert_new(args))),
        Command::Tenant(args::OnboardingArgs {
            command: args::TenantCommand::Onboard(args),
        }) => (args.format, runtime.block_on(onboard::onboard(args))),
        Command::Org(args::OrgArgs { command }) => {
            let format = match &command {
                args::OrgCommand::Put(a) => a.format,
                args::OrgCommand::Get(a) => a.source.format,
                args::OrgCommand::List(a) => a.format,
            };
            (format, runtime.block_on(org::org(command)))
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print(format);
            ExitCode::from(e.exit)
        }
    }
}

/// `revoke365 runs | head -1`: once the reader is gone, the process ends as Unix tools do
/// (SIGPIPE) instead of panicking on the next print. Rust ignores SIGPIPE by default; sockets
/// are unaffected (they send with MSG_NOSIGNAL), and a run cut off this way resumes like a
/// killed one.
fn die_quietly_on_closed_pipes() {
    // SAFETY: setting a signal's disposition to the default, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Log lines are coloured only for a person at a terminal: files and cron mail get plain
/// text, and `NO_COLOR` (https://no-color.org) turns colour off everywhere.
fn log_colours() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Where a run was started from, remembered in the store so that `resume` finds it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Origin {
    Config { path: PathBuf },
    Sandbox { fixture: PathBuf, state: PathBuf },
}

impl Origin {
    fn flag(&self) -> String {
        match self {
            Origin::Config { path } => format!("--config {}", path.display()),
            Origin::Sandbox { fixture, .. } => format!("--sandbox {}", fixture.display()),
        }
    }
}

/// Where a new run (or sweep) goes: the config's tenant, or the fixture's sandbox tenant kept
/// in `<data_dir>/sandbox/`, as the last command against it left it.
pub(crate) fn new_origin(
    config: &Option<PathBuf>,
    sandbox: &Option<PathBuf>,
    data_dir: &Option<PathBuf>,
) -> Result<Origin, CliError> {
    match (config, sandbox) {
        (Some(path), _) => Ok(Origin::Config {
            path: absolute(path),
        }),
        (None, Some(fixture)) => {
            let dir = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
            Ok(Origin::Sandbox {
                fixture: absolute(fixture),
                state: sandbox::kept_state(&dir, fixture)?,
            })
        }
        (None, None) => Err(CliError::config(
            "config",
            "pass --config FILE for a real tenant or --sandbox FIXTURE for the simulator",
        )),
    }
}

/// What a run talks to and where it keeps its state.
pub(crate) struct Target {
    orgs: Vec<OrgSettings>,
    connector: Arc<HttpConnector>,
    data_dir: PathBuf,
    sandbox: Option<sandbox::Sandbox>,
    origin: Origin,
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Builds the target from `--config` or `--sandbox`. A sandbox goes on from, and keeps, its
/// tenant's state in the origin's `state` file.
pub(crate) async fn target(
    origin: Origin,
    data_dir: Option<PathBuf>,
    concurrency: Option<usize>,
) -> Result<Target, CliError> {
    match origin {
        Origin::Config { path } => {
            let s = config::load(&path)?;
            reachable::check(&s.urls, &s.psa).await?;
            let core = http_core(concurrency, s.http)?;
            Ok(Target {
                orgs: s.orgs,
                connector: Arc::new(HttpConnector {
                    core,
                    urls: s.urls,
                    m365_client_id: s.m365_client_id,
                    m365_credential: s.m365_credential,
                    psa: s.psa,
                    recheck: Recheck::default(),
                    shard_time: DEFAULT_SHARD_TIME,
                    webhook_secret: s.webhook_secret,
                }),
                data_dir: data_dir.unwrap_or(s.data_dir),
                sandbox: None,
                origin: Origin::Config { path },
            })
        }
        Origin::Sandbox { fixture, state } => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
            let sb = sandbox::start_kept(&fixture, &state).await?;
            eprintln!("sandbox: simulator at {}", sb.sim.base_url);
            let connector = sb.connector(http_core(concurrency, config::HttpSection::default())?);
            Ok(Target {
                orgs: vec![sb.org.clone()],
                connector: Arc::new(connector),
                data_dir,
                sandbox: Some(sb),
                origin: Origin::Sandbox { fixture, state },
            })
        }
    }
}

pub(crate) fn open_store(
    data_dir: &Path,
    orgs: Vec<OrgSettings>,
) -> Result<SqliteRunStore, CliError> {
    SqliteRunStore::open(data_dir, orgs).map_err(|e| {
        CliError::config(
            "data_dir",
            format!("cannot use {}: {e}", data_dir.display()),
        )
    })
}

/// The store of `target`'s data directory. A sandbox keeps its permission index apart per
/// fixture (by the name of the file its tenant is kept in), as it keeps its tenant: a sweep of
/// one fixture is never another's snapshot, whatever company id they share.
pub(crate) fn target_store(target: &Target) -> Result<SqliteRunStore, CliError> {
    let store = open_store(&target.data_dir, target.orgs.clone())?;
    Ok(match &target.origin {
        Origin::Sandbox { state, .. } => match state.file_stem() {
            Some(stem) => store.with_index_scope(&stem.to_string_lossy()),
            None => store,
        },
        _ => store,
    })
}

/// The engine, stopped by the first SIGINT or SIGTERM; a second one exits at once.
pub(crate) fn engine(
    store: Arc<SqliteRunStore>,
    target: &Target,
    progress: Arc<progress::Progress>,
) -> LocalEngine {
    let stop = StopSignal::default();
    listen_for_signals(stop.clone());
    LocalEngine {
        store,
        queue: Arc::new(MemoryQueue::default()),
        connector: target.connector.clone(),
        progress,
        stop,
    }
}

fn listen_for_signals(stop: StopSignal) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!(
            "{name}: stopping — no new removals; calls in flight get up to {}s to finish (press Ctrl-C again to quit at once)",
            STOP_GRACE.as_secs()
        );
        stop.stop(&format!("interrupted by {name}"));
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("second signal: quitting now; `revoke365 resume RUN_ID` re-checks the calls that were in flight");
        std::process::exit(EXIT_INTERRUPTED as i32);
    });
}

pub(crate) fn internal(message: String) -> CliError {
    CliError {
        code: "internal".into(),
        field: None,
        message,
        exit: EXIT_NOT_SUCCESSFUL,
    }
}

async fn run(args: RunArgs) -> Result<u8, CliError> {
    // Validate the request before anything else: no config read, no simulator, no network.
    let body = args.request_body();
    let request = RevocationRequest::from_json(&body)?;

    let origin = new_origin(&args.config, &args.sandbox, &args.data_dir)?;
    let target = target(origin, args.data_dir.clone(), args.concurrency).await?;
    let store = Arc::new(target_store(&target)?);
    // A dry run changes nothing: it neither waits for an interrupted run nor blocks one.
    if !args.new && !request.dry_run {
        let waiting = store
            .resumable_runs(&request.company_id, &request.user_email)
            .map_err(|e| internal(e.to_string()))?;
        if let Some(run) = waiting.iter().rev().find(|r| !r.request.dry_run) {
            return Err(CliError {
                code: "interrupted_run_exists".into(),
                field: Some("run_id".into()),
                message: format!(
                    "run {} for {} at {} stopped before its end ({}); continue it with `revoke365 resume {}{}`, or pass --new to start another run",
                    run.run_id,
                    run.request.user_email,
                    run.request.company_id,
                    stopped_while(run),
                    run.run_id,
                    data_dir_flag(&args.data_dir),
                ),
                exit: EXIT_BAD_INPUT,
            });
        }
    }
    let progress = Arc::new(progress::Progress::default());
    let engine = engine(store.clone(), &target, progress.clone());
    let origin_json = serde_json::to_string(&target.origin).expect("origin serializes");
    let mut watch = None;
    // The operator's own tool: its caller is the OS user, and it may name its config's
    // companies when one is unknown.
    let principal = revoke365::authorize::principal::os_user(&os_user());
    // The operator is here to be told: a user or ticket the tenant or PSA does not know is
    // their error on stderr, before any run, ticket, note or email.
    let checked = revoke365::steps::check_before_intake(
        store.as_ref(),
        target.connector.as_ref(),
        Some(&principal),
        &body,
        None,
    )
    .await;
    let started = match checked {
        Ok(()) => {
            engine
                .run_watched(Some(&principal), &body, Some(&origin_json), |id| {
                    watch = Some(progress.watch(
                        store.clone(),
                        id.clone(),
                        target.connector.core.clone(),
                    ));
                })
                .await
        }
        Err(refused) => Err(refused),
    };
    let run = match started {
        Ok(run) => run,
        Err(IntakeError::Invalid(e)) if e.field == "company_id" => {
            let known = revoke365::ports::OrgStore::company_ids(store.as_ref())
                .await
                .unwrap_or_default();
            let mut e = CliError::from(e);
            e.message = format!("{}; configured companies: {}", e.message, known.join(", "));
            return Err(e);
        }
        Err(other) => return Err(intake_error(other)),
    };
    if let Some(w) = watch {
        w.finish();
    }
    finish(&store, &target, run, &args.data_dir, args.format).await
}

/// How the CLI reports a request intake did not accept (nothing was created).
fn intake_error(e: IntakeError) -> CliError {
    let refused = |code: &str, field: &str, message: String| CliError {
        code: code.into(),
        field: Some(field.into()),
        message,
        exit: EXIT_BAD_INPUT,
    };
    match e {
        IntakeError::Invalid(e) => CliError::from(e),
        IntakeError::Refused(e) => refused("forbidden", "company_id", e.to_string()),
        IntakeError::Conflict(e) => refused("conflict", &e.field.clone(), e.to_string()),
        IntakeError::RunNotFound(_) => refused("run_not_found", "run_id", e.to_string()),
        IntakeError::Rejected(failure) => CliError {
            code: failure.code.as_str().into(),
            field: failure.field,
            message: failure.message,
            exit: EXIT_BAD_INPUT,
        },
        other => internal(other.to_string()),
    }
}

async fn resume(args: ResumeArgs) -> Result<u8, CliError> {
    let run_id = RunId::parse(&args.run_id)?;
    let (data_dir, origin) =
        stored_origin(&run_id, &args.data_dir, &args.config, &args.sandbox).await?;
    let target = target(origin, Some(data_dir.clone()), args.concurrency).await?;
    let store = Arc::new(target_store(&target)?);
    let progress = Arc::new(progress::Progress::default());
    let engine = engine(store.clone(), &target, progress.clone());
    let watch = progress.watch(store.clone(), run_id.clone(), target.connector.core.clone());
    let run = engine.resume(&run_id).await.map_err(|e| match e {
        ResumeError::Store(e) => internal(e.to_string()),
        other => CliError {
            code: match other {
                ResumeError::NotFound(_) => "run_not_found",
                ResumeError::Finished(..) => "run_finished",
                _ => "run_busy",
            }
            .into(),
            field: Some("run_id".into()),
            message: other.to_string(),
            exit: EXIT_BAD_INPUT,
        },
    })?;
    watch.finish();
    finish(&store, &target, run, &Some(data_dir), args.format).await
}

/// The data directory of a stored run and where it was started from: `--config` or
/// `--sandbox` when given (a sandbox goes on from the tenant state the run left), else what
/// the run remembered. A run the data directory does not hold is an error.
async fn stored_origin(
    run_id: &RunId,
    data_dir: &Option<PathBuf>,
    config: &Option<PathBuf>,
    sandbox: &Option<PathBuf>,
) -> Result<(PathBuf, Origin), CliError> {
    let data_dir = match (data_dir, config) {
        (Some(d), _) => d.clone(),
        (None, Some(path)) => config::load(path)?.data_dir,
        (None, None) => PathBuf::from(config::DEFAULT_DATA_DIR),
    };
    let (known, origin) = {
        let store = open_store(&data_dir, Vec::new())?;
        let known = revoke365::ports::RunRecords::get_run(&store, run_id)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let origin: Option<Origin> = store
            .origin(run_id)
            .map_err(|e| internal(e.to_string()))?
            .and_then(|o| serde_json::from_str(&o).ok());
        (known, origin)
    };
    if known.is_none() {
        return Err(CliError {
            code: "run_not_found".into(),
            field: Some("run_id".into()),
            message: format!("no run {run_id} in {}", data_dir.display()),
            exit: EXIT_BAD_INPUT,
        });
    }
    let origin = match (config, sandbox, origin) {
        (Some(path), _, _) => Origin::Config {
            path: absolute(path),
        },
        (None, Some(fixture), Some(Origin::Sandbox { state, .. })) => Origin::Sandbox {
            fixture: absolute(fixture),
            state,
        },
        (None, Some(fixture), _) => Origin::Sandbox {
            fixture: absolute(fixture),
            state: sandbox::kept_state(&data_dir, fixture)?,
        },
        (None, None, Some(origin)) => origin,
        (None, None, None) => {
            return Err(CliError::config(
                "config",
                format!("run {run_id} does not say where it was started from: pass --config FILE or --sandbox FIXTURE"),
            ))
        }
    };
    Ok((data_dir, origin))
}

fn data_dir_flag(data_dir: &Option<PathBuf>) -> String {
    data_dir
        .as_ref()
        .map(|d| format!(" --data-dir {}", d.display()))
        .unwrap_or_default()
}

fn stopped_while(run: &Run) -> String {
    match &run.interruption {
        Some(i) => format!("{} while {}", i.reason, i.during.as_str()),
        None => format!("its process ended while {}", run.status.as_str()),
    }
}

/// Prints how the run ended: the result on stdout (a partial one, `interrupted`, when it was
/// stopped), where its files are on stderr; returns the exit code.
async fn finish(
    store: &SqliteRunStore,
    target: &Target,
    run: Run,
    data_dir: &Option<PathBuf>,
    format: Format,
) -> Result<u8, CliError> {
    let audit_path = store.audit_path(&run.run_id);
    // A run refused before its first record has no trail: no path to a file that is not there.
    if audit_path.exists() {
        eprintln!("audit trail: {}", audit_path.display());
    }
    if run.status == RunStatus::Failed {
        // A failure notice (where the run's trigger is told of it) is this run's too.
        sandbox_artifacts(target, &run.run_id.0, run.request.ticket_id.as_deref());
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
    if !run.status.is_terminal() {
        // A revocation's partial result says what was removed so far; a restore's record
        // is its audit trail until it is resumed.
        let until = match run.restore {
            None => {
                let report = partial_report(store, &run)
                    .await
                    .map_err(|e| internal(e.to_string()))?;
                print_report(&report, format);
                "nothing more will be removed until it is resumed"
            }
            Some(_) => "nothing more will be restored until it is resumed",
        };
        eprintln!(
            "run {} {}; {until}: revoke365 resume {} {}{}",
            run.run_id,
            stopped_while(&run),
            run.run_id,
            target.origin.flag(),
            data_dir_flag(data_dir),
        );
        return Ok(EXIT_INTERRUPTED);
    }
    if let Some(report) = run.restore_result {
        eprintln!("result: {}", store.result_path(&run.run_id).display());
        sandbox_artifacts(target, &report.run_id, report.ticket_id.as_deref());
        match format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            ),
            Format::Table => print!("{}", revoke365::render::restore_text(&report)),
        }
        return Ok(if report.success {
            EXIT_SUCCESS
        } else {
            EXIT_NOT_SUCCESSFUL
        });
    }
    let report = run.result.ok_or_else(|| {
        internal(format!(
            "run {} ended as {} without a result",
            run.run_id,
            run.status.as_str()
        ))
    })?;
    eprintln!("result: {}", store.result_path(&run.run_id).display());
    sandbox_artifacts(target, &report.run_id, report.ticket_id.as_deref());
    print_report(&report, format);
    Ok(if report.success {
        EXIT_SUCCESS
    } else {
        EXIT_NOT_SUCCESSFUL
    })
}

/// The settings of `company_id` among the configured companies.
pub(crate) fn company<'a>(
    orgs: &'a [OrgSettings],
    company_id: &str,
) -> Result<&'a OrgSettings, CliError> {
    orgs.iter()
        .find(|o| o.company_id == company_id)
        .ok_or_else(|| {
            let known: Vec<&str> = orgs.iter().map(|o| o.company_id.as_str()).collect();
            InvalidRequest::new(
                "company_id",
                format!(
                    "unknown company '{company_id}'; configured companies: {}",
                    known.join(", ")
                ),
            )
            .into()
        })
}

/// In the sandbox, the ticket note and the email a run sent, as files beside its result.
pub(crate) fn sandbox_artifacts(target: &Target, run_id: &str, ticket_id: Option<&str>) {
    sandbox_artifacts_marked(target, run_id, run_id, ticket_id)
}

/// In the sandbox, the ticket note and the email carrying `marker`, as `<name>.*` files.
pub(crate) fn sandbox_artifacts_marked(
    target: &Target,
    marker: &str,
    name: &str,
    ticket_id: Option<&str>,
) {
    if let Some(sb) = &target.sandbox {
        match sb.write_artifacts(&target.data_dir, marker, name, ticket_id) {
            Ok(paths) => paths
                .iter()
                .for_each(|(what, p)| eprintln!("{what}: {}", p.display())),
            Err(e) => eprintln!("could not write sandbox artifacts: {e}"),
        }
    }
}

/// The OS account running the CLI, from the account database: `$USER` may be unset (cron,
/// `env -i`, containers) or set to anyone, and this name is what `allowed_principals` and the
/// audit trust. An account the database does not know is named by its uid.
pub(crate) fn os_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into `entry` and `buf`, which
    // outlive the call, and `found` points into them when set.
    unsafe {
        let uid = libc::getuid();
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() && !entry.pw_name.is_null() {
            let name = std::ffi::CStr::from_ptr(entry.pw_name).to_string_lossy();
            if !name.is_empty() {
                return name.into_owned();
            }
        }
        uid.to_string()
    }
}

/// Writes a file only its owner may read (0600), like the audit trail beside it: the note and
/// the email name people and mailboxes.
pub(crate) fn write_owner_only(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The mode above applies to a new file only; one written before keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

fn print_report(report: &revoke365::model::Report, format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        ),
        Format::Table => print!("{}", revoke365::render::text_report(report)),
    }
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
