//! A restore run's report: the PSA note, the email's attachment and `--format table` (text),
//! and the email body (HTML). Every text from the request or the tenant goes on one line.

use super::clean::one_line;
use super::html::esc;
use crate::model::RestoreReport;
use std::fmt::Write;

/// The headline: what the reader must know first.
fn headline(r: &RestoreReport) -> String {
    let back = r.restored.iter().filter(|e| e.restored).count();
    if r.dry_run {
        format!(
            "DRY RUN: would restore {} grant(s); nothing was changed",
            r.restored.len()
        )
    } else if r.success {
        format!("{back} grant(s) restored and verified")
    } else {
        let not_back = r.verification.missing.len().max(r.failed.len());
        match not_back {
            0 => format!("ACTION NEEDED: {back} grant(s) restored, with errors (see below)"),
            n => format!("ACTION NEEDED: {n} grant(s) not restored ({back} restored)"),
        }
    }
}

/// The sections of the report, each a title and its lines.
fn sections(r: &RestoreReport) -> Vec<(&'static str, Vec<String>)> {
    // Every entry names its trustee (whom the restore gave access): "mailbox — permission
    // (level) for who".
    let grant = |mailbox: &str, permission: &str, level: &Option<String>, who: &Option<String>| {
        let level = level
            .as_deref()
            .map(|l| format!(" ({})", one_line(l)))
            .unwrap_or_default();
        let who = who
            .as_deref()
            .map(|w| format!(" for {}", one_line(w)))
            .unwrap_or_default();
        format!(
            "{} — {}{level}{who}",
            one_line(mailbox),
            one_line(permission)
        )
    };
    let restored = r
        .restored
        .iter()
        .map(|e| {
            let note = e
                .note
                .as_deref()
                .map(|n| format!(" [{}]", one_line(n)))
                .unwrap_or_default();
            format!(
                "{}{note}",
                grant(&e.mailbox, &e.permission, &e.access_level, &e.trustee)
            )
        })
        .collect();
    let failed = r
        .failed
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                grant(&e.mailbox, &e.permission, &e.access_level, &e.trustee),
                one_line(&e.error)
            )
        })
        .collect();
    let skipped = r
        .skipped
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                grant(&s.mailbox, &s.permission, &None, &s.trustee),
                one_line(&s.reason)
            )
        })
        .collect();
    let missing = r
        .verification
        .missing
        .iter()
        .map(|m| grant(&m.mailbox, &m.permission, &None, &None))
        .collect();
    vec![
        (
            if r.dry_run {
                "Would restore"
            } else {
                "Restored"
            },
            restored,
        ),
        ("Could not be restored", failed),
        ("Missing on re-read", missing),
        ("Skipped", skipped),
        (
            super::contain::CONTAIN_ACTIONS_RESTORED,
            super::contain::restore_lines(&r.contain_actions),
        ),
        (
            super::victim::VICTIM_MAILBOX,
            r.victim_mailbox
                .as_ref()
                .map(super::victim::lines)
                .unwrap_or_default(),
        ),
        (
            "Not restored",
            r.left_out.iter().map(|l| one_line(l)).collect(),
        ),
        ("Notes", r.notes.iter().map(|n| one_line(n)).collect()),
        ("Errors", r.errors.iter().map(|e| one_line(e)).collect()),
    ]
}

fn facts(r: &RestoreReport) -> Vec<(&'static str, String)> {
    let mut out = match &r.backup {
        Some(b) => vec![
            ("Mailbox", one_line(&b.mailbox)),
            ("Company", one_line(&r.company)),
            ("Restore run", r.run_id.clone()),
            (
                "From snapshot",
                format!(
                    "{} (taken {})",
                    b.snapshot_id,
                    b.taken_at.format("%Y-%m-%d %H:%M UTC")
                ),
            ),
        ],
        None => vec![
            ("User", one_line(&r.user_email)),
            ("Company", one_line(&r.company)),
            ("Restore run", r.run_id.clone()),
            ("Restores run", r.restored_from.clone()),
        ],
    };
    match (&r.ticket_id, &r.no_ticket) {
        (Some(t), _) => out.push(("Ticket", one_line(t))),
        (None, Some(why)) => out.push(("Ticket", format!("none ({})", one_line(why)))),
        (None, None) => {}
    }
    out.extend(
        r.request_context
            .lines()
            .into_iter()
            .map(|(label, v)| (label, one_line(v))),
    );
    out
}

/// The plain-text restore report.
pub fn restore_text(r: &RestoreReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Revoke365 mailbox access restore — {}", headline(r));
    for (label, value) in facts(r) {
        let _ = writeln!(out, "{label}: {value}");
    }
    for (title, lines) in sections(r).into_iter().filter(|(_, l)| !l.is_empty()) {
        let _ = writeln!(out, "\n{title}:");
        for line in lines {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out
}

/// The HTML email body: the same facts and sections as the text.
pub fn restore_html(r: &RestoreReport) -> String {
    let colour = if r.success { "#1b5e20" } else { "#b00020" };
    let mut out = format!(
        "<html><body><h2 style=\"color:{colour}\">Revoke365: {}</h2><table>",
        esc(&headline(r))
    );
    for (label, value) in facts(r) {
        let _ = write!(
            out,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            esc(label),
            esc(&value)
        );
    }
    out.push_str("</table>");
    for (title, lines) in sections(r).into_iter().filter(|(_, l)| !l.is_empty()) {
        let _ = write!(out, "<h3>{}</h3><ul>", esc(title));
        for line in lines {
            let _ = write!(out, "<li>{}</li>", esc(&line));
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>");
    out
}

pub fn restore_subject(r: &RestoreReport) -> String {
    one_line(&format!(
        "Revoke365: {} — {} ({})",
        headline(r),
        r.user_email,
        r.company
    ))
}
