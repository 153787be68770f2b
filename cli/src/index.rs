//! `revoke365 sweep` and `revoke365 access`: the permission index on one machine (snapshots in
//! `<data_dir>/revoke365.db`).

use crate::args::{AccessArgs, Format, SweepArgs, TenantArgs};
use crate::{
    company, config, internal, new_origin, open_store, target, CliError, EXIT_BAD_INPUT,
    EXIT_SUCCESS,
};
use revoke365::index::{lookup, sweep_resumable, AccessError, AccessMap, AccessQuery, Change};
use revoke365::model::{InvalidRequest, OrgSettings, Snapshot, SnapshotSummary};
use revoke365::ports::{Connector, PermissionIndex, SweepJournal};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

pub(crate) fn connect_error(org: &OrgSettings, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: "internal".into(),
        field: None,
        message: format!(
            "cannot build the clients for company '{}': {e}",
            org.company_id
        ),
        exit: EXIT_BAD_INPUT,
    }
}

pub async fn sweep(args: SweepArgs) -> Result<u8, CliError> {
    let t = &args.tenant;
    let origin = new_origin(&t.config, &t.sandbox, &t.data_dir)?;
    let target = target(origin, t.data_dir.clone(), t.concurrency).await?;
    let org = company(&target.orgs, &t.company_id)?.clone();
    let store = crate::target_store(&target)?;
    let conns = target
        .connector
        .connect(&org)
        .await
        .map_err(|e| connect_error(&org, e))?;
    let progress = crate::progress::Progress::default();
    let core = target.connector.core.clone();
    let learned = move || -> BTreeMap<String, usize> {
        core.learned_limits()
            .into_iter()
            .map(|(_, service, l)| (service.to_string(), l.limit))
            .collect()
    };
    // Each mailbox read is journaled in revoke365.db: a sweep interrupted before its snapshot
    // was stored (Ctrl-C, a crash, a throttling storm) is gone on with by the next one.
    let journal: &dyn SweepJournal = &store;
    let snapshot = sweep_resumable(conns.tenant(), &org, &progress, &learned, Some(journal))
        .await
        .map_err(|e| CliError {
            code: "tenant_error".into(),
            field: None,
            message: format!("the sweep could not read the tenant (nothing was stored): {e}"),
            exit: crate::EXIT_NOT_SUCCESSFUL,
        })?;
    store
        .save_snapshot(&snapshot, &org.index)
        .await
        .map_err(|e| internal(format!("the snapshot could not be stored: {e}")))?;
    if let Err(e) = store.end_sweep(&org.company_id).await {
        eprintln!("warning: the sweep journal could not be cleared ({e}); the next sweep starts again anyway once the journal is a day old");
    }
    print_sweep(&snapshot, args.format);
    Ok(EXIT_SUCCESS)
}

fn print_sweep(snapshot: &Snapshot, format: Format) {
    let s = &snapshot.summary;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(s).expect("summary serializes")
        ),
        Format::Table => print!("{}", sweep_table(s)),
    }
}

fn sweep_table(s: &SnapshotSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "snapshot {}  ({})", s.snapshot_id, s.company_id);
    let _ = writeln!(
        out,
        "taken at {}  in {:.1} s",
        s.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
        s.duration_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "{} mailboxes, {} trustees, {} grants",
        s.mailboxes, s.trustees, s.grants
    );
    if s.resumed_mailboxes > 0 {
        let _ = writeln!(
            out,
            "went on with an interrupted sweep: {} mailboxes read by it were not read again",
            s.resumed_mailboxes
        );
    }
    let calls: Vec<String> = s.calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let limits: Vec<String> = s.limits.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "calls: {}   learned limits: {}",
        calls.join(", "),
        limits.join(", ")
    );
    for e in &s.errors {
        let _ = writeln!(out, "NOT READ: {e}");
    }
    out
}

/// The companies and data directory of `--config` or `--sandbox`, without reaching anything.
/// The companies, data directory and index scope (a sandbox fixture's, as
/// [`crate::target_store`] gives it) of an offline lookup.
fn offline(t: &TenantArgs) -> Result<(Vec<OrgSettings>, PathBuf, Option<String>), CliError> {
    match (&t.config, &t.sandbox) {
        (Some(path), _) => {
            let s = config::load(path)?;
            Ok((s.orgs, t.data_dir.clone().unwrap_or(s.data_dir), None))
        }
        (None, Some(fixture)) => {
            let bad =
                |m: String| CliError::config("sandbox", format!("{}: {m}", fixture.display()));
            let text = std::fs::read_to_string(fixture).map_err(|e| bad(e.to_string()))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let org = OrgSettings::from_fixture(&json).map_err(bad)?;
            let dir = t
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
            let scope = crate::sandbox::kept_state(&dir, fixture)?
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            Ok((vec![org], dir, scope))
        }
        (None, None) => Err(CliError::config(
            "config",
            "pass --config FILE for a real tenant or --sandbox FIXTURE for the simulator",
        )),
    }
}

pub async fn access(args: AccessArgs) -> Result<u8, CliError> {
    let query = match (&args.user, &args.mailbox) {
        (Some(u), None) => AccessQuery::User(u.clone()),
        (None, Some(m)) => AccessQuery::Mailbox(m.clone()),
        _ => {
            return Err(InvalidRequest::new("user", "give --user EMAIL or --mailbox EMAIL").into())
        }
    };
    if args.live && args.user.is_none() {
        return Err(InvalidRequest::new(
            "live",
            "--live is available with --user (a mailbox's trustees are all read by a sweep)",
        )
        .into());
    }
    let t = &args.tenant;
    let answer = if args.live {
        let origin = new_origin(&t.config, &t.sandbox, &t.data_dir)?;
        let target = target(origin, t.data_dir.clone(), t.concurrency).await?;
        let org = company(&target.orgs, &t.company_id)?.clone();
        let store = crate::target_store(&target)?;
        let conns = target
            .connector
            .connect(&org)
            .await
            .map_err(|e| connect_error(&org, e))?;
        lookup(&store, &org, &query, Some(conns.tenant())).await
    } else {
        let (orgs, dir, scope) = offline(t)?;
        let org = company(&orgs, &t.company_id)?.clone();
        let mut store = open_store(&dir, orgs.clone())?;
        if let Some(scope) = scope {
            store = store.with_index_scope(&scope);
        }
        lookup(&store, &org, &query, None).await
    };
    let map = answer.map_err(|e| match e {
        AccessError::NoSnapshot(_) => CliError {
            code: "no_index".into(),
            field: Some("company_id".into()),
            message: e.to_string(),
            exit: EXIT_BAD_INPUT,
        },
        AccessError::Rejected(m) => InvalidRequest::new("user", m).into(),
        other => internal(other.to_string()),
    })?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&map).expect("access map serializes")
        ),
        Format::Table => print!("{}", access_table(&map)),
    }
    Ok(EXIT_SUCCESS)
}

/// Grouped by mailbox, one line per trustee and right.
pub(crate) fn access_table(map: &AccessMap) -> String {
    let mut out = String::new();
    let (what, who) = map
        .query
        .iter()
        .next()
        .map_or(("", ""), |(k, v)| (*k, v.as_str()));
    let _ = writeln!(
        out,
        "{what} {who} at {}: as of {} (snapshot {}){}",
        map.company_id,
        map.as_of.format("%Y-%m-%d %H:%M UTC"),
        map.snapshot_id,
        if map.live { ", re-read live" } else { "" }
    );
    let mut by_mailbox: BTreeMap<&str, Vec<&revoke365::index::AccessEntry>> = BTreeMap::new();
    for g in &map.grants {
        by_mailbox.entry(&g.mailbox).or_default().push(g);
    }
    for (mailbox, grants) in by_mailbox {
        let _ = writeln!(
            out,
            "\n{mailbox} ({}, {})",
            grants[0].mailbox_display_name, grants[0].recipient_type
        );
        for g in grants {
            let change = match g.change {
                Some(Change::Added) => "  [new since the snapshot]",
                Some(Change::Removed) => "  [gone since the snapshot]",
                _ => "",
            };
            let place = match (&g.folder, &g.calendar) {
                (Some(folder), _) => format!(" on {folder}"),
                (None, Some(calendar)) => format!(" on calendar \"{calendar}\""),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<16} {:<40} {}{place}{change}",
                g.permission.report_name(),
                g.trustee,
                g.access_rights.join(", ")
            );
        }
    }
    let counts: Vec<String> = map
        .counts
        .iter()
        .map(|(t, n)| format!("{} {n}", t.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "\n{} grants{}{}",
        map.counts.values().sum::<usize>(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        },
        map.changes
            .iter()
            .map(|(k, v)| format!("; {v} {k} since the snapshot"))
            .collect::<String>()
    );
    for e in &map.incomplete {
        let _ = writeln!(out, "NOT READ: {e}");
    }
    out
}
