//! `revoke365 review`: the access review of a company's newest snapshot, and with `--revoke`
//! one revocation per listed user, noted on one ticket.

use crate::args::{Format, ReviewArgs};
use crate::index::connect_error;
use crate::{
    company, engine, internal, new_origin, open_store, os_user, target, CliError, EXIT_BAD_INPUT,
    EXIT_NOT_SUCCESSFUL, EXIT_SUCCESS,
};
use revoke365::index::{review as review_index, AccessError, Review, ReviewReason};
use revoke365::ports::Connector;
use serde_json::json;
use std::fmt::Write;
use std::sync::Arc;

pub async fn review(args: ReviewArgs) -> Result<u8, CliError> {
    let t = &args.tenant;
    let origin = new_origin(&t.config, &t.sandbox, &t.data_dir)?;
    let target = target(origin, t.data_dir.clone(), t.concurrency, false).await?;
    let org = company(&target.orgs, &t.company_id)?.clone();
    let store = Arc::new(open_store(&target.data_dir, target.orgs.clone())?);
    let conns = target
        .connector
        .connect(&org)
        .await
        .map_err(|e| connect_error(&org, e))?;
    let found = review_index(
        store.as_ref(),
        conns.directory.as_ref(),
        &org,
        args.inactive_days,
    )
    .await
    .map_err(|e| match e {
        AccessError::NoSnapshot(_) => CliError {
            code: "no_index".into(),
            field: Some("company_id".into()),
            message: e.to_string(),
            exit: EXIT_BAD_INPUT,
        },
        other => internal(other.to_string()),
    })?;
    let mut out = serde_json::to_value(&found).expect("review serializes");
    if args.revoke {
        let progress = Arc::new(crate::progress::Progress::default());
        let engine = engine(store.clone(), &target, progress);
        let principal = revoke365::authorize::principal::os_user(&os_user());
        let mut ticket: Option<String> = None;
        let mut runs = Vec::new();
        for t in found.trustees.iter().filter(|t| t.reason.is_user()) {
            let Some(user) = t.upn.clone() else { continue };
            let mut body = json!({
                "user_email": user,
                "company_id": org.company_id,
                "reason": format!("access review of snapshot {}: {}", found.snapshot_id, t.reason.label()),
            });
            if let Some(id) = &ticket {
                body["ticket_id"] = json!(id);
            }
            let run = engine
                .run_watched(Some(&principal), &body, None, |_| {})
                .await;
            let entry = match run {
                Ok(run) => {
                    let report = run.result.as_ref();
                    ticket = ticket.or_else(|| report.and_then(|r| r.ticket_id.clone()));
                    json!({
                        "trustee": user,
                        "run_id": run.run_id.to_string(),
                        "success": report.is_some_and(|r| r.success),
                        "removed": report.map_or(0, |r| r.removal_summary.total_permissions_removed),
                    })
                }
                Err(e) => json!({"trustee": user, "success": false, "error": e.to_string()}),
            };
            runs.push(entry);
        }
        out["revocations"] = json!(runs);
        out["ticket_id"] = json!(ticket);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out).expect("JSON")),
        Format::Table => print!("{}", review_table(&found)),
    }
    Ok(if found.trustees.is_empty() {
        EXIT_SUCCESS
    } else {
        EXIT_NOT_SUCCESSFUL
    })
}

/// A summary line per reason, then each trustee with its grants.
fn review_table(r: &Review) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "access review of {} as of {} (snapshot {})",
        r.company_id,
        r.as_of.format("%Y-%m-%d %H:%M UTC"),
        r.snapshot_id
    );
    if r.trustees.is_empty() {
        let _ = writeln!(
            out,
            "nothing to review: every grant is held by an active account"
        );
    }
    for (reason, n) in &r.summary {
        let grants: usize = r
            .trustees
            .iter()
            .filter(|t| t.reason == *reason)
            .map(|t| t.grants.len())
            .sum();
        let _ = writeln!(
            out,
            "  {:<32} {n} trustee(s), {grants} grant(s)",
            reason.label()
        );
    }
    for t in &r.trustees {
        let last = match (t.reason, t.last_sign_in) {
            (ReviewReason::Inactive, Some(at)) => {
                format!(", last sign-in {}", at.format("%Y-%m-%d"))
            }
            (ReviewReason::Inactive, None) => ", never signed in".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(out, "\n{} ({}{last})", t.trustee, t.reason.label());
        for g in &t.grants {
            let _ = writeln!(
                out,
                "  {:<16} {:<36} {}",
                g.permission.report_name(),
                g.mailbox,
                g.access_rights.join(", ")
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "NOT READ: {n}");
    }
    out
}
