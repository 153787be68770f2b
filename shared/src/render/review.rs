//! An access review as people read it: `review --format table`, and the digest's PSA note and
//! email (with what `--revoke` did for each trustee). Every text from the tenant goes on one
//! line first.

use super::clean::one_line;
use super::html::esc;
use crate::index::{Review, ReviewAction, ReviewReason};
use std::fmt::Write;

/// A summary line per reason, then each trustee with its grants.
pub fn review_text(r: &Review) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "access review of {} as of {} (snapshot {})",
        one_line(&r.company_id),
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
        let _ = writeln!(
            out,
            "\n{} ({}{last})",
            one_line(&t.trustee),
            t.reason.label()
        );
        for g in &t.grants {
            let _ = writeln!(
                out,
                "  {:<16} {:<36} {}",
                g.permission.report_name(),
                one_line(&g.shown_on()),
                one_line(&g.access_rights.join(", "))
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "NOT READ: {}", one_line(n));
    }
    out
}

/// The digest's headline: what a technician must know first.
pub fn digest_headline(r: &Review, actions: &[ReviewAction]) -> String {
    let failed = actions.iter().filter(|a| !a.success).count();
    let removed: u32 = actions.iter().map(|a| a.removed).sum();
    match (actions.is_empty(), failed) {
        (true, _) if r.trustees.is_empty() => "nothing to review".to_string(),
        (true, _) => format!(
            "{} trustee(s) hold {} grant(s) to review",
            r.trustees.len(),
            r.grants
        ),
        (false, 0) => format!(
            "{} trustee(s) revoked or cleaned up, {removed} grant(s) removed and verified",
            actions.len()
        ),
        (false, n) => format!(
            "ACTION NEEDED: {n} of {} trustee(s) not fully revoked ({removed} grant(s) removed)",
            actions.len()
        ),
    }
}

/// The digest as the PSA note and the email's text: headline, what was run per trustee, then
/// the review. `marker` identifies the digest (a retry finds its note by it).
pub fn digest_text(r: &Review, actions: &[ReviewAction], marker: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revoke365 access review — {} [{marker}]",
        digest_headline(r, actions)
    );
    if !actions.is_empty() {
        let _ = writeln!(out, "\nRevocations:");
        for a in actions {
            let what = match (&a.run_id, &a.error) {
                (Some(id), None) => format!(
                    "{} run {id}: {} removed{}",
                    a.mode.map_or("no", |m| m.as_str()),
                    a.removed,
                    if a.success { "" } else { ", NOT successful" }
                ),
                (Some(id), Some(e)) => format!("run {id}: {}", one_line(e)),
                (None, Some(e)) => one_line(e),
                (None, None) => "not run".to_string(),
            };
            let _ = writeln!(
                out,
                "  - {} ({}): {what}",
                one_line(&a.trustee),
                a.reason.label()
            );
        }
    }
    out.push('\n');
    out.push_str(&review_text(r));
    out
}

/// The digest's email body: the same text, preformatted.
pub fn digest_html(r: &Review, actions: &[ReviewAction], marker: &str) -> String {
    format!(
        "<html><body><pre style=\"font-family:Consolas,monospace;font-size:13px\">{}</pre></body></html>",
        esc(&digest_text(r, actions, marker))
    )
}
