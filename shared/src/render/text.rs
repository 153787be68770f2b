//! The plain-text rendering of a [`ReportView`]: the PSA note, the email attachment and
//! `--format table`.

use super::view::ReportView;
use std::fmt::Write;

pub fn render(view: &ReportView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revoke365 mailbox access removal: {}",
        view.headline.title
    );
    for line in &view.headline.lines {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    for (label, value) in &view.facts {
        let _ = writeln!(out, "{label}: {value}");
    }
    let _ = writeln!(out, "\n{}:", view.grants_title);
    if view.grants.is_empty() {
        let _ = writeln!(out, "{}", view.no_grants);
    } else {
        let width = |f: &dyn Fn(&super::view::GrantRow) -> usize, min: usize| {
            view.grants.iter().map(f).max().unwrap_or(min).max(min)
        };
        let shared = " (shared)";
        let wm = width(
            &|r| r.mailbox.chars().count() + if r.shared { shared.len() } else { 0 },
            7,
        );
        let wp = width(&|r| r.permission.chars().count(), 10);
        let wa = width(&|r| r.access.chars().count(), 6);
        let _ = writeln!(
            out,
            "{:wm$}  {:wp$}  {:wa$}  Result",
            "Mailbox", "Permission", "Access"
        );
        for r in &view.grants {
            let mailbox = format!("{}{}", r.mailbox, if r.shared { shared } else { "" });
            let _ = writeln!(
                out,
                "{mailbox:wm$}  {:wp$}  {:wa$}  {}",
                r.permission, r.access, r.result
            );
        }
    }
    for section in &view.sections {
        let _ = writeln!(out, "\n{}:", section.title);
        for line in &section.lines {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out
}
