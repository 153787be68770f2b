//! The victim's own mailbox (`"victim_mailbox": true`): the forwarding and inbox rules an
//! attacker leaves to keep reading mail, the grants to others on the mailbox, what a run did
//! about each and how the report shows it (`"victim_mailbox"` in the result, outside
//! `total_permissions_removed`).

use super::Grant;
use serde::{Deserialize, Serialize};

/// How old a permission-index snapshot must be for a grant absent from it to count as recent.
pub const RECENT_DELEGATE_DAYS: u32 = 30;

/// `ForwardingSmtpAddress`, `ForwardingAddress`, `DeliverToMailboxAndForward` of a mailbox,
/// as `Get-Mailbox` shows them (what `Set-Mailbox` takes back on restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxForwarding {
    /// `smtp:x@y`: an address outside the tenant, usually.
    pub forwarding_smtp_address: Option<String>,
    /// A recipient of the tenant (as Exchange names it).
    pub forwarding_address: Option<String>,
    pub deliver_to_mailbox_and_forward: bool,
}

impl MailboxForwarding {
    /// Mail leaves the mailbox.
    pub fn is_set(&self) -> bool {
        self.forwarding_smtp_address.is_some() || self.forwarding_address.is_some()
    }

    /// `smtp:x@y, deliver and forward`, for notes and logs.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [&self.forwarding_smtp_address, &self.forwarding_address]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if parts.is_empty() {
            parts.push("none".into());
        }
        if self.deliver_to_mailbox_and_forward {
            parts.push("a copy kept in the mailbox".into());
        }
        parts.join(", ")
    }
}

/// One inbox rule as `Get-InboxRule` shows it: its whole definition, kept in the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRule {
    /// `<mailbox>\<RuleIdentity>`: what `Disable-InboxRule -Identity` takes.
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_identity: Option<String>,
    pub name: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_as_attachment_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_to: Vec<String>,
    #[serde(default)]
    pub delete_message: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl InboxRule {
    /// Why the rule serves an attacker: it sends mail out, or hides it from the owner.
    pub fn threats(&self) -> Vec<String> {
        let mut why = Vec::new();
        let list = |a: &[String]| a.join(", ");
        if !self.forward_to.is_empty() {
            why.push(format!("forwards to {}", list(&self.forward_to)));
        }
        if !self.forward_as_attachment_to.is_empty() {
            why.push(format!(
                "forwards as attachment to {}",
                list(&self.forward_as_attachment_to)
            ));
        }
        if !self.redirect_to.is_empty() {
            why.push(format!("redirects to {}", list(&self.redirect_to)));
        }
        if self.delete_message {
            why.push("deletes messages".into());
        }
        // Shown as `Deleted Items` or `<mailbox>:\Deleted Items`.
        let folder = self
            .move_to_folder
            .as_deref()
            .and_then(|f| f.rsplit('\\').next())
            .map(str::trim);
        if folder.is_some_and(|f| f.eq_ignore_ascii_case("Deleted Items")) {
            why.push("moves messages to Deleted Items".into());
        }
        why
    }

    /// An enabled rule that forwards, redirects or deletes: the run disables it.
    pub fn is_offending(&self) -> bool {
        self.enabled && !self.threats().is_empty()
    }

    /// The id the run's audit records of this rule use.
    pub fn key(&self) -> &str {
        self.rule_identity.as_deref().unwrap_or(&self.identity)
    }
}

/// Whether a grant to someone else on the victim's mailbox is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegateAge {
    /// Absent from a permission-index snapshot at least [`RECENT_DELEGATE_DAYS`] old.
    Recent,
    /// No such snapshot: the grant may be old or new, so it is listed and left in place.
    Unknown,
}

/// A grant to someone else on the victim's mailbox (`trustee` is that someone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimDelegate {
    pub grant: Grant,
    pub age: DelegateAge,
}

/// What the run read on the victim's mailbox before changing anything: audited as the
/// before-state, reported, restored from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimSurvey {
    /// The mailbox's address, lowercase.
    pub mailbox: String,
    pub forwarding: MailboxForwarding,
    /// The enabled rules that forward, redirect or delete (hidden ones included).
    pub offending_rules: Vec<InboxRule>,
    /// How many rules the mailbox has in all (hidden ones included).
    pub rules_total: usize,
    /// Recent grants, and grants of unknown age, to others on the mailbox.
    pub delegates: Vec<VictimDelegate>,
    /// Whether a permission-index snapshot old enough to tell recent grants was there.
    pub baseline: bool,
    /// What could not be read: the run cannot succeed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One change a run made (or tried) on the victim's mailbox, as its audit record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum VictimChange {
    /// What was read before any change.
    Survey { survey: VictimSurvey },
    /// Forwarding cleared; `before` is what restore sets back.
    Forwarding {
        mailbox: String,
        before: MailboxForwarding,
    },
    /// An inbox rule disabled (never deleted); `rule` is its whole definition.
    InboxRule { mailbox: String, rule: InboxRule },
    /// A recent grant to someone else removed.
    Delegate { grant: Grant },
}

/// What happened to one finding on the victim's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimOutcome {
    /// Nothing was set: nothing to do.
    None,
    Cleared,
    Disabled,
    Removed,
    /// A recent grant listed, not removed (`remove_recent_delegates` is false).
    Listed,
    /// A grant of unknown age, left in place.
    LeftInPlace,
    /// Dry run: what the run would do.
    WouldClear,
    WouldDisable,
    WouldRemove,
    /// The change failed, or the re-read still shows it.
    Failed,
    /// The run was cancelled before the change.
    NotChanged,
    /// Restore: set back, or already as it was.
    Restored,
    AlreadyPresent,
}

impl VictimOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            VictimOutcome::None => "none",
            VictimOutcome::Cleared => "cleared",
            VictimOutcome::Disabled => "disabled",
            VictimOutcome::Removed => "removed",
            VictimOutcome::Listed => "listed",
            VictimOutcome::LeftInPlace => "left in place",
            VictimOutcome::WouldClear => "would clear",
            VictimOutcome::WouldDisable => "would disable",
            VictimOutcome::WouldRemove => "would remove",
            VictimOutcome::Failed => "FAILED",
            VictimOutcome::NotChanged => "not changed",
            VictimOutcome::Restored => "restored",
            VictimOutcome::AlreadyPresent => "already present",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardingEntry {
    pub status: VictimOutcome,
    /// The forwarding as the run found it.
    pub found: MailboxForwarding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRuleEntry {
    pub identity: String,
    pub name: String,
    /// Why it was disabled: `forwards to x@y`, `deletes messages`, ...
    pub threats: Vec<String>,
    pub status: VictimOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegateEntry {
    /// `FullAccess`, `SendAs`, `SendOnBehalf`, `CalendarDelegate`.
    pub permission: String,
    pub trustee: String,
    pub access_level: String,
    pub age: DelegateAge,
    pub status: VictimOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `"victim_mailbox"` in a run's result (revocation or restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimMailboxReport {
    pub mailbox: String,
    pub forwarding: Option<ForwardingEntry>,
    pub inbox_rules: Vec<InboxRuleEntry>,
    pub recent_delegates: Vec<DelegateEntry>,
    /// Errors of this part: any makes the run unsuccessful.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl VictimMailboxReport {
    /// Nothing failed and nothing was left unread.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
            && self
                .forwarding
                .as_ref()
                .is_none_or(|f| f.status != VictimOutcome::Failed)
            && self
                .inbox_rules
                .iter()
                .all(|r| r.status != VictimOutcome::Failed)
            && self
                .recent_delegates
                .iter()
                .all(|d| d.status != VictimOutcome::Failed)
    }

    /// One line per failure, for the run's `errors`.
    pub fn failures(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("victim mailbox {}: {e}", self.mailbox))
            .collect();
        if let Some(f) = self
            .forwarding
            .as_ref()
            .filter(|f| f.status == VictimOutcome::Failed)
        {
            lines.push(format!(
                "victim mailbox {}: forwarding ({}) not cleared: {}",
                self.mailbox,
                f.found.describe(),
                f.error.as_deref().unwrap_or("unknown error")
            ));
        }
        for r in self
            .inbox_rules
            .iter()
            .filter(|r| r.status == VictimOutcome::Failed)
        {
            lines.push(format!(
                "victim mailbox {}: inbox rule '{}' not changed: {}",
                self.mailbox,
                r.name,
                r.error.as_deref().unwrap_or("unknown error")
            ));
        }
        for d in self
            .recent_delegates
            .iter()
            .filter(|d| d.status == VictimOutcome::Failed)
        {
            lines.push(format!(
                "victim mailbox {}: {} of {} not changed: {}",
                self.mailbox,
                d.permission,
                d.trustee,
                d.error.as_deref().unwrap_or("unknown error")
            ));
        }
        lines
    }
}

impl DelegateEntry {
    pub fn of(d: &VictimDelegate, status: VictimOutcome, error: Option<String>) -> DelegateEntry {
        DelegateEntry {
            permission: d.grant.right.report_name().to_string(),
            trustee: d.grant.trustee.clone(),
            access_level: d
                .grant
                .access_level()
                .unwrap_or_else(|| d.grant.access_rights.join(", ")),
            age: d.age,
            status,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(edit: impl FnOnce(&mut InboxRule)) -> InboxRule {
        let mut r = InboxRule {
            identity: "john\\1".into(),
            name: "r".into(),
            enabled: true,
            ..InboxRule::default()
        };
        edit(&mut r);
        r
    }

    #[test]
    fn a_rule_offends_when_it_sends_mail_out_or_hides_it_and_is_enabled() {
        let forwards = rule(|r| r.forward_to = vec!["x@evil.example".into()]);
        assert_eq!(forwards.threats(), ["forwards to x@evil.example"]);
        assert!(forwards.is_offending());
        assert!(rule(|r| r.redirect_to = vec!["y@evil.example".into()]).is_offending());
        assert!(rule(|r| r.forward_as_attachment_to = vec!["z@x".into()]).is_offending());
        assert!(rule(|r| r.delete_message = true).is_offending());
        let bin = rule(|r| r.move_to_folder = Some("john:\\Deleted Items".into()));
        assert_eq!(bin.threats(), ["moves messages to Deleted Items"]);
        assert!(!rule(|r| r.move_to_folder = Some("Newsletters".into())).is_offending());
        let off = rule(|r| {
            r.enabled = false;
            r.delete_message = true;
        });
        assert!(!off.is_offending(), "a disabled rule is left alone");
    }

    #[test]
    fn forwarding_is_set_by_either_address_and_described_for_the_note() {
        let mut f = MailboxForwarding::default();
        assert!(!f.is_set());
        assert_eq!(f.describe(), "none");
        f.forwarding_address = Some("Jane Doe".into());
        f.deliver_to_mailbox_and_forward = true;
        assert!(f.is_set());
        assert_eq!(f.describe(), "Jane Doe, a copy kept in the mailbox");
    }
}
