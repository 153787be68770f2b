//! The typed state snapshot: the same JSON as `GET /_sim/state`, for tests.
//!
//! Users in grant lists are canonical keys: the lowercase UPN of a person, the
//! name of a group, the lowercase address of a contact or of an outside
//! calendar grantee, anything else (an orphaned SID, `NT AUTHORITY\SELF`)
//! verbatim.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fixture::ShownAs;

/// One Full Access entry on a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FullAccessGrant {
    pub user: String,
    pub inherited: bool,
    pub deny: bool,
    pub access_rights: Vec<String>,
    /// How Exchange prints `User` for this entry (absent: the canonical key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_as: Option<ShownAs>,
}

/// One Send As entry on a recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SendAsGrant {
    pub user: String,
    pub deny: bool,
    pub inherited: bool,
    /// How Exchange prints `Trustee` for this entry (absent: the canonical key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_as: Option<ShownAs>,
    /// `Get-RecipientPermission -Trustee` does not return this entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trustee_lookup_misses: bool,
}

/// One calendar permission on a mailbox's default calendar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CalendarGrant {
    pub user: String,
    /// Exchange role name: `Editor`, `Reviewer`, ...
    pub access_rights: String,
    pub delegate: bool,
    /// The `CanViewPrivateItems` sharing flag (a delegate who sees private appointments).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub can_view_private_items: bool,
}

/// One folder permission entry on a folder other than the default calendar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FolderGrant {
    pub user: String,
    /// A role (`Reviewer`) or individual rights (`ReadItems`, `CreateItems`, ...).
    pub access_rights: Vec<String>,
    /// `Delegate`, `CanViewPrivateItems` (calendar folders only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_permission_flags: Vec<String>,
}

/// A mailbox and the grants on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSnapshot {
    /// Lowercase UPN.
    pub upn: String,
    /// `UserMailbox` or `SharedMailbox`.
    #[serde(rename = "type")]
    pub kind: String,
    pub full_access: Vec<FullAccessGrant>,
    pub send_as: Vec<SendAsGrant>,
    /// Canonical keys of the delegates.
    pub send_on_behalf: Vec<String>,
    pub calendar: Vec<CalendarGrant>,
    /// Forwarding set on the mailbox (absent: none).
    #[serde(default, skip_serializing_if = "MailboxForwarding::is_empty")]
    pub forwarding: MailboxForwarding,
    /// The mailbox's inbox rules, hidden ones included, by priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbox_rules: Vec<InboxRule>,
    /// Permission entries on folders other than the default calendar, by the folder's path as
    /// a permission cmdlet names it (`\Inbox\Projects`, `\` for the root).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folders: BTreeMap<String, Vec<FolderGrant>>,
}

/// `ForwardingSmtpAddress`, `ForwardingAddress` and `DeliverToMailboxAndForward` of a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxForwarding {
    /// The external address, without the `smtp:` prefix `Get-Mailbox` prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_address: Option<String>,
    /// A recipient of the tenant (canonical key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deliver_to_mailbox_and_forward: bool,
}

impl MailboxForwarding {
    pub fn is_empty(&self) -> bool {
        *self == MailboxForwarding::default()
    }
}

/// One inbox rule of a mailbox, as `Get-InboxRule` knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InboxRule {
    /// 1 = first.
    pub priority: u32,
    /// The rule's number (`RuleIdentity`); `Identity` is `<mailbox Name>\<RuleIdentity>`.
    pub rule_identity: String,
    pub name: String,
    pub enabled: bool,
    /// Listed only with `-IncludeHidden`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_as_attachment_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_to: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_message: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_folder: Option<String>,
}

/// A recipient that is not a mailbox (group, contact, mail user) and the Send
/// As entries on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientSnapshot {
    /// Primary SMTP address (for a mail user: its UPN, its canonical key).
    pub address: String,
    /// `RecipientTypeDetails`: `MailUniversalSecurityGroup`,
    /// `MailUniversalDistributionGroup`, `GroupMailbox`, `MailContact`, `MailUser`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Exchange `Name`.
    pub name: String,
    pub send_as: Vec<SendAsGrant>,
}

/// A ticket note, in the ConnectWise wire shape; a HaloPSA action or an Autotask note is
/// kept in it too (`text` is Halo's `note_html`, Autotask's `description`), with the fields
/// only those PSAs have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: u64,
    pub ticket_id: u64,
    pub text: String,
    pub detail_description_flag: bool,
    pub internal_analysis_flag: bool,
    pub resolution_flag: bool,
    pub date_created: String,
    /// HaloPSA: the action's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_id: Option<u64>,
    /// HaloPSA: `hiddenfromuser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_from_user: Option<bool>,
    /// Autotask: the note's title, `noteType` and `publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_type: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    /// Numeric string.
    pub id: String,
    pub summary: String,
    /// Board name.
    pub board: String,
    /// Company identifier.
    pub company: String,
    pub initial_description: Option<String>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentAttachment {
    pub name: String,
    pub content_type: Option<String>,
    /// The decoded content (lossy UTF-8).
    pub content: String,
}

/// A message accepted by Graph `sendMail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    /// The sender's UPN.
    pub from: String,
    pub subject: String,
    /// `HTML` or `Text`.
    pub content_type: String,
    pub body: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub attachments: Vec<SentAttachment>,
}

/// A post to `POST /webhooks/{name}` (a Teams channel or a company's webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedWebhook {
    /// The `{name}` of the URL.
    pub name: String,
    /// The request's headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// The body as sent (lossy UTF-8).
    pub body: String,
}

/// Request accounting and fault counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests by endpoint key (`exo Get-Mailbox`, `graph GET calendarPermissions`, ...).
    pub requests: BTreeMap<String, u64>,
    /// Graph and Exchange requests in flight at once (throttled ones included).
    pub peak_in_flight: u64,
    /// Exchange `InvokeCommand` requests in flight at once.
    pub peak_in_flight_exchange: u64,
    /// Graph requests in flight at once.
    pub peak_in_flight_graph: u64,
    /// Graph requests in flight at once on one mailbox (the maximum over mailboxes).
    pub peak_in_flight_graph_mailbox: u64,
    /// 429 answers of every concurrency cap.
    pub throttled_429: u64,
    /// Of those, answers to Exchange requests.
    pub throttled_429_exchange: u64,
    /// Of those, answers to Graph requests.
    pub throttled_429_graph: u64,
    /// 503 answers drawn by `rate_503`.
    pub injected_503: u64,
    /// Scripted faults applied (`sim.faults`).
    pub injected_faults: u64,
    /// Each applied scripted fault, in order.
    pub injected_fault_log: Vec<InjectedFault>,
    /// Tokens invalidated by `revoke_tokens_after`.
    pub tokens_revoked: u64,
    /// Requests rejected (401) because their token was revoked.
    pub revoked_token_401: u64,
}

/// One applied scripted fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFault {
    /// The endpoint key of the request.
    pub endpoint: String,
    /// The request's identity (cmdlet `Identity`, Graph `{user}`, ticket id), if any.
    pub identity: Option<String>,
    /// The fault's `answer`.
    pub answer: String,
}

/// The whole simulator state, as `GET /_sim/state` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub tenant_id: String,
    /// Every mailbox, by UPN.
    pub mailboxes: Vec<MailboxSnapshot>,
    /// Every recipient that is not a mailbox.
    #[serde(default)]
    pub recipients: Vec<RecipientSnapshot>,
    pub tickets: Vec<TicketSnapshot>,
    pub sent_mail: Vec<SentMail>,
    /// Posts to `/webhooks/{name}`, in order.
    #[serde(default)]
    pub webhooks: Vec<ReceivedWebhook>,
    /// Sessions, sign-in and consents (`identity.rs`); absent while nothing is to say.
    #[serde(
        default,
        skip_serializing_if = "crate::identity::IdentitySnapshot::is_empty"
    )]
    pub identity: crate::identity::IdentitySnapshot,
    #[serde(flatten)]
    pub counters: Counters,
}

/// Grant kinds of [`Snapshot::direct_grants_of`].
pub const FULL_ACCESS: &str = "full_access";
pub const SEND_AS: &str = "send_as";
pub const SEND_ON_BEHALF: &str = "send_on_behalf";
pub const CALENDAR: &str = "calendar";
/// A folder permission entry (secondary calendars included); its recipient is
/// `<mailbox>:<folder>` (`ceo@x.com:\Tasks`).
pub const FOLDER: &str = "folder";

impl Snapshot {
    /// The mailbox with this UPN (case-insensitive).
    pub fn mailbox(&self, upn: &str) -> Option<&MailboxSnapshot> {
        self.mailboxes
            .iter()
            .find(|m| m.upn.eq_ignore_ascii_case(upn))
    }

    /// The non-mailbox recipient with this address (case-insensitive).
    pub fn recipient(&self, address: &str) -> Option<&RecipientSnapshot> {
        self.recipients
            .iter()
            .find(|r| r.address.eq_ignore_ascii_case(address))
    }

    /// Every explicit grant `user` holds: non-inherited, non-Deny entries that
    /// name `user` by its canonical key (lowercase UPN or group name). Each is
    /// `(recipient address, kind)`, kind one of `full_access`, `send_as`,
    /// `send_on_behalf`, `calendar`, `folder` (recipient `<mailbox>:<folder>`); mailboxes first (in UPN order), then
    /// other recipients; no duplicates.
    pub fn direct_grants_of(&self, user: &str) -> Vec<(String, &'static str)> {
        let named = |who: &str| who.eq_ignore_ascii_case(user);
        let mut grants: Vec<(String, &'static str)> = Vec::new();
        let mut add = |recipient: &str, kind: &'static str| {
            if !grants.iter().any(|(r, k)| r == recipient && *k == kind) {
                grants.push((recipient.to_string(), kind));
            }
        };
        for mailbox in &self.mailboxes {
            if mailbox
                .full_access
                .iter()
                .any(|a| !a.inherited && !a.deny && named(&a.user))
            {
                add(&mailbox.upn, FULL_ACCESS);
            }
            if mailbox
                .send_as
                .iter()
                .any(|a| !a.inherited && !a.deny && named(&a.user))
            {
                add(&mailbox.upn, SEND_AS);
            }
            if mailbox.send_on_behalf.iter().any(|d| named(d)) {
                add(&mailbox.upn, SEND_ON_BEHALF);
            }
            if mailbox.calendar.iter().any(|g| named(&g.user)) {
                add(&mailbox.upn, CALENDAR);
            }
            for (folder, entries) in &mailbox.folders {
                if entries.iter().any(|g| named(&g.user)) {
                    add(&format!("{}:{folder}", mailbox.upn), FOLDER);
                }
            }
        }
        for recipient in &self.recipients {
            if recipient
                .send_as
                .iter()
                .any(|a| !a.inherited && !a.deny && named(&a.user))
            {
                add(&recipient.address, SEND_AS);
            }
        }
        grants
    }

    /// The ticket with this id.
    pub fn ticket(&self, id: &str) -> Option<&TicketSnapshot> {
        self.tickets.iter().find(|t| t.id == id)
    }

    /// Tickets of a company identifier (case-insensitive), in id order.
    pub fn tickets_of(&self, company: &str) -> Vec<&TicketSnapshot> {
        self.tickets
            .iter()
            .filter(|t| t.company.eq_ignore_ascii_case(company))
            .collect()
    }

    /// The notes of a ticket (none if the ticket does not exist).
    pub fn notes_of(&self, ticket_id: &str) -> &[Note] {
        self.ticket(ticket_id).map_or(&[], |t| &t.notes)
    }

    /// Messages with `address` among their To or Cc recipients (case-insensitive).
    pub fn mail_to(&self, address: &str) -> Vec<&SentMail> {
        self.sent_mail
            .iter()
            .filter(|m| {
                m.to.iter()
                    .chain(&m.cc)
                    .any(|a| a.eq_ignore_ascii_case(address))
            })
            .collect()
    }

    /// How many requests were counted under an endpoint key.
    pub fn requests(&self, key: &str) -> u64 {
        self.counters.requests.get(key).copied().unwrap_or(0)
    }
}
