//! `Get-InboxRule`, `Disable-InboxRule` and `Enable-InboxRule`, and the forwarding that
//! `Get-Mailbox` shows and `Set-Mailbox` changes: what an attacker sets on a compromised
//! mailbox to keep reading its mail.

use serde::Serialize;
use serde_json::Value;

use crate::cmdlets::{ensure_writable, mailbox, recipient, CmdletResult, Output, Params};
use crate::directory::{Directory, Person, Principal};
use crate::exo::ExoError;
use crate::fixture::fnv1a;
use crate::state::{InboxRule, MailboxForwarding};
use crate::Sim;

/// `RuleIdentity`: a stable 64-bit number per mailbox and rule name.
pub(crate) fn rule_identity(upn: &str, name: &str) -> String {
    let key = format!("{}\u{0}{}", upn.to_lowercase(), name);
    (fnv1a(key.as_bytes()) >> 1).to_string()
}

/// `smtp:x@y` → `x@y` (`Get-Mailbox` prints the prefix; `Set-Mailbox` takes either).
pub(crate) fn without_smtp_prefix(address: &str) -> String {
    let a = address.trim();
    match a.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("smtp:") => a[5..].to_string(),
        _ => a.to_string(),
    }
}

/// How a rule's recipient list prints an address: `"x@y" [SMTP:x@y]`.
fn shown_recipient(address: &str) -> String {
    format!("\"{address}\" [SMTP:{address}]")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InboxRuleItem {
    identity: String,
    rule_identity: String,
    name: String,
    enabled: bool,
    priority: u32,
    forward_to: Option<Vec<String>>,
    forward_as_attachment_to: Option<Vec<String>>,
    redirect_to: Option<Vec<String>>,
    delete_message: bool,
    move_to_folder: Option<String>,
    stop_processing_rules: bool,
    mailbox_owner_id: String,
    description: String,
}

fn listed(addresses: &[String]) -> Option<Vec<String>> {
    (!addresses.is_empty()).then(|| addresses.iter().map(|a| shown_recipient(a)).collect())
}

impl InboxRuleItem {
    fn new(mailbox: &Person, rule: &InboxRule) -> InboxRuleItem {
        InboxRuleItem {
            identity: format!("{}\\{}", mailbox.name, rule.rule_identity),
            rule_identity: rule.rule_identity.clone(),
            name: rule.name.clone(),
            enabled: rule.enabled,
            priority: rule.priority,
            forward_to: listed(&rule.forward_to),
            forward_as_attachment_to: listed(&rule.forward_as_attachment_to),
            redirect_to: listed(&rule.redirect_to),
            delete_message: rule.delete_message,
            move_to_folder: rule.move_to_folder.clone(),
            stop_processing_rules: false,
            mailbox_owner_id: mailbox.name.clone(),
            description: describe(rule),
        }
    }
}

/// The `Description` Exchange writes: the rule's actions in words.
fn describe(rule: &InboxRule) -> String {
    let mut actions = Vec::new();
    let join = |a: &[String]| {
        a.iter()
            .map(|x| shown_recipient(x))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if !rule.forward_to.is_empty() {
        actions.push(format!("forward the message to {}", join(&rule.forward_to)));
    }
    if !rule.forward_as_attachment_to.is_empty() {
        actions.push(format!(
            "forward the message as an attachment to {}",
            join(&rule.forward_as_attachment_to)
        ));
    }
    if !rule.redirect_to.is_empty() {
        actions.push(format!(
            "redirect the message to {}",
            join(&rule.redirect_to)
        ));
    }
    if let Some(folder) = &rule.move_to_folder {
        actions.push(format!("move the message to folder '{folder}'"));
    }
    if rule.delete_message {
        actions.push("delete the message".to_string());
    }
    format!(
        "If the message:\r\n\tApplies to all messages\r\nTake the following actions:\r\n\t{}\r\n",
        actions.join("\r\n\tand ")
    )
}

/// The mailbox a rule cmdlet is about: `-Mailbox`, else the part of `-Identity` before `\`.
fn rule_mailbox<'a>(directory: &'a Directory, params: &Params) -> Result<&'a Person, ExoError> {
    if let Some(m) = params.text("Mailbox")? {
        return mailbox(directory, &m);
    }
    match params.text("Identity")?.as_deref().and_then(|i| i.split_once('\\')) {
        Some((owner, _)) => mailbox(directory, owner),
        None => Err(ExoError::binding(
            "The Mailbox parameter is required when Identity does not name the mailbox (<mailbox>\\<rule>).",
        )),
    }
}

/// Which of `rules` `identity` names: `<mailbox>\<RuleIdentity>`, the RuleIdentity or the name.
fn find_rule(rules: &[InboxRule], identity: &str) -> Result<usize, ExoError> {
    let wanted = identity
        .rsplit_once('\\')
        .map_or(identity, |(_, r)| r)
        .trim();
    let hits: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rule_identity == wanted || r.name.eq_ignore_ascii_case(wanted))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(ExoError::not_found(identity)),
        _ => Err(ExoError::ambiguous(identity)),
    }
}

pub(crate) fn get_inbox_rule(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let owner = rule_mailbox(directory, params)?;
    if sim.unreadable(&owner.upn) {
        return Err(ExoError::unreadable(&owner.upn));
    }
    let include_hidden = params.switch("IncludeHidden")?;
    let state = sim.state();
    let rules = &state.visible(&owner.upn).inbox_rules;
    let chosen: Vec<&InboxRule> = match params.text("Identity")? {
        Some(identity) => vec![&rules[find_rule(rules, &identity)?]],
        None => rules
            .iter()
            .filter(|r| include_hidden || !r.hidden)
            .collect(),
    };
    Ok(Output::items(
        chosen.into_iter().map(|r| InboxRuleItem::new(owner, r)),
    ))
}

pub(crate) fn disable_inbox_rule(sim: &Sim, params: &Params) -> CmdletResult {
    set_enabled(sim, params, false)
}

pub(crate) fn enable_inbox_rule(sim: &Sim, params: &Params) -> CmdletResult {
    set_enabled(sim, params, true)
}

fn set_enabled(sim: &Sim, params: &Params, enabled: bool) -> CmdletResult {
    let directory = &sim.directory;
    let owner = rule_mailbox(directory, params)?;
    ensure_writable(sim, Principal::Person(owner))?;
    let identity = params.required("Identity")?;
    let mut state = sim.state();
    let at = find_rule(&state.grants_of(&owner.upn).inbox_rules, &identity)?;
    let changed = state.write(&owner.upn, |grants| {
        let rule = &mut grants.inbox_rules[at];
        let changed = rule.enabled != enabled;
        rule.enabled = enabled;
        changed
    });
    if !changed {
        return Ok(Output::warning(format!(
            "WARNING: The command completed successfully but no settings of '{}\\{}' have been modified.",
            owner.name, identity
        )));
    }
    Ok(Output::default())
}

/// The forwarding `Set-Mailbox` was given (`None` for a parameter it was not given; JSON
/// `null` or `""` clears).
pub(crate) struct ForwardingChange {
    smtp_address: Option<Option<String>>,
    address: Option<Option<String>>,
    deliver_and_forward: Option<bool>,
}

impl ForwardingChange {
    pub(crate) fn of(directory: &Directory, params: &Params) -> Result<ForwardingChange, ExoError> {
        let text = |name: &str| -> Result<Option<Option<String>>, ExoError> {
            Ok(match params.given(name) {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::String(s)) if s.trim().is_empty() => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => {
                    return Err(ExoError::binding(format!(
                        "Cannot bind parameter '{name}': a single address or $null is expected."
                    )))
                }
            })
        };
        let smtp_address = match text("ForwardingSmtpAddress")? {
            Some(Some(a)) => {
                let a = without_smtp_prefix(&a).to_lowercase();
                if !a.contains('@') {
                    return Err(ExoError::binding(format!(
                        "Cannot bind parameter 'ForwardingSmtpAddress'. Cannot convert value \"{a}\" to type \"Microsoft.Exchange.Data.ProxyAddress\"."
                    )));
                }
                Some(Some(a))
            }
            other => other,
        };
        let address = match text("ForwardingAddress")? {
            Some(Some(r)) => Some(Some(recipient(directory, &r)?.key().to_string())),
            other => other,
        };
        let deliver_and_forward = match params.given("DeliverToMailboxAndForward") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err(ExoError::binding(
                "Cannot bind parameter 'DeliverToMailboxAndForward': true or false is expected.",
            )),
        };
        Ok(ForwardingChange {
            smtp_address,
            address,
            deliver_and_forward,
        })
    }

    /// Applies the change; true when it changed something.
    pub(crate) fn apply(self, forwarding: &mut MailboxForwarding) -> bool {
        let before = forwarding.clone();
        if let Some(a) = self.smtp_address {
            forwarding.smtp_address = a;
        }
        if let Some(a) = self.address {
            forwarding.address = a;
        }
        if let Some(b) = self.deliver_and_forward {
            forwarding.deliver_to_mailbox_and_forward = b;
        }
        *forwarding != before
    }
}
