//! The report as people read it: a headline that says which case happened, the summary facts,
//! the grants table, and the sections after it. The PSA note, the text attachment,
//! `--format table` and the HTML email all render this one view, so no section can be in one
//! and missing from another. Every text taken from the request or the tenant is put on one
//! line here ([`one_line`]), once for all renderings.

use super::clean::one_line;
use crate::model::{IndirectAccess, MailboxScope, NotCheckedReason, PermissionType, Report};
use std::collections::BTreeMap;

/// Which of the cases the report is, in the order a reader needs to know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every checked grant is gone on re-read, nothing is indirect, everything was checked.
    AllRemoved,
    /// Every direct grant is gone on re-read, but access remains through a group or
    /// inheritance.
    AccessRemains,
    /// What was checked is gone on re-read, but the request left part of the access out.
    PartlyChecked,
    /// Something failed, is still present, or could not be checked.
    ActionNeeded,
    /// A dry run that completed: nothing was changed.
    DryRun,
    /// The run stopped before its end (interrupted, or its process gone): nothing is
    /// verified, and it must be resumed.
    Unfinished,
    /// The removal (or dry run) succeeded, but a notification could not be delivered.
    NotNotified,
}

impl Outcome {
    pub fn of(report: &Report) -> Outcome {
        match Outcome::of_removal(report) {
            Outcome::ActionNeeded => Outcome::ActionNeeded,
            Outcome::Unfinished => Outcome::Unfinished,
            _ if !report.notification_errors.is_empty() => Outcome::NotNotified,
            removal => removal,
        }
    }

    /// The case of the removal alone, whatever became of the notifications.
    fn of_removal(report: &Report) -> Outcome {
        if !report.verification.verified && !report.dry_run {
            Outcome::Unfinished
        } else if !report.removal_succeeded() {
            Outcome::ActionNeeded
        } else if report.dry_run {
            Outcome::DryRun
        } else if !report.indirect_access.is_empty() {
            Outcome::AccessRemains
        } else if partial(report) {
            Outcome::PartlyChecked
        } else {
            Outcome::AllRemoved
        }
    }
}

/// How a section or row should catch the eye.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Bad,
    Warn,
    Good,
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headline {
    pub outcome: Outcome,
    /// One line: the case, in capitals first (`SUCCESS — …`, `ACTION NEEDED — …`).
    pub title: String,
    /// What it means and what to do, one sentence a line.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub mailbox: String,
    pub shared: bool,
    pub permission: String,
    pub access: String,
    pub result: String,
    pub tone: Tone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: &'static str,
    pub tone: Tone,
    pub lines: Vec<String>,
}

/// The one view of a report that every human-readable form renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportView {
    pub headline: Headline,
    /// Labelled summary lines (`User`, `Company`, `Scope`, …), in display order.
    pub facts: Vec<(&'static str, String)>,
    pub grants_title: &'static str,
    pub grants: Vec<GrantRow>,
    /// Said instead of the table when there are no rows.
    pub no_grants: &'static str,
    /// The sections after the table that have something to say, in display order.
    pub sections: Vec<Section>,
}

pub const STILL_PRESENT: &str = "Still present after removal";
pub const NOT_YET_REMOVED: &str = "Not removed yet (may still be present)";
pub const INDIRECT: &str = "Access through a group or inheritance (not removable on the mailbox)";
pub const NOT_CHECKED: &str = "Not checked";
pub const SKIPPED: &str = "Skipped";
pub const ERRORS: &str = "Errors";

impl ReportView {
    pub fn of(report: &Report) -> ReportView {
        let grants = rows(report);
        let sections = [
            Section {
                title: if report.verification.verified {
                    STILL_PRESENT
                } else {
                    NOT_YET_REMOVED
                },
                tone: Tone::Bad,
                // On a dry run the re-read is the tenant as it is: the table already lists it.
                lines: if report.dry_run {
                    Vec::new()
                } else {
                    report
                        .verification
                        .remaining
                        .iter()
                        .map(|r| {
                            let shared = if r.shared { " (shared)" } else { "" };
                            let permission = permission_on(
                                &r.permission,
                                r.folder.as_deref(),
                                r.calendar.as_deref(),
                            );
                            one_line(&format!("{} {permission}{shared}", r.mailbox))
                        })
                        .collect()
                },
            },
            Section {
                title: INDIRECT,
                tone: Tone::Warn,
                lines: report
                    .indirect_access
                    .iter()
                    .map(|i| one_line(&format!("{} {} via {}", i.mailbox, i.permission, i.via)))
                    .collect(),
            },
            Section {
                title: NOT_CHECKED,
                tone: Tone::Warn,
                lines: report
                    .not_checked
                    .iter()
                    .map(|n| {
                        let name = type_name(n.permission_type);
                        one_line(&match (n.reason, &n.detail) {
                            (NotCheckedReason::OutOfScope, _) => {
                                format!("{name}: left out of this request; not looked at")
                            }
                            (NotCheckedReason::CannotCheck, Some(d)) => {
                                format!("{name}: could not be checked — {d}")
                            }
                            (NotCheckedReason::CannotCheck, None) => {
                                format!("{name}: could not be checked in this tenant")
                            }
                        })
                    })
                    .collect(),
            },
            Section {
                title: SKIPPED,
                tone: Tone::Plain,
                lines: report
                    .skipped
                    .iter()
                    .map(|k| one_line(&format!("{} {}: {}", k.mailbox, k.permission, k.reason)))
                    .collect(),
            },
            Section {
                title: super::contain::CONTAIN_ACTIONS,
                tone: if super::contain::failed(report) {
                    Tone::Bad
                } else {
                    Tone::Plain
                },
                lines: super::contain::lines(report),
            },
            Section {
                title: super::victim::VICTIM_MAILBOX,
                tone: match &report.victim_mailbox {
                    Some(v) if super::victim::failed(v) => Tone::Bad,
                    _ => Tone::Warn,
                },
                lines: report
                    .victim_mailbox
                    .as_ref()
                    .map(super::victim::lines)
                    .unwrap_or_default(),
            },
            Section {
                title: ERRORS,
                tone: Tone::Bad,
                lines: report.errors.iter().map(|e| one_line(e)).collect(),
            },
        ]
        .into_iter()
        .filter(|s| !s.lines.is_empty())
        .collect();
        ReportView {
            headline: headline(report),
            facts: facts(report),
            grants_title: "Grants",
            no_grants: if partial_types(report) {
                "No direct grants of the checked types were found."
            } else {
                "No direct grants were found."
            },
            grants,
            sections,
        }
    }
}

/// The name people read for a permission type.
pub fn type_name(t: PermissionType) -> &'static str {
    match t {
        PermissionType::FullAccess => "Full Access",
        PermissionType::SendAs => "Send As",
        PermissionType::SendOnBehalf => "Send on Behalf",
        PermissionType::Calendar => "calendar",
        PermissionType::Folder => "folder permissions",
    }
}

/// A report `permission` with the folder or secondary calendar it is on:
/// `FolderPermission on \Inbox`, `CalendarDelegate on calendar "Board meetings"`.
fn permission_on(permission: &str, folder: Option<&str>, calendar: Option<&str>) -> String {
    match (folder, calendar) {
        (Some(folder), _) => format!("{permission} on {folder}"),
        (None, Some(calendar)) => format!("{permission} on calendar \"{calendar}\""),
        (None, None) => permission.to_string(),
    }
}

/// "a", "a and b", "a, b and c".
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn partial_types(report: &Report) -> bool {
    !report.out_of_scope().is_empty()
}

/// The request left something out: a permission type, the unnamed mailboxes, or the shared
/// mailboxes it held grants on.
fn partial(report: &Report) -> bool {
    partial_types(report)
        || report.scope.mailboxes != MailboxScope::All
        || (!report.scope.shared_mailboxes && !report.skipped.is_empty())
}

/// Grants a dry run would remove.
pub fn would_remove(report: &Report) -> usize {
    report
        .entries()
        .filter(|(_, _, e)| e.would_remove == Some(true))
        .count()
}

fn rows(report: &Report) -> Vec<GrantRow> {
    report
        .entries()
        .map(|(mailbox, shared, e)| {
            let (result, tone) = match (&e.error, e.removed, e.would_remove) {
                (Some(err), _, _) => (format!("FAILED: {err}"), Tone::Bad),
                (None, true, _) if e.note.is_some() => {
                    ("removed (already gone)".to_string(), Tone::Good)
                }
                (None, true, _) => ("removed".to_string(), Tone::Good),
                (None, false, Some(true)) => ("would remove".to_string(), Tone::Plain),
                (None, false, _) => ("not removed".to_string(), Tone::Bad),
            };
            let access = match &e.access_rights {
                Some(rights) => [rights.as_slice(), e.sharing_permission_flags.as_slice()]
                    .concat()
                    .join(", "),
                None => e.access_level.clone().unwrap_or_default(),
            };
            GrantRow {
                mailbox: one_line(mailbox),
                shared,
                permission: one_line(&permission_on(
                    &e.permission,
                    e.folder.as_deref(),
                    e.calendar.as_deref(),
                )),
                access: one_line(&access),
                result: one_line(&result),
                tone,
            }
        })
        .collect()
}

fn user_name(report: &Report) -> String {
    let s = &report.removal_summary;
    one_line(if s.user_display_name.trim().is_empty() {
        &s.user_email
    } else {
        &s.user_display_name
    })
}

fn headline(report: &Report) -> Headline {
    let outcome = Outcome::of(report);
    let (mut title, mut lines) = removal_headline(report, Outcome::of_removal(report));
    if outcome == Outcome::NotNotified {
        let not_delivered = not_delivered(report);
        let what = if report.dry_run {
            "the dry run"
        } else {
            "the removal"
        };
        let case = title.split_once(" — ").map_or(title.as_str(), |(_, c)| c);
        title = format!(
            "NOT NOTIFIED — {what} succeeded ({case}), but {not_delivered} could not be delivered"
        );
        lines.push(format!(
            "Nothing needs to be run again: only {not_delivered} could not be delivered (see \"{ERRORS}\")."
        ));
    }
    lines.extend(indirect_advice(report));
    lines.extend(scope_advice(report));
    lines.extend(super::contain::summary(report));
    lines.extend(report.victim_mailbox.as_ref().map(super::victim::summary));
    Headline {
        outcome,
        title,
        lines: lines.iter().map(|l| one_line(l)).collect(),
    }
}

/// The notifications that could not be delivered, each named once: "the Teams post and the
/// email".
pub fn not_delivered(report: &Report) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for n in &report.notification_errors {
        if !labels.contains(&n.channel.label()) {
            labels.push(n.channel.label());
        }
    }
    and_list(&labels)
}

/// The title and first lines for the removal's own case.
fn removal_headline(report: &Report, outcome: Outcome) -> (String, Vec<String>) {
    let removed = report.removal_summary.total_permissions_removed as usize;
    let would = would_remove(report);
    match outcome {
        Outcome::AllRemoved => (
            "SUCCESS — all access removed and verified".to_string(),
            vec![format!(
                "{} removed; a re-read of the tenant found none left, and no access through a group or inheritance.",
                plural(removed, "direct grant", "direct grants")
            )],
        ),
        Outcome::AccessRemains => (
            "ACCESS REMAINS — direct grants removed, but access remains through a group or inheritance"
                .to_string(),
            vec![format!(
                "{} removed and verified; {} can still reach these mailboxes another way.",
                plural(removed, "direct grant", "direct grants"),
                user_name(report)
            )],
        ),
        Outcome::PartlyChecked => (
            "PARTIAL — what was checked is removed and verified; not everything was checked"
                .to_string(),
            vec![format!(
                "{} removed; a re-read found none left of what was checked.",
                plural(removed, "direct grant", "direct grants")
            )],
        ),
        Outcome::DryRun => (
            format!(
                "DRY RUN — nothing was changed; would remove {}",
                plural(would, "grant", "grants")
            ),
            vec![format!(
                "A live run would remove {}; this run only read the tenant.",
                plural(would, "direct grant", "direct grants")
            )],
        ),
        Outcome::Unfinished => {
            let left = report.verification.remaining.len();
            let mut lines = vec![format!(
                "{} removed so far; nothing has been verified: the run stopped before re-reading the tenant.",
                plural(removed, "direct grant", "direct grants")
            )];
            if left > 0 {
                lines.push(format!(
                    "{} not removed yet (see \"{NOT_YET_REMOVED}\").",
                    plural(left, "direct grant is", "direct grants are")
                ));
            }
            lines.push(format!(
                "Resume it to finish and verify: revoke365 resume {}",
                one_line(&report.run_id)
            ));
            (
                "UNFINISHED — the run stopped before its end; access may remain".to_string(),
                lines,
            )
        }
        Outcome::ActionNeeded => {
            let title = if report.dry_run {
                "ACTION NEEDED — the dry run could not check everything"
            } else {
                "ACTION NEEDED — the removal failed: not everything was removed or verified"
            };
            let mut lines = Vec::new();
            let left = report.verification.remaining.len();
            if !report.dry_run && left > 0 {
                lines.push(format!(
                    "{} still present after removal (see \"{STILL_PRESENT}\").",
                    plural(left, "direct grant is", "direct grants are")
                ));
            }
            if !report.errors.is_empty() {
                lines.push(format!(
                    "{} (see \"{ERRORS}\").",
                    plural(report.errors.len(), "error", "errors")
                ));
            }
            if !report.dry_run {
                lines.push(format!(
                    "{} removed and verified.",
                    plural(removed, "direct grant", "direct grants")
                ));
            }
            (title.to_string(), lines)
        }
        Outcome::NotNotified => unreachable!("the removal's own case is never NotNotified"),
    }
}

/// What closes access the run could not remove on the mailbox: leaving each group, and
/// removing inherited permissions where they are set.
fn indirect_advice(report: &Report) -> Vec<String> {
    let who = user_name(report);
    let mut by_via: BTreeMap<&str, Vec<&IndirectAccess>> = BTreeMap::new();
    for i in &report.indirect_access {
        by_via.entry(i.via.as_str()).or_default().push(i);
    }
    by_via
        .into_iter()
        .map(|(via, grants)| {
            let on = and_list(&grants_on(&grants));
            match via.strip_prefix("group ") {
                Some(group) => {
                    format!("Remove {who} from \"{group}\" to close it: {on}.")
                }
                None if via == "inheritance" => format!(
                    "Inherited access ({on}) is set above the mailbox (database or organization): an Exchange admin must remove it there."
                ),
                None => format!("Access via {via} ({on}) must be removed where it is set."),
            }
        })
        .collect()
}

/// `mailbox (Full Access, Send As)` for each mailbox, in order.
fn grants_on(grants: &[&IndirectAccess]) -> Vec<String> {
    let mut by_mailbox: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in grants {
        by_mailbox
            .entry(g.mailbox.as_str())
            .or_default()
            .push(permission_name(&g.permission));
    }
    by_mailbox
        .into_iter()
        .map(|(m, p)| format!("{m} ({})", p.join(", ")))
        .collect()
}

/// People's name for a report `permission` (`FullAccess` → Full Access).
fn permission_name(report_name: &str) -> &str {
    PermissionType::ALL
        .into_iter()
        .find(|t| t.report_name() == report_name)
        .map(type_name)
        .unwrap_or(report_name)
}

/// What the request left out, said plainly.
fn scope_advice(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    let out = report.out_of_scope();
    if !out.is_empty() {
        let checked: Vec<&str> = report
            .scope
            .permission_types
            .iter()
            .map(|t| type_name(*t))
            .collect();
        let left: Vec<&str> = out.iter().map(|t| type_name(*t)).collect();
        lines.push(format!(
            "Only {} {} checked: {} {} left out of this request and may remain.",
            and_list(&checked),
            if checked.len() == 1 { "was" } else { "were" },
            and_list(&left),
            if left.len() == 1 { "was" } else { "were" },
        ));
    }
    if let MailboxScope::Named(named) = &report.scope.mailboxes {
        lines.push(format!(
            "Only {} checked ({}): access to other mailboxes was not looked at.",
            plural(named.len(), "named mailbox was", "named mailboxes were"),
            named.join(", ")
        ));
    }
    if !report.scope.shared_mailboxes && !report.skipped.is_empty() {
        lines.push(format!(
            "Shared mailboxes were left alone: {} on them remain (see \"{SKIPPED}\").",
            plural(report.skipped.len(), "grant", "grants")
        ));
    }
    lines
}

fn facts(report: &Report) -> Vec<(&'static str, String)> {
    let s = &report.removal_summary;
    let mut facts = vec![
        (
            "User",
            one_line(&format!("{} <{}>", s.user_display_name, s.user_email)),
        ),
        ("Company", one_line(&s.company)),
        ("Run", one_line(&report.run_id)),
    ];
    if let Some(t) = &report.ticket_id {
        facts.push(("Ticket", one_line(t)));
    } else if report.no_ticket.is_some() {
        facts.push(("Ticket", "none: this company has no PSA".to_string()));
    }
    for (label, value) in report.request_context.lines() {
        facts.push((label, one_line(value)));
    }
    if !report.not_mailed.is_empty() {
        facts.push((
            "Not mailed (domain not allowed)",
            one_line(&report.not_mailed.join(", ")),
        ));
    }
    facts.push(("Scope", scope_line(report)));
    if report.dry_run {
        facts.push((
            "Would remove",
            plural(would_remove(report), "grant", "grants"),
        ));
        facts.push(("Found now (nothing changed)", counts_line(report)));
    } else {
        facts.push(("Grants removed", s.total_permissions_removed.to_string()));
        if report.verification.verified {
            facts.push(("Verification (re-read)", counts_line(report)));
        } else {
            facts.push(("Verification", "not done: the run stopped before it".into()));
        }
    }
    facts
}

fn scope_line(report: &Report) -> String {
    let scope = &report.scope;
    let types: Vec<&str> = scope
        .permission_types
        .iter()
        .map(|t| type_name(*t))
        .collect();
    let mailboxes = match &scope.mailboxes {
        MailboxScope::All => "all mailboxes".to_string(),
        MailboxScope::Named(m) => format!("only {}", m.join(", ")),
    };
    let shared = if scope.shared_mailboxes {
        "shared mailboxes included"
    } else {
        "shared mailboxes left alone"
    };
    one_line(&format!("{}; {mailboxes}; {shared}", and_list(&types)))
}

/// Per-type counts from the re-read; a type that was not checked says so instead of 0.
fn counts_line(report: &Report) -> String {
    let v = &report.verification;
    let count = |t: PermissionType, n: u32| {
        let name = type_name(t);
        match report.not_checked.iter().find(|c| c.permission_type == t) {
            Some(c) if c.reason == NotCheckedReason::OutOfScope => format!("{name} not checked"),
            Some(_) => format!("{name} could not be checked"),
            None => format!("{name} {n}"),
        }
    };
    let shared = if report.scope.shared_mailboxes {
        format!("shared mailboxes {}", v.remaining_shared_mailboxes)
    } else {
        "shared mailboxes left alone".to_string()
    };
    let verdict = if report.dry_run || !v.all_permissions_cleared {
        ""
    } else if partial(report) || !report.not_checked.is_empty() {
        " — none left of what was checked"
    } else if !report.indirect_access.is_empty() {
        " — no direct grants left"
    } else {
        " — all cleared"
    };
    format!(
        "{}, {}, {}, {}, {}, {shared}{verdict}",
        count(PermissionType::FullAccess, v.remaining_full_access),
        count(PermissionType::SendAs, v.remaining_send_as),
        count(PermissionType::SendOnBehalf, v.remaining_send_on_behalf),
        count(PermissionType::Calendar, v.remaining_calendar_delegates),
        count(PermissionType::Folder, v.remaining_folder_permissions),
    )
}
