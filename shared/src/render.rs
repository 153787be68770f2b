//! Human-readable forms of a report: the PSA note / text attachment, and the HTML email.
//! Both are built from the same rows so they can never disagree.

use crate::model::{GrantEntry, OrgSettings, Report, Run, RunFailure};
use std::fmt::Write;

struct Row<'a> {
    mailbox: &'a str,
    shared: bool,
    permission: &'a str,
    access: &'a str,
    result: String,
    failed: bool,
}

fn result_text(e: &GrantEntry) -> String {
    match (&e.error, e.removed, e.would_remove) {
        (Some(err), _, _) => format!("FAILED: {err}"),
        (None, true, _) if e.note.is_some() => "removed (already gone)".into(),
        (None, true, _) => "removed".into(),
        (None, false, Some(true)) => "would remove (dry run)".into(),
        (None, false, _) => "not removed".into(),
    }
}

fn rows(report: &Report) -> Vec<Row<'_>> {
    let p = &report.permissions_removed;
    let direct = [
        &p.full_access,
        &p.send_as,
        &p.send_on_behalf,
        &p.calendar_delegates,
    ]
    .into_iter()
    .flatten()
    .map(|e| (e.mailbox.as_str(), false, e));
    let shared = p.shared_mailboxes.iter().flat_map(|s| {
        s.permissions
            .iter()
            .map(move |e| (s.mailbox.as_str(), true, e))
    });
    direct
        .chain(shared)
        .map(|(mailbox, shared, e)| Row {
            mailbox,
            shared,
            permission: &e.permission,
            access: e.access_level.as_deref().unwrap_or(""),
            result: result_text(e),
            failed: e.error.is_some(),
        })
        .collect()
}

fn headline(report: &Report) -> String {
    let outcome = match (report.success, report.dry_run) {
        (true, true) => "DRY RUN — nothing was changed",
        (true, false) => "SUCCESS — all access removed and verified",
        (false, _) => "ATTENTION — not everything was removed or reported",
    };
    format!("{outcome} (status: {})", report.status.as_str())
}

fn verification_line(report: &Report) -> String {
    let v = &report.verification;
    format!(
        "remaining after re-read: Full Access {}, Send As {}, Send on Behalf {}, calendar {}, shared mailboxes {}{}",
        v.remaining_full_access,
        v.remaining_send_as,
        v.remaining_send_on_behalf,
        v.remaining_calendar_delegates,
        v.remaining_shared_mailboxes,
        if v.all_permissions_cleared { " — all cleared" } else { "" }
    )
}

/// The plain-text report: the PSA note and the email attachment.
pub fn text_report(report: &Report) -> String {
    let s = &report.removal_summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revoke365 mailbox access removal — {}",
        headline(report)
    );
    let _ = writeln!(out, "User: {} <{}>", s.user_display_name, s.user_email);
    let _ = writeln!(out, "Company: {}", s.company);
    let _ = writeln!(out, "Run: {}", report.run_id);
    for (label, value) in report.request_context.lines() {
        let _ = writeln!(out, "{label}: {value}");
    }
    let _ = writeln!(out, "Grants removed: {}", s.total_permissions_removed);
    let _ = writeln!(out, "Verification: {}", verification_line(report));
    let rows = rows(report);
    if rows.is_empty() {
        let _ = writeln!(out, "\nNo direct grants were found.");
    } else {
        let w = rows
            .iter()
            .map(|r| r.mailbox.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            out,
            "\n{:w$}  {:<16}  {:<16}  Result",
            "Mailbox", "Permission", "Access"
        );
        for r in &rows {
            let shared = if r.shared { " (shared)" } else { "" };
            let _ = writeln!(
                out,
                "{:w$}  {:<16}  {:<16}  {}{shared}",
                r.mailbox, r.permission, r.access, r.result
            );
        }
    }
    section(
        &mut out,
        "Still present after removal",
        report
            .verification
            .remaining
            .iter()
            .map(|r| format!("{} {}", r.mailbox, r.permission)),
    );
    for (title, lines) in details(report) {
        section(&mut out, title, lines.into_iter());
    }
    out
}

/// What follows the table in the note and in the email alike.
fn details(report: &Report) -> [(&'static str, Vec<String>); 3] {
    [
        (
            "Indirect access (through a group or inheritance; not removable on the mailbox)",
            report
                .indirect_access
                .iter()
                .map(|i| format!("{} {} via {}", i.mailbox, i.permission, i.via))
                .collect(),
        ),
        (
            "Skipped",
            report
                .skipped
                .iter()
                .map(|k| format!("{} {}: {}", k.mailbox, k.permission, k.reason))
                .collect(),
        ),
        ("Errors", report.errors.clone()),
    ]
}

fn section(out: &mut String, title: &str, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for l in lines {
        let _ = writeln!(out, "  - {l}");
    }
}

pub fn email_subject(report: &Report) -> String {
    let s = &report.removal_summary;
    let what = match (report.success, report.dry_run) {
        (true, true) => "dry run",
        (true, false) => "access removed",
        (false, _) => "ACTION NEEDED",
    };
    format!("Revoke365: {what} — {} ({})", s.user_email, s.company)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The HTML email body: summary and per-item table.
pub fn email_html(report: &Report) -> String {
    let s = &report.removal_summary;
    let mut out = String::from("<html><body style=\"font-family:Segoe UI,Arial,sans-serif\">");
    let _ = write!(out, "<h2>{}</h2>", esc(&headline(report)));
    let _ = write!(
        out,
        "<p>User: <b>{}</b> &lt;{}&gt;<br>Company: {}<br>Run: {}<br>Grants removed: <b>{}</b><br>Verification: {}</p>",
        esc(&s.user_display_name),
        esc(&s.user_email),
        esc(&s.company),
        esc(&report.run_id),
        s.total_permissions_removed,
        esc(&verification_line(report))
    );
    if let Some(t) = &report.ticket_id {
        let _ = write!(out, "<p>Ticket: {}</p>", esc(t));
    }
    for (label, value) in report.request_context.lines() {
        let _ = write!(out, "<p>{label}: {}</p>", esc(value));
    }
    out.push_str("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Mailbox</th><th>Permission</th><th>Access</th><th>Result</th></tr>");
    for r in rows(report) {
        let style = if r.failed {
            " style=\"color:#b00020\""
        } else {
            ""
        };
        let shared = if r.shared { " (shared)" } else { "" };
        let _ = write!(
            out,
            "<tr{style}><td>{}{shared}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.mailbox),
            esc(r.permission),
            esc(r.access),
            esc(&r.result)
        );
    }
    out.push_str("</table>");
    for (title, lines) in details(report) {
        html_list(&mut out, title, lines.into_iter());
    }
    out.push_str("</body></html>");
    out
}

fn html_list(out: &mut String, title: &str, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        return;
    }
    let _ = write!(out, "<h3>{}</h3><ul>", esc(title));
    for l in lines {
        let _ = write!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul>");
}

/// At most 100 characters (ConnectWise's limit), always ending with the run id: the marker a
/// verification that took over an interrupted one looks the ticket up by.
pub fn ticket_summary(run: &Run, org: &OrgSettings) -> String {
    let marker = format!(" [run {}]", run.run_id);
    let text = format!(
        "Remove mailbox access: {} ({})",
        run.request.user_email, org.company_name
    );
    let room = 100usize.saturating_sub(marker.chars().count());
    let text: String = text.chars().take(room).collect();
    format!("{text}{marker}")
}

/// What a failed run tells the ticket and the requestor: what failed, what was already
/// removed, and the run id.
pub fn failure_text(
    run: &Run,
    org: &OrgSettings,
    failure: &RunFailure,
    removed: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revoke365 mailbox access removal — FAILED: the run did not finish"
    );
    let _ = writeln!(out, "User: {}", run.request.user_email);
    let _ = writeln!(out, "Company: {}", org.company_name);
    let _ = writeln!(out, "Run: {}", run.run_id);
    for (label, value) in crate::model::RequestContext::from(&run.request).lines() {
        let _ = writeln!(out, "{label}: {value}");
    }
    let _ = writeln!(out, "Stopped while: {}", run.status.as_str());
    let _ = writeln!(out, "Why: {}", failure.message);
    let _ = writeln!(
        out,
        "Nothing was verified: check the mailboxes below and run it again."
    );
    section(
        &mut out,
        "Already removed by this run",
        removed.iter().cloned(),
    );
    if removed.is_empty() {
        let _ = writeln!(out, "\nNothing had been removed yet.");
    }
    out
}

pub fn failure_subject(run: &Run, org: &OrgSettings) -> String {
    format!(
        "[Revoke365] FAILED: mailbox access removal for {} ({})",
        run.request.user_email, org.company_name
    )
}

/// The failure text as a simple HTML email body.
pub fn failure_html(text: &str) -> String {
    format!(
        "<html><body><h2 style=\"color:#b00020\">Revoke365: the run failed</h2><pre>{}</pre></body></html>",
        esc(text)
    )
}

pub fn ticket_description(run: &Run) -> String {
    let r = &run.request;
    let mut out = format!(
        "Revoke365 run {} removes the mailbox access of {}.",
        run.run_id, r.user_email
    );
    for (label, value) in crate::model::RequestContext::from(r).lines() {
        let _ = write!(out, "\n{label}: {value}");
    }
    out
}
