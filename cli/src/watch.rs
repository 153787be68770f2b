//! `revoke365 watch --company-id C --once | --every 5m`: polls the company's Microsoft Defender
//! XDR alerts and Entra ID Protection risky users (the same poller as the scheduled
//! `poll_alerts` job) and runs one contain run per compromised user to its end. The watermarks
//! and which alert started which run live in the data directory, so an alert is acted on once
//! however often it is polled. The company's caps hold here as on AWS: users beyond them are
//! listed as `awaiting_approval`, and an approval note and email name them.

use crate::args::{Format, WatchArgs};
use crate::{engine, internal, new_origin, os_user, progress, target};
use crate::{CliError, EXIT_NOT_SUCCESSFUL, EXIT_SUCCESS};
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::ports::{Connector, Queue, RunRecords, RunStore};
use revoke365::steps::{poll_alerts, PollReport};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The shortest `--every`: Graph's alert APIs are not meant to be polled faster.
const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// `--every`: a number with a unit, `30s`, `5m`, `1h`.
pub fn parse_interval(text: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::config(
            "every",
            format!("'{text}' is not an interval; expected a number with s, m or h (e.g. 5m), at least 30s"),
        )
    };
    let text = text.trim();
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    let interval = Duration::from_secs(secs);
    if interval < MIN_INTERVAL {
        return Err(bad());
    }
    Ok(interval)
}

pub async fn watch(args: WatchArgs) -> Result<u8, CliError> {
    // Validate the flags before anything else: no config read, no simulator, no network.
    let interval = args.every.as_deref().map(parse_interval).transpose()?;
    if interval.is_none() && !args.once {
        return Err(CliError::config(
            "once",
            "pass --once, or --every INTERVAL (e.g. 5m)",
        ));
    }
    let origin = new_origin(&args.config, &args.sandbox, &args.data_dir)?;
    let target = target(origin, args.data_dir.clone(), args.concurrency).await?;
    let Some(org) = target
        .orgs
        .iter()
        .find(|o| o.company_id == args.company_id)
        .cloned()
    else {
        let known: Vec<&str> = target.orgs.iter().map(|o| o.company_id.as_str()).collect();
        return Err(CliError::config(
            "company_id",
            format!(
                "unknown company '{}'; configured: {}",
                args.company_id,
                known.join(", ")
            ),
        ));
    };
    let store = Arc::new(crate::target_store(&target)?);
    let engine = engine(
        store.clone(),
        &target,
        Arc::new(progress::Progress::default()),
    );
    let principal = revoke365::authorize::principal::os_user(&os_user());
    let mut all_succeeded = true;
    loop {
        let connections = target.connector.connect(&org).await.map_err(|e| {
            internal(format!(
                "cannot connect to company '{}': {e}",
                org.company_id
            ))
        })?;
        // The runs wait here and go one at a time, as `revoke365 run` does: two runs at
        // once on one tenant would each read mailboxes the other is changing.
        let waiting = MemoryQueue::default();
        let report = poll_alerts(
            store.as_ref(),
            store.as_ref(),
            &waiting,
            &connections,
            &org,
            Some(&principal),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| {
            internal(format!(
                "alert poll of company '{}' failed: {e}",
                org.company_id
            ))
        })?;
        let mut finished = true;
        for message in waiting.drain().await {
            if engine.queue.send(message).await.is_err() || !engine.run_until_idle().await {
                finished = false;
                break;
            }
        }
        if !finished {
            for run_id in report
                .runs
                .iter()
                .filter(|r| r.created)
                .filter_map(|r| r.run_id.as_ref())
            {
                if let Ok(Some(run)) = store.get_run(run_id).await {
                    if !run.status.is_terminal() {
                        let _ = store.interrupt(run_id, "interrupted while watching alerts");
                        eprintln!(
                            "run {run_id} interrupted: `revoke365 resume {run_id}` goes on with it"
                        );
                    }
                }
            }
            return Ok(crate::EXIT_INTERRUPTED);
        }
        let (summary, succeeded) = summarize(store.as_ref(), &report).await;
        for run_id in report
            .runs
            .iter()
            .filter(|r| r.created)
            .filter_map(|r| r.run_id.as_ref())
        {
            if let Ok(Some(run)) = store.get_run(run_id).await {
                let ticket = run.result.as_ref().and_then(|r| r.ticket_id.clone());
                crate::sandbox_artifacts(&target, &run_id.0, ticket.as_deref());
            }
        }
        for notice in report.approval_notices.iter().filter(|n| !n.sent_before) {
            crate::sandbox_artifacts_marked(
                &target,
                &notice.reference,
                &notice.reference,
                notice.ticket_id.as_deref(),
            );
        }
        all_succeeded &= succeeded;
        print_summary(&summary, args.format);
        let Some(interval) = interval else { break };
        if sleep_unless_stopped(&engine.stop, interval).await {
            break;
        }
    }
    Ok(if all_succeeded {
        EXIT_SUCCESS
    } else {
        EXIT_NOT_SUCCESSFUL
    })
}

/// Sleeps `interval`; true when asked to stop meanwhile.
async fn sleep_unless_stopped(stop: &revoke365::engine::StopSignal, interval: Duration) -> bool {
    let step = Duration::from_millis(500);
    let mut slept = Duration::ZERO;
    while slept < interval {
        if stop.is_stopped() {
            return true;
        }
        tokio::time::sleep(step).await;
        slept += step;
    }
    stop.is_stopped()
}

/// The poll's outcome with each run's end, and whether every run it started succeeded.
async fn summarize(store: &dyn RunStore, report: &PollReport) -> (Value, bool) {
    let mut succeeded = true;
    let mut runs = Vec::new();
    for r in &report.runs {
        let mut entry = json!(r);
        if r.error.is_some() {
            succeeded = false;
        }
        if let Some(run_id) = &r.run_id {
            if let Ok(Some(run)) = store.get_run(run_id).await {
                let success = run.result.as_ref().map(|res| res.success);
                if r.created && success != Some(true) {
                    succeeded = false;
                }
                entry["status"] = json!(run.status);
                entry["success"] = json!(success);
            }
        }
        runs.push(entry);
    }
    let summary = json!({
        "company_id": report.company_id,
        "polled_at": chrono::Utc::now(),
        "started": report.started(),
        "runs": runs,
        "awaiting_approval": report.awaiting_approval,
        "never_contain": report.never_contain,
        "approval_notices": report.approval_notices,
        "skipped": report.skipped,
        "notes": report.notes,
    });
    (summary, succeeded)
}

fn print_summary(summary: &Value, format: Format) {
    match format {
        Format::Json => println!("{summary}"),
        Format::Table => {
            println!(
                "{}: {} run(s) started",
                summary["company_id"].as_str().unwrap_or_default(),
                summary["started"]
            );
            for r in summary["runs"].as_array().into_iter().flatten() {
                let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                println!(
                    "  {} {} alert {} -> run {} ({}{})",
                    text("alert_source"),
                    text("user_email"),
                    text("alert_id"),
                    text("run_id"),
                    text("status"),
                    if r["created"] == true {
                        ", new"
                    } else {
                        ", seen before"
                    }
                );
            }
            for (key, label) in [
                ("awaiting_approval", "awaiting approval"),
                ("never_contain", "never contained (never_contain)"),
            ] {
                for u in summary[key].as_array().into_iter().flatten() {
                    println!(
                        "  {label}: {} {} alert {}",
                        u["alert_source"].as_str().unwrap_or("-"),
                        u["user_email"].as_str().unwrap_or("-"),
                        u["alert_id"].as_str().unwrap_or("-")
                    );
                }
            }
            for n in summary["approval_notices"].as_array().into_iter().flatten() {
                for line in n["outcome"].as_array().into_iter().flatten() {
                    println!(
                        "  approval notice {}: {}",
                        n["reference"].as_str().unwrap_or("-"),
                        line.as_str().unwrap_or_default()
                    );
                }
            }
            for line in summary["skipped"].as_array().into_iter().flatten() {
                println!("  skipped: {}", line.as_str().unwrap_or_default());
            }
            for line in summary["notes"].as_array().into_iter().flatten() {
                println!("  note: {}", line.as_str().unwrap_or_default());
            }
        }
    }
}
