//! The lines of the victim-mailbox section (`victim_mailbox` runs), for the revocation and
//! restore reports alike.

use super::clean::one_line;
use crate::model::{DelegateAge, VictimMailboxReport, VictimOutcome};

pub const VICTIM_MAILBOX: &str =
    "The user's own mailbox (forwarding, inbox rules, recent delegates)";

/// Whether the section has a failure to show in red.
pub(super) fn failed(section: &VictimMailboxReport) -> bool {
    !section.succeeded()
}

/// One headline sentence: what was done on the user's own mailbox.
pub(super) fn summary(section: &VictimMailboxReport) -> String {
    if !section.succeeded() {
        return format!(
            "The user's own mailbox was NOT fully contained (see \"{VICTIM_MAILBOX}\")."
        );
    }
    let forwarding = match section.forwarding.as_ref().map(|f| f.status) {
        None | Some(VictimOutcome::None) => "no forwarding was set".to_string(),
        Some(status) => format!("forwarding {}", status.as_str()),
    };
    let rules = match section.inbox_rules.first() {
        None => "no inbox rule forwards, redirects or deletes".to_string(),
        Some(r) => format!(
            "{} inbox rule(s) {}",
            section.inbox_rules.len(),
            r.status.as_str()
        ),
    };
    format!(
        "The user's own mailbox: {forwarding}, {rules}, {} delegate(s) to others listed (see \"{VICTIM_MAILBOX}\").",
        section.recent_delegates.len()
    )
}

pub(super) fn lines(section: &VictimMailboxReport) -> Vec<String> {
    let mailbox = if section.mailbox.is_empty() {
        "(not read)".to_string()
    } else {
        section.mailbox.clone()
    };
    let mut out = vec![one_line(&format!("Mailbox: {mailbox}"))];
    let error = |e: &Option<String>| e.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
    if let Some(f) = &section.forwarding {
        out.push(one_line(&match f.status {
            VictimOutcome::None => "Forwarding: none set".to_string(),
            status => format!(
                "Forwarding {} — {}{}",
                status.as_str(),
                f.found.describe(),
                error(&f.error)
            ),
        }));
    }
    if section.inbox_rules.is_empty() && !section.mailbox.is_empty() {
        out.push("Inbox rules that forward, redirect or delete: none".into());
    }
    for r in &section.inbox_rules {
        out.push(one_line(&format!(
            "Inbox rule '{}' {} — {}{}",
            r.name,
            r.status.as_str(),
            r.threats.join("; "),
            error(&r.error)
        )));
    }
    for d in &section.recent_delegates {
        let age = match d.age {
            DelegateAge::Recent => "recent",
            DelegateAge::Unknown => "age unknown",
        };
        out.push(one_line(&format!(
            "{} for {} ({}, {age}) {}{}",
            d.permission,
            d.trustee,
            d.access_level,
            d.status.as_str(),
            error(&d.error)
        )));
    }
    out.extend(
        section
            .errors
            .iter()
            .map(|e| one_line(&format!("Error: {e}"))),
    );
    out
}
