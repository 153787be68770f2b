//! `revoke365 runs` and `revoke365 show`: run history and a run's stored result, from the
//! embedded store (the data directory) or, with `--aws`, the deployment's tables.

use crate::args::{Format, RunsArgs, ShowArgs, StoreArgs};
use crate::{aws_tables, config, CliError, EXIT_BAD_INPUT};
use revoke365::adapters::sqlite_store::{SqliteRunStore, DB_FILE};
use revoke365::engine::partial_report;
use revoke365::model::{
    parse_page_size, parse_since, parse_status, validate_email, Run, RunFilter, RunId, RunKind,
    RunPage, RunStatus, RunSummary,
};
use revoke365::model::{Report, RestoreReport};
use revoke365::ports::RunStore;
use revoke365::StoreError;
use serde_json::{json, Value};
use std::path::PathBuf;

/// The store a history command reads.
enum HistoryStore {
    Local {
        store: Box<SqliteRunStore>,
        dir: PathBuf,
    },
    Aws(aws_tables::AwsTables),
}

impl HistoryStore {
    async fn open(args: &StoreArgs) -> Result<HistoryStore, CliError> {
        if args.aws {
            return Ok(HistoryStore::Aws(aws_tables::connect().await?));
        }
        let (orgs, config_dir) = match &args.config {
            Some(path) => {
                let basics = config::basics(path)?;
                (basics.orgs, Some(basics.data_dir))
            }
            None => (Vec::new(), None),
        };
        let dir = args
            .data_dir
            .clone()
            .or(config_dir)
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
        // Reading history must not make a data directory where there was none.
        if !dir.is_dir() {
            return Err(CliError::config(
                "data_dir",
                format!(
                    "{} does not exist (no {DB_FILE} to read); pass the run's --data-dir or --config, or --aws",
                    dir.display()
                ),
            ));
        }
        let store = SqliteRunStore::open(&dir, orgs).map_err(|e| {
            CliError::config("data_dir", format!("cannot use {}: {e}", dir.display()))
        })?;
        Ok(HistoryStore::Local {
            store: Box::new(store),
            dir,
        })
    }

    fn runs(&self) -> &dyn RunStore {
        match self {
            HistoryStore::Local { store, .. } => store.as_ref(),
            HistoryStore::Aws(tables) => &tables.runs,
        }
    }

    fn name(&self) -> String {
        match self {
            HistoryStore::Local { dir, .. } => dir.join(DB_FILE).display().to_string(),
            HistoryStore::Aws(_) => "the AWS runs table".into(),
        }
    }
}

/// A store error as the CLI reports it: a bad query is bad input naming its field.
fn store_failure(what: &str, e: StoreError) -> CliError {
    match e {
        StoreError::BadQuery { field, reason } => CliError {
            code: "invalid_request".into(),
            field: Some(field.to_string()),
            message: format!("{field} {reason}"),
            exit: EXIT_BAD_INPUT,
        },
        other => CliError {
            code: "store_unavailable".into(),
            field: None,
            message: format!("{what}: {other}"),
            exit: EXIT_BAD_INPUT,
        },
    }
}

/// A flag that was given a value (an empty one counts as not given).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn filter_of(args: &RunsArgs) -> Result<RunFilter, CliError> {
    Ok(RunFilter {
        user: given(&args.user)
            .map(|u| validate_email("user", u))
            .transpose()?,
        company_id: given(&args.company_id).map(str::to_string),
        since: given(&args.since).map(parse_since).transpose()?,
        status: given(&args.status).map(parse_status).transpose()?,
    })
}

pub async fn runs(args: &RunsArgs) -> Result<u8, CliError> {
    let filter = filter_of(args)?;
    let limit = parse_page_size(&args.limit)?;
    let store = HistoryStore::open(&args.store).await?;
    let page = store
        .runs()
        .list_runs(&filter, limit, args.next.as_deref())
        .await
        .map_err(|e| store_failure(&format!("cannot list runs in {}", store.name()), e))?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&page).expect("a page serializes")
        ),
        Format::Table => print!("{}", runs_table(&page)),
    }
    if let Some(next) = &page.next {
        eprintln!("more runs: add --next {next}");
    }
    Ok(0)
}

/// One line a run: id, kind, time, user, company, status, counts (done/failed/skipped), ticket.
fn runs_table(page: &RunPage) -> String {
    let mut rows = vec![[
        "RUN ID",
        "KIND",
        "CREATED (UTC)",
        "USER",
        "COMPANY",
        "STATUS",
        "DONE/FAILED/SKIPPED",
        "TICKET",
    ]
    .map(String::from)];
    rows.extend(page.runs.iter().map(table_row));
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if page.runs.is_empty() {
        out.push_str("(no runs)\n");
    }
    out
}

fn table_row(run: &RunSummary) -> [String; 8] {
    let mut status = run.status.as_str().to_string();
    if run.needs_resume {
        // Still "removing" with no process working on it: its process is gone.
        status = match run.status {
            RunStatus::Interrupted => "interrupted — resume it".into(),
            _ => "stalled — resume it".into(),
        };
    }
    if run.dry_run {
        status.push_str(" (dry run)");
    }
    [
        run.run_id.to_string(),
        run.kind.as_str().to_string(),
        run.created_at.format("%Y-%m-%d %H:%M").to_string(),
        run.user_email.clone(),
        run.company_id.clone(),
        status,
        format!(
            "{}/{}/{}",
            run.counts.done, run.counts.failed, run.counts.skipped
        ),
        run.ticket_id.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// What a run's record holds as its outcome: the restore result of a restore, the result of
/// a revocation — a partial one, built from its items, while it has stopped before its end —
/// or, for a run that failed or has not got that far, its status and failure.
enum Stored {
    Report(Box<Report>),
    Restore(Box<RestoreReport>),
    Bare(Value),
}

async fn stored_result(store: &dyn RunStore, run: &Run) -> Result<Stored, StoreError> {
    Ok(match (run.kind(), &run.restore_result, &run.result) {
        (RunKind::Restore, Some(restored), _) => Stored::Restore(Box::new(restored.clone())),
        (RunKind::Revoke, _, Some(report)) => Stored::Report(Box::new(report.clone())),
        (RunKind::Revoke, _, None) if !run.status.is_terminal() => {
            Stored::Report(Box::new(partial_report(store, run).await?))
        }
        _ => Stored::Bare(json!({
            "run_id": run.run_id, "kind": run.kind().as_str(), "status": run.status,
            "failure": run.failure,
        })),
    })
}

/// A run without a result, for people: its status and why it failed.
fn bare_text(run: &Run) -> String {
    let mut out = format!(
        "{} run {}: {}\n",
        run.kind().as_str(),
        run.run_id,
        run.status.as_str()
    );
    if let Some(f) = &run.failure {
        let field = f
            .field
            .as_deref()
            .map(|field| format!(" (field {field})"))
            .unwrap_or_default();
        out.push_str(&format!("FAILED — {}{field}\n", f.message));
        for problem in &f.notification_errors {
            out.push_str(&format!("not notified: {problem}\n"));
        }
    }
    out
}

pub async fn show(args: &ShowArgs) -> Result<u8, CliError> {
    let store = HistoryStore::open(&args.store).await?;
    let run_id = RunId::parse(&args.run_id)?;
    let run = store
        .runs()
        .get_run(&run_id)
        .await
        .map_err(|e| store_failure(&format!("cannot read run {run_id}"), e))?
        .ok_or_else(|| CliError {
            code: "not_found".into(),
            field: Some("run_id".into()),
            message: format!("no run {run_id} in {}", store.name()),
            exit: EXIT_BAD_INPUT,
        })?;
    if let HistoryStore::Local { store, .. } = &store {
        store
            .settle_if_stopped(&run)
            .map_err(|e| store_failure(&format!("cannot read run {run_id}"), e))?;
    }
    let result = stored_result(store.runs(), &run)
        .await
        .map_err(|e| store_failure(&format!("cannot read the result of {run_id}"), e))?;
    if !run.status.is_terminal() {
        let held = matches!(&store, HistoryStore::Local { store, .. } if store.is_held(&run_id));
        if !held {
            eprintln!(
                "run {run_id} stopped before its end ({}); nothing more happens until it is resumed: revoke365 resume {run_id}",
                run.status.as_str()
            );
        }
    }
    let audit = match args.audit {
        true => Some(
            store
                .runs()
                .audit_records(&run_id)
                .await
                .map_err(|e| store_failure(&format!("cannot read the audit of {run_id}"), e))?,
        ),
        false => None,
    };
    match args.format {
        Format::Json => {
            let result = match &result {
                Stored::Report(r) => json!(r),
                Stored::Restore(r) => json!(r),
                Stored::Bare(v) => v.clone(),
            };
            let out = match &audit {
                Some(records) => json!({"result": result, "audit": records}),
                None => result,
            };
            println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        }
        Format::Table => {
            match &result {
                Stored::Report(report) => print!("{}", revoke365::render::text_report(report)),
                Stored::Restore(report) => print!("{}", revoke365::render::restore_text(report)),
                Stored::Bare(_) => print!("{}", bare_text(&run)),
            }
            if let Some(records) = &audit {
                println!("\naudit records: {}", records.len());
                for r in records {
                    println!("{}", serde_json::to_string(r).expect("JSON"));
                }
            }
        }
    }
    Ok(0)
}
