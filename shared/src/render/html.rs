//! The HTML rendering of a [`ReportView`]: the email body. Inline styles and tables only, so
//! Outlook and web mail show it alike.

use super::view::{Outcome, ReportView, Tone};
use std::fmt::Write;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Banner background and the tint of the box under it.
fn colours(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::AllRemoved => ("#1a7f37", "#dafbe1"),
        Outcome::AccessRemains | Outcome::PartlyChecked | Outcome::NotNotified => {
            ("#9a6700", "#fff8c5")
        }
        Outcome::ActionNeeded | Outcome::Unfinished => ("#b00020", "#ffebe9"),
        Outcome::DryRun => ("#0969da", "#ddf4ff"),
    }
}

fn tone_colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Bad => "#b00020",
        Tone::Warn => "#9a6700",
        Tone::Good => "#1a7f37",
        Tone::Plain => "#1f2328",
    }
}

/// Grant rows and section lines the email shows; the rest are in the attached report (Graph
/// refuses a `sendMail` request over 4 MB, and nobody reads 6,000 rows in a mail).
const EMAIL_GRANT_ROWS: usize = 500;
const EMAIL_SECTION_LINES: usize = 200;

/// The "… and N more" line under a list cut at `shown`.
fn more(total: usize, shown: usize, what: &str) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "… and {} more {what}: every one is in the attached report.",
            total - shown
        )
    })
}

const CELL: &str =
    "padding:6px 10px;border-bottom:1px solid #d8dee4;text-align:left;vertical-align:top";

pub fn render(view: &ReportView) -> String {
    let h = &view.headline;
    let (banner, tint) = colours(h.outcome);
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"margin:0;padding:16px;background:#f6f8fa;font-family:'Segoe UI',Arial,sans-serif;font-size:14px;color:#1f2328\">\
         <div style=\"max-width:860px;margin:0 auto;background:#ffffff;border:1px solid #d0d7de\">",
    );
    // The case at a glance: a coloured banner, then what it means and what to do.
    let (word, rest) = h.title.split_once(" — ").unwrap_or((&h.title, ""));
    let _ = write!(
        out,
        "<div style=\"background:{banner};color:#ffffff;padding:14px 20px\">\
         <div style=\"font-size:12px;letter-spacing:.06em;text-transform:uppercase;opacity:.9\">Revoke365 mailbox access removal</div>\
         <div style=\"font-size:22px;font-weight:700;margin-top:4px\">{}</div>\
         <div style=\"font-size:16px;margin-top:2px\">{}</div></div>",
        esc(word),
        esc(rest)
    );
    if !h.lines.is_empty() {
        let _ = write!(
            out,
            "<div style=\"background:{tint};padding:10px 20px;border-bottom:1px solid #d0d7de\">"
        );
        for line in &h.lines {
            let _ = write!(out, "<p style=\"margin:6px 0\">{}</p>", esc(line));
        }
        out.push_str("</div>");
    }
    out.push_str("<div style=\"padding:8px 20px 16px\">");
    out.push_str("<table cellspacing=\"0\" cellpadding=\"0\" style=\"border-collapse:collapse;margin-top:8px\">");
    for (label, value) in &view.facts {
        let _ = write!(
            out,
            "<tr><td style=\"padding:3px 16px 3px 0;color:#59636e;white-space:nowrap;vertical-align:top\">{}</td><td style=\"padding:3px 0\">{}</td></tr>",
            esc(label),
            esc(value)
        );
    }
    out.push_str("</table>");
    let _ = write!(out, "{}", heading(view.grants_title, Tone::Plain));
    if view.grants.is_empty() {
        let _ = write!(out, "<p>{}</p>", esc(view.no_grants));
    } else {
        let _ = write!(
            out,
            "<table cellspacing=\"0\" cellpadding=\"0\" style=\"border-collapse:collapse;width:100%\"><tr style=\"background:#f6f8fa\">\
             <th style=\"{CELL}\">Mailbox</th><th style=\"{CELL}\">Permission</th><th style=\"{CELL}\">Access</th><th style=\"{CELL}\">Result</th></tr>"
        );
        for r in view.grants.iter().take(EMAIL_GRANT_ROWS) {
            let shared = if r.shared {
                " <span style=\"color:#59636e\">(shared)</span>"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<tr><td style=\"{CELL};white-space:nowrap\">{}{shared}</td><td style=\"{CELL}\">{}</td><td style=\"{CELL}\">{}</td><td style=\"{CELL};color:{};font-weight:600\">{}</td></tr>",
                esc(&r.mailbox),
                esc(&r.permission),
                esc(&r.access),
                tone_colour(r.tone),
                esc(&r.result)
            );
        }
        out.push_str("</table>");
        if let Some(line) = more(view.grants.len(), EMAIL_GRANT_ROWS, "grants") {
            let _ = write!(out, "<p style=\"margin:6px 0\">{}</p>", esc(&line));
        }
    }
    for section in &view.sections {
        out.push_str(&heading(section.title, section.tone));
        out.push_str("<ul style=\"margin:4px 0;padding-left:22px\">");
        for line in section.lines.iter().take(EMAIL_SECTION_LINES) {
            let _ = write!(out, "<li style=\"margin:3px 0\">{}</li>", esc(line));
        }
        out.push_str("</ul>");
        if let Some(line) = more(section.lines.len(), EMAIL_SECTION_LINES, "lines") {
            let _ = write!(out, "<p style=\"margin:6px 0\">{}</p>", esc(&line));
        }
    }
    out.push_str(
        "<p style=\"margin-top:18px;color:#59636e;font-size:12px\">The plain-text report is attached.</p>\
         </div></div></body></html>",
    );
    out
}

fn heading(title: &str, tone: Tone) -> String {
    format!(
        "<h3 style=\"margin:18px 0 6px;font-size:15px;color:{}\">{}</h3>",
        tone_colour(tone),
        esc(title)
    )
}
