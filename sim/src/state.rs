//! Mutable tenant state: the grants on every mailbox, PSA tickets and sent
//! mail. Grant lists are kept in a canonical (sorted) order so that a state
//! after remove + restore compares equal to the initial one.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::directory::{Directory, Principal, Scope};
use crate::fixture::{Fixture, SendAsEntry};
use crate::snapshot::{
    Counters, MailboxSnapshot, ReceivedWebhook, RecipientSnapshot, Snapshot, TicketSnapshot,
};

pub(crate) use crate::snapshot::{
    CalendarGrant, FolderGrant, FullAccessGrant as FullAccessAce, InboxRule, MailboxForwarding,
    Note, SendAsGrant as SendAsAce, SentAttachment, SentMail,
};

/// Grants on one recipient (non-mailbox recipients only have Send As). Users are stored in canonical form (see
/// [`Directory::canonical`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grants {
    pub full_access: Vec<FullAccessAce>,
    pub send_as: Vec<SendAsAce>,
    pub send_on_behalf: Vec<String>,
    pub calendar: Vec<CalendarGrant>,
    /// A mailbox's forwarding settings and inbox rules: not grants, but kept with them so
    /// that they are saved, lag and snapshot alike.
    #[serde(default)]
    pub forwarding: MailboxForwarding,
    #[serde(default)]
    pub inbox_rules: Vec<InboxRule>,
    /// Permission entries on a mailbox's folders other than the default calendar (that is
    /// `calendar`), by `FolderId`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folders: BTreeMap<String, Vec<FolderGrant>>,
}

impl Grants {
    /// Restore the canonical order; call after every mutation.
    pub fn normalize(&mut self) {
        self.full_access.sort();
        self.full_access.dedup();
        self.send_as.sort();
        self.send_as.dedup();
        self.send_on_behalf.sort();
        self.send_on_behalf.dedup();
        self.calendar.sort();
        self.inbox_rules.sort();
        self.folders.values_mut().for_each(|entries| entries.sort());
        self.folders.retain(|_, entries| !entries.is_empty());
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Board {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Company {
    pub id: u32,
    pub identifier: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ticket {
    pub id: u64,
    pub summary: String,
    pub board: Board,
    pub company: Company,
    pub initial_description: Option<String>,
    pub notes: Vec<Note>,
}

pub(crate) struct TenantState {
    /// Grants keyed by the recipient's canonical key (see [`Principal::key`]):
    /// every mailbox, mail user, mail-enabled group and contact has an entry.
    grants: BTreeMap<String, Grants>,
    /// `sim.read_lag_ms`.
    lag: Duration,
    /// Per recipient: the grants before each recent write, oldest first.
    history: HashMap<String, Vec<(Instant, Grants)>>,
    pub tickets: BTreeMap<u64, Ticket>,
    pub sent_mail: Vec<SentMail>,
    pub webhooks: Vec<ReceivedWebhook>,
}

/// The mutable part of the tenant as saved to a file (see `SimHandle::persist_to`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedTenant {
    pub grants: BTreeMap<String, Grants>,
    pub tickets: Vec<Ticket>,
    pub sent_mail: Vec<SentMail>,
    #[serde(default)]
    pub webhooks: Vec<ReceivedWebhook>,
}

/// A fixture Send As entry in stored form.
fn send_as_ace(directory: &Directory, entry: &SendAsEntry) -> SendAsAce {
    let (deny, inherited, shown_as, trustee_lookup_misses) = match entry {
        SendAsEntry::User(_) => (false, false, None, false),
        SendAsEntry::Entry {
            deny,
            inherited,
            shown_as,
            trustee_lookup_misses,
            ..
        } => (*deny, *inherited, *shown_as, *trustee_lookup_misses),
    };
    SendAsAce {
        user: directory.canonical(entry.user()),
        deny,
        inherited,
        shown_as,
        trustee_lookup_misses,
    }
}

impl TenantState {
    /// The id the next ticket note (of any PSA) gets.
    pub fn next_note_id(&self) -> u64 {
        self.tickets
            .values()
            .flat_map(|t| &t.notes)
            .map(|n| n.id)
            .max()
            .unwrap_or(0)
            + 1
    }
    pub fn new(
        fixture: &Fixture,
        directory: &Directory,
        tickets: BTreeMap<u64, Ticket>,
    ) -> TenantState {
        let mut grants: BTreeMap<String, Grants> = directory
            .principals(Scope::Recipients)
            .map(|p| (p.key().to_string(), Grants::default()))
            .collect();
        let canonical = |user: &str| directory.canonical(user);
        for mailbox in &fixture.mailboxes {
            let grants = grants.entry(mailbox.upn.to_lowercase()).or_default();
            grants.full_access = mailbox
                .full_access
                .iter()
                .map(|e| FullAccessAce {
                    user: canonical(&e.user),
                    inherited: e.inherited,
                    deny: e.deny,
                    access_rights: if e.access_rights.is_empty() {
                        vec!["FullAccess".to_string()]
                    } else {
                        e.access_rights.clone()
                    },
                    shown_as: e.shown_as,
                })
                .collect();
            grants.send_as = mailbox
                .send_as
                .iter()
                .map(|e| send_as_ace(directory, e))
                .collect();
            grants.send_on_behalf = mailbox
                .send_on_behalf
                .iter()
                .map(|u| canonical(u))
                .collect();
            grants.calendar = mailbox
                .calendar
                .iter()
                .map(|e| CalendarGrant {
                    user: canonical(&e.user),
                    access_rights: e.access_rights.clone(),
                    delegate: e.delegate,
                    can_view_private_items: false,
                })
                .collect();
            let folders = directory
                .resolve_mailbox(&mailbox.upn)
                .map(|p| p.folders.as_slice())
                .unwrap_or_default();
            for entry in &mailbox.folders {
                let Some(folder) = crate::folders::find(folders, &entry.path) else {
                    continue;
                };
                let entries = entry.permissions.iter().map(|p| FolderGrant {
                    user: canonical(&p.user),
                    access_rights: p.access_rights.clone(),
                    sharing_permission_flags: p.sharing_permission_flags.clone(),
                });
                if folder.is_default_calendar() {
                    grants.calendar.extend(entries.map(CalendarGrant::from));
                } else {
                    grants
                        .folders
                        .entry(folder.id.clone())
                        .or_default()
                        .extend(entries);
                }
            }
            grants.forwarding = MailboxForwarding {
                smtp_address: mailbox
                    .forwarding
                    .smtp_address
                    .as_deref()
                    .map(crate::cmdlets::without_smtp_prefix),
                address: mailbox.forwarding.address.as_deref().map(canonical),
                deliver_to_mailbox_and_forward: mailbox.forwarding.deliver_to_mailbox_and_forward,
            };
            grants.inbox_rules = mailbox
                .inbox_rules
                .iter()
                .enumerate()
                .map(|(i, rule)| InboxRule {
                    priority: i as u32 + 1,
                    rule_identity: crate::cmdlets::rule_identity(&mailbox.upn, &rule.name),
                    name: rule.name.clone(),
                    enabled: rule.enabled,
                    hidden: rule.hidden,
                    forward_to: rule.forward_to.clone(),
                    forward_as_attachment_to: rule.forward_as_attachment_to.clone(),
                    redirect_to: rule.redirect_to.clone(),
                    delete_message: rule.delete_message,
                    move_to_folder: rule.move_to_folder.clone(),
                })
                .collect();
        }
        let others = fixture
            .users
            .iter()
            .map(|u| (u.upn.to_lowercase(), &u.send_as))
            .chain(fixture.groups.iter().map(|g| (g.name.clone(), &g.send_as)))
            .chain(
                fixture
                    .contacts
                    .iter()
                    .map(|c| (c.address.to_lowercase(), &c.send_as)),
            );
        for (key, send_as) in others.filter(|(_, send_as)| !send_as.is_empty()) {
            grants.entry(key).or_default().send_as =
                send_as.iter().map(|e| send_as_ace(directory, e)).collect();
        }
        grants.values_mut().for_each(Grants::normalize);
        TenantState {
            grants,
            lag: Duration::from_millis(fixture.sim.read_lag_ms),
            history: HashMap::new(),
            tickets,
            sent_mail: Vec::new(),
            webhooks: Vec::new(),
        }
    }

    /// Change the grants on a recipient (by canonical key); the lists are
    /// normalized afterwards. With a read lag, a change is remembered so that
    /// reads keep showing the grants from before it for a while.
    pub fn write<R>(&mut self, key: &str, change: impl FnOnce(&mut Grants) -> R) -> R {
        let grants = self.grants.entry(key.to_string()).or_default();
        let before = (!self.lag.is_zero()).then(|| grants.clone());
        let result = change(grants);
        grants.normalize();
        if let Some(before) = before.filter(|before| before != grants) {
            let now = Instant::now();
            let lag = self.lag;
            let history = self.history.entry(key.to_string()).or_default();
            history.retain(|(at, _)| now.duration_since(*at) < lag);
            history.push((now, before));
        }
        result
    }

    /// The grants on a recipient as a permission read sees them: as they were
    /// `read_lag_ms` ago (the state before the oldest write since then).
    pub fn visible(&self, key: &str) -> &Grants {
        let now = Instant::now();
        self.history
            .get(key)
            .and_then(|writes| {
                writes
                    .iter()
                    .find(|(at, _)| now.duration_since(*at) < self.lag)
            })
            .map_or_else(|| self.grants_of(key), |(_, before)| before)
    }

    /// The grants on a recipient (by canonical key; none if unknown).
    pub fn grants_of(&self, key: &str) -> &Grants {
        static NONE: Grants = Grants {
            full_access: Vec::new(),
            send_as: Vec::new(),
            send_on_behalf: Vec::new(),
            calendar: Vec::new(),
            forwarding: MailboxForwarding {
                smtp_address: None,
                address: None,
                deliver_to_mailbox_and_forward: false,
            },
            inbox_rules: Vec::new(),
            folders: BTreeMap::new(),
        };
        self.grants.get(key).unwrap_or(&NONE)
    }

    /// What changes while the simulator serves: the grants, tickets and sent mail (what
    /// `SimHandle::persist_to` saves).
    pub fn saved(&self) -> SavedTenant {
        SavedTenant {
            grants: self.grants.clone(),
            tickets: self.tickets.values().cloned().collect(),
            sent_mail: self.sent_mail.clone(),
            webhooks: self.webhooks.clone(),
        }
    }

    /// Takes over a saved state (read lag history starts afresh).
    pub fn load(&mut self, saved: SavedTenant) {
        self.grants = saved.grants;
        self.tickets = saved.tickets.into_iter().map(|t| (t.id, t)).collect();
        self.sent_mail = saved.sent_mail;
        self.webhooks = saved.webhooks;
        self.history.clear();
    }

    /// The typed snapshot, without the request counters.
    pub fn snapshot(&self, directory: &Directory) -> Snapshot {
        let mut mailboxes = Vec::new();
        let mut recipients = Vec::new();
        for principal in directory.principals(Scope::Recipients) {
            let grants = self.grants_of(principal.key());
            match principal.mailbox() {
                Some(person) => mailboxes.push(MailboxSnapshot {
                    upn: person.upn.clone(),
                    kind: person.kind.as_str().to_string(),
                    full_access: grants.full_access.clone(),
                    send_as: grants.send_as.clone(),
                    send_on_behalf: grants.send_on_behalf.clone(),
                    calendar: grants.calendar.clone(),
                    forwarding: grants.forwarding.clone(),
                    inbox_rules: grants.inbox_rules.clone(),
                    folders: grants
                        .folders
                        .iter()
                        .filter_map(|(id, entries)| {
                            let folder = person.folders.iter().find(|f| &f.id == id)?;
                            Some((folder.identity_path(), entries.clone()))
                        })
                        .collect(),
                }),
                None => recipients.push(RecipientSnapshot {
                    address: match principal {
                        Principal::Person(p) => p.upn.clone(),
                        other => other.mail().to_string(),
                    },
                    kind: principal.recipient_type().to_string(),
                    name: principal.name().to_string(),
                    send_as: grants.send_as.clone(),
                }),
            }
        }
        let tickets = self
            .tickets
            .values()
            .map(|t| TicketSnapshot {
                id: t.id.to_string(),
                summary: t.summary.clone(),
                board: t.board.name.clone(),
                company: t.company.identifier.clone(),
                initial_description: t.initial_description.clone(),
                notes: t.notes.clone(),
            })
            .collect();
        Snapshot {
            tenant_id: directory.tenant_id.clone(),
            mailboxes,
            recipients,
            tickets,
            sent_mail: self.sent_mail.clone(),
            webhooks: self.webhooks.clone(),
            identity: Default::default(),
            counters: Counters::default(),
        }
    }
}

/// A default-calendar entry as the folder entry `Get-MailboxFolderPermission` shows.
impl From<&CalendarGrant> for FolderGrant {
    fn from(grant: &CalendarGrant) -> FolderGrant {
        let flags = [
            (grant.delegate, "Delegate"),
            (grant.can_view_private_items, "CanViewPrivateItems"),
        ];
        FolderGrant {
            user: grant.user.clone(),
            access_rights: vec![grant.access_rights.clone()],
            sharing_permission_flags: flags
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, flag)| flag.to_string())
                .collect(),
        }
    }
}

/// A folder entry written to the default calendar (whose entries carry one role).
impl From<FolderGrant> for CalendarGrant {
    fn from(grant: FolderGrant) -> CalendarGrant {
        let flag = |name: &str| {
            grant
                .sharing_permission_flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case(name))
        };
        CalendarGrant {
            delegate: flag("Delegate"),
            can_view_private_items: flag("CanViewPrivateItems"),
            access_rights: grant.access_rights.join(","),
            user: grant.user,
        }
    }
}
