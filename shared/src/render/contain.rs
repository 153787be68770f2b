//! A contain run's identity actions and its honest clock, for the table, the PSA note and the
//! email alike.

use super::clean::one_line;
use crate::model::{clock_sentence, ContainAction, ContainActionKind, ContainActionStatus, Report};

pub const CONTAIN_ACTIONS: &str = "Sign-in, sessions and app consents (done first)";
pub const CONTAIN_ACTIONS_RESTORED: &str = "Sign-in, sessions and app consents";

/// Whether an action failed (the section shows in red).
pub(super) fn failed(report: &Report) -> bool {
    report
        .contain_actions
        .iter()
        .any(|a| a.status == ContainActionStatus::Failed)
}

/// The headline's sentences: when access ends, in words, and what to do on premises.
pub(super) fn summary(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if report.contain_actions.is_empty() {
        return out;
    }
    if failed(report) {
        out.push(format!(
            "Not every containment action succeeded (see \"{CONTAIN_ACTIONS}\")."
        ));
    }
    if let Some(sentence) = clock_sentence(
        &report.contain_actions,
        report.grants_removed(),
        report.access_ends_by,
    ) {
        out.push(capitalized(&sentence));
    }
    if let Some(note) = &report.on_premises_note {
        out.push(capitalized(note) + ".");
    }
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn status_word(a: &ContainAction) -> &'static str {
    match (a.action, a.status) {
        (_, ContainActionStatus::Failed) => "FAILED",
        (_, ContainActionStatus::Skipped) => "skipped",
        (_, ContainActionStatus::WouldDo) => "would do (dry run)",
        (_, ContainActionStatus::Restored) => "put back (verified)",
        (_, ContainActionStatus::AlreadyPresent) => "already as before: nothing to do",
        (ContainActionKind::RevokeSessions, ContainActionStatus::NotRestorable) => {
            "not restorable: the user signs in again"
        }
        (_, ContainActionStatus::NotRestorable) => "not restorable",
        (ContainActionKind::RemoveConsent, ContainActionStatus::Done) => "removed",
        (_, ContainActionStatus::Done) => "done",
    }
}

fn what(a: &ContainAction) -> String {
    match a.action {
        ContainActionKind::RevokeSessions => {
            "Sessions revoked (refresh tokens, browser sessions)".into()
        }
        ContainActionKind::DisableSignIn => "Sign-in blocked (accountEnabled false)".into(),
        ContainActionKind::ConfirmCompromised => {
            "Confirmed compromised (Entra ID Protection: risk high)".into()
        }
        ContainActionKind::RemoveConsent => format!(
            "App consent {} ({}) with scope \"{}\"",
            a.app_name.as_deref().unwrap_or("(unnamed app)"),
            a.client_id.as_deref().unwrap_or("?"),
            a.scope.as_deref().unwrap_or("")
        ),
    }
}

/// A restore's lines: what became of each identity action of the restored run.
pub(super) fn restore_lines(actions: &[ContainAction]) -> Vec<String> {
    action_lines(actions)
}

/// One line per action: what, its outcome, when it holds for every app.
pub(super) fn lines(report: &Report) -> Vec<String> {
    action_lines(&report.contain_actions)
}

fn action_lines(actions: &[ContainAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            let mut line = format!(
                "{}: {} at {}",
                what(a),
                status_word(a),
                a.at.format("%H:%M:%S UTC")
            );
            if let Some(by) = a.effective_by {
                line.push_str(&format!(
                    ", in effect for every app by {}",
                    by.format("%H:%M UTC")
                ));
            }
            for extra in [&a.note, &a.error].into_iter().flatten() {
                line.push_str(&format!(" — {extra}"));
            }
            if let Some(role) = &a.missing_role {
                line.push_str(&format!(" (the app needs the Graph permission {role})"));
            }
            one_line(&line)
        })
        .collect()
}
