//! Human-readable forms of a report: the PSA note / text attachment / `--format table`, and
//! the HTML email. Both render one [`ReportView`], so they can never disagree or leave a
//! section out; every text from the request or the tenant is put on one line first
//! ([`one_line`]), so none can forge a line of the report.

mod clean;
mod contain;
mod html;
mod restore;
mod review;
mod text;
mod victim;
mod view;

pub use clean::one_line;
pub use contain::CONTAIN_ACTIONS;
pub use restore::{restore_html, restore_subject, restore_text};
pub use review::{digest_headline, digest_html, digest_text, review_text};
pub use victim::VICTIM_MAILBOX;
pub use view::{
    type_name, GrantRow, Headline, Outcome, ReportView, Section, Tone, ERRORS, INDIRECT,
    NOT_CHECKED, SKIPPED, STILL_PRESENT,
};

use crate::model::{OrgSettings, Report, Run, RunFailure};
pub use html::esc;
use std::fmt::Write;

/// The plain-text report: the PSA note, the email attachment and `--format table`.
pub fn text_report(report: &Report) -> String {
    text::render(&ReportView::of(report))
}

/// The email's attachment: the text report, cut at a line once it passes
/// [`ATTACHMENT_BYTES`] (the mail must stay under Graph's 4 MB `sendMail` limit once
/// base64-encoded) with a last line saying where the whole result is.
pub fn attachment_text(report: &Report) -> String {
    let mut text = text_report(report);
    if text.len() > ATTACHMENT_BYTES {
        let cut = text[..ATTACHMENT_BYTES].rfind('\n').unwrap_or(0);
        let left = text[cut..].lines().filter(|l| !l.is_empty()).count();
        text.truncate(cut);
        let _ = write!(
            text,
            "\n… {left} more lines: the whole result is the run's result (GET /revocations/{} or the CLI's result file).\n",
            report.run_id
        );
    }
    text
}

/// The largest attachment the email carries (2 MiB: 2.7 MB in base64).
pub const ATTACHMENT_BYTES: usize = 2 * 1024 * 1024;

/// The HTML email body: the same view as the text report.
pub fn email_html(report: &Report) -> String {
    html::render(&ReportView::of(report))
}

/// The case first, so an inbox list tells them apart.
pub fn email_subject(report: &Report) -> String {
    let s = &report.removal_summary;
    let what = match Outcome::of(report) {
        Outcome::AllRemoved => "all access removed".to_string(),
        Outcome::AccessRemains => {
            "direct access removed, access remains via group or inheritance".to_string()
        }
        Outcome::PartlyChecked => "checked access removed (partial scope)".to_string(),
        Outcome::ActionNeeded => "ACTION NEEDED, removal failed".to_string(),
        Outcome::Unfinished => "UNFINISHED, stopped before its end".to_string(),
        Outcome::DryRun => format!("dry run, would remove {}", view::would_remove(report)),
        Outcome::NotNotified => format!(
            "{} succeeded, NOT NOTIFIED: {} could not be delivered",
            if report.dry_run { "dry run" } else { "removal" },
            view::not_delivered(report)
        ),
    };
    one_line(&format!(
        "Revoke365: {what} — {} ({})",
        s.user_email, s.company
    ))
}

/// At most 100 characters (ConnectWise's limit), always ending with the run id: the marker a
/// verification that took over an interrupted one looks the ticket up by. A company name too
/// long for the room left is cut inside its parentheses, the user's address kept whole.
pub fn ticket_summary(run: &Run, org: &OrgSettings) -> String {
    let what = match run.kind() {
        crate::model::RunKind::Revoke => "Remove mailbox access",
        crate::model::RunKind::Restore => "Restore mailbox access",
    };
    let marker = format!("run {}", run.run_id);
    let head = one_line(&format!("{what}: {}", run.request.user_email));
    let company_room = summary_room(&marker)
        .saturating_sub(head.chars().count())
        .saturating_sub(" ()".len());
    // Below a few characters the name would be only an ellipsis: leave it out.
    let text = match cut_at_word(&one_line(&org.company_name), company_room) {
        company if company_room >= 4 && !company.is_empty() => format!("{head} ({company})"),
        _ => head,
    };
    marked_summary(&text, &marker)
}

/// The longest ticket summary every PSA takes (ConnectWise's limit); the clients' own cut
/// never reaches a summary made here.
const SUMMARY_MAX_CHARS: usize = 100;

/// The characters a summary marked with `marker` has for its text.
fn summary_room(marker: &str) -> usize {
    SUMMARY_MAX_CHARS.saturating_sub(format!(" [{marker}]").chars().count())
}

/// A ticket summary of at most [`SUMMARY_MAX_CHARS`] characters that ends with `[marker]`, the
/// text it is found again by, whole; the text before it is put on one line and cut to the
/// room left ([`cut_at_word`]).
pub fn marked_summary(text: &str, marker: &str) -> String {
    let text = cut_at_word(&one_line(text), summary_room(marker));
    format!("{text} [{marker}]")
}

/// `text` in at most `max` characters: whole, or cut after its last whole word with an
/// ellipsis, so that no name is left half-written (a single word longer than `max` is cut
/// inside, the ellipsis saying so).
fn cut_at_word(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let fits: String = text.chars().take(max.saturating_sub(1)).collect();
    let ends_a_word = text.chars().nth(fits.chars().count()) == Some(' ');
    let kept = if ends_a_word {
        fits.as_str()
    } else {
        fits.rfind(' ')
            .map_or(fits.as_str(), |space| &fits[..space])
    };
    let kept = kept.trim_end_matches([' ', ',', ';', ':', '-', '—', '(']);
    format!("{kept}…")
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
    let _ = writeln!(out, "User: {}", one_line(&run.request.user_email));
    let _ = writeln!(out, "Company: {}", one_line(&org.company_name));
    let _ = writeln!(out, "Run: {}", run.run_id);
    for (label, value) in crate::model::RequestContext::from(&run.request).lines() {
        let _ = writeln!(out, "{label}: {}", one_line(value));
    }
    let _ = writeln!(out, "Stopped while: {}", run.status.as_str());
    let _ = writeln!(out, "Why: {}", one_line(&failure.message));
    let _ = writeln!(
        out,
        "Nothing was verified: check the mailboxes below and run it again."
    );
    if removed.is_empty() {
        let _ = writeln!(out, "\nNothing had been removed yet.");
    } else {
        let _ = writeln!(out, "\nAlready removed by this run:");
        for r in removed {
            let _ = writeln!(out, "  - {}", one_line(r));
        }
    }
    out
}

pub fn failure_subject(run: &Run, org: &OrgSettings) -> String {
    one_line(&format!(
        "[Revoke365] FAILED: mailbox access removal for {} ({})",
        run.request.user_email, org.company_name
    ))
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
        let _ = write!(out, "\n{label}: {}", one_line(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::marked_summary;

    #[test]
    fn a_long_summary_is_cut_after_a_whole_word_and_keeps_its_marker() {
        let company = "Acme Corporation International Holdings and Subsidiaries of the Greater Metropolitan Area";
        let text = format!("Remove mailbox access: john.smith@acmecorp.com ({company})");
        let marker = "run 01JEXAMPLE7Q2W3E4R5T6Y7U8I9";
        let summary = marked_summary(&text, marker);
        assert!(summary.chars().count() <= 100, "{summary}");
        let (kept, tail) = summary.split_once('…').expect("an ellipsis marks the cut");
        assert_eq!(tail, format!(" [{marker}]"));
        assert!(text.starts_with(kept), "{summary}");
        // The cut falls where a word ends in the text.
        assert!(
            text[kept.len()..].starts_with(' '),
            "cut inside a word: {summary}"
        );

        let short = marked_summary("Remove mailbox access: ann@acme.com (Acme)", marker);
        assert_eq!(
            short,
            format!("Remove mailbox access: ann@acme.com (Acme) [{marker}]")
        );
        let one_word = marked_summary(&"x".repeat(150), marker);
        assert!(one_word.chars().count() <= 100 && one_word.ends_with(&format!("… [{marker}]")));
    }
}
