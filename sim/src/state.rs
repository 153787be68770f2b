//! Mutable tenant state: the grants on every mailbox, PSA tickets and sent
//! mail. Grant lists are kept in a canonical (sorted) order so that a state
//! after remove + restore compares equal to the initial one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::directory::Directory;
use crate::fixture::{Fixture, SendAsEntry};
use crate::snapshot::{Counters, MailboxSnapshot, Snapshot, TicketSnapshot};

pub(crate) use crate::snapshot::{
    CalendarGrant, FullAccessGrant as FullAccessAce, Note, SendAsGrant as SendAsAce,
    SentAttachment, SentMail,
};

/// Grants on one mailbox. Users are stored in canonical form (see
/// [`Directory::canonical`]).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Grants {
    pub full_access: Vec<FullAccessAce>,
    pub send_as: Vec<SendAsAce>,
    pub send_on_behalf: Vec<String>,
    pub calendar: Vec<CalendarGrant>,
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
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Board {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Company {
    pub id: u32,
    pub identifier: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub id: u64,
    pub summary: String,
    pub board: Board,
    pub company: Company,
    pub initial_description: Option<String>,
    pub notes: Vec<Note>,
}

pub(crate) struct TenantState {
    /// Keyed by lowercased mailbox UPN; every person of the directory has one.
    pub mailboxes: BTreeMap<String, Grants>,
    pub tickets: BTreeMap<u64, Ticket>,
    pub sent_mail: Vec<SentMail>,
}

impl TenantState {
    pub fn new(
        fixture: &Fixture,
        directory: &Directory,
        tickets: BTreeMap<u64, Ticket>,
    ) -> TenantState {
        let mut mailboxes: BTreeMap<String, Grants> = directory
            .people
            .iter()
            .map(|p| (p.upn.clone(), Grants::default()))
            .collect();
        for mailbox in &fixture.mailboxes {
            let grants = mailboxes.entry(mailbox.upn.to_lowercase()).or_default();
            let canonical = |user: &str| directory.canonical(user);
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
                    shown_as: None,
                })
                .collect();
            grants.send_as = mailbox
                .send_as
                .iter()
                .map(|e| {
                    let (deny, inherited) = match e {
                        SendAsEntry::User(_) => (false, false),
                        SendAsEntry::Entry {
                            deny, inherited, ..
                        } => (*deny, *inherited),
                    };
                    SendAsAce {
                        user: canonical(e.user()),
                        deny,
                        inherited,
                        shown_as: None,
                        trustee_lookup_misses: false,
                    }
                })
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
                })
                .collect();
            grants.normalize();
        }
        TenantState {
            mailboxes,
            tickets,
            sent_mail: Vec::new(),
        }
    }

    /// Grants on a mailbox of the directory, for changes.
    pub fn grants(&mut self, upn: &str) -> &mut Grants {
        self.mailboxes.entry(upn.to_string()).or_default()
    }

    /// Grants on a mailbox of the directory (every person has an entry).
    pub fn grants_of(&self, upn: &str) -> &Grants {
        static NONE: Grants = Grants {
            full_access: Vec::new(),
            send_as: Vec::new(),
            send_on_behalf: Vec::new(),
            calendar: Vec::new(),
        };
        self.mailboxes.get(upn).unwrap_or(&NONE)
    }

    /// The typed snapshot, without the request counters.
    pub fn snapshot(&self, directory: &Directory) -> Snapshot {
        let mailboxes = self
            .mailboxes
            .iter()
            .map(|(upn, grants)| MailboxSnapshot {
                upn: upn.clone(),
                kind: directory
                    .person(upn)
                    .map_or("UserMailbox", |p| p.kind.as_str())
                    .to_string(),
                full_access: grants.full_access.clone(),
                send_as: grants.send_as.clone(),
                send_on_behalf: grants.send_on_behalf.clone(),
                calendar: grants.calendar.clone(),
            })
            .collect();
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
            recipients: Vec::new(),
            tickets,
            sent_mail: self.sent_mail.clone(),
            counters: Counters::default(),
        }
    }
}
