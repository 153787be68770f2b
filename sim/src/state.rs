//! Mutable tenant state: the grants on every mailbox, PSA tickets and sent
//! mail. Grant lists are kept in a canonical (sorted) order so that a state
//! after remove + restore compares equal to the initial one.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::directory::Directory;
use crate::fixture::{Fixture, SendAsEntry};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct FullAccessAce {
    pub user: String,
    pub inherited: bool,
    pub deny: bool,
    pub access_rights: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct SendAsAce {
    pub user: String,
    pub deny: bool,
    pub inherited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct CalendarGrant {
    pub user: String,
    pub access_rights: String,
    pub delegate: bool,
}

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

/// A ConnectWise ticket note, serialized in the ConnectWise wire shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Note {
    pub id: u64,
    pub ticket_id: u64,
    pub text: String,
    pub detail_description_flag: bool,
    pub internal_analysis_flag: bool,
    pub resolution_flag: bool,
    pub date_created: String,
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

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SentAttachment {
    pub name: String,
    pub content_type: Option<String>,
    /// The decoded content (lossy UTF-8).
    pub content: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SentMail {
    pub from: String,
    pub subject: String,
    pub content_type: String,
    pub body: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub attachments: Vec<SentAttachment>,
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

    /// The JSON of `GET /_sim/state`, without the request counters.
    pub fn snapshot(&self, directory: &Directory) -> Value {
        #[derive(Serialize)]
        struct MailboxSnapshot<'a> {
            upn: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(flatten)]
            grants: &'a Grants,
        }
        #[derive(Serialize)]
        struct TicketSnapshot<'a> {
            id: String,
            summary: &'a str,
            board: &'a str,
            company: &'a str,
            initial_description: &'a Option<String>,
            notes: &'a [Note],
        }
        let mailboxes: Vec<MailboxSnapshot> = self
            .mailboxes
            .iter()
            .map(|(upn, grants)| MailboxSnapshot {
                upn,
                kind: directory
                    .person(upn)
                    .map_or("UserMailbox", |p| p.kind.as_str()),
                grants,
            })
            .collect();
        let tickets: Vec<TicketSnapshot> = self
            .tickets
            .values()
            .map(|t| TicketSnapshot {
                id: t.id.to_string(),
                summary: &t.summary,
                board: &t.board.name,
                company: &t.company.identifier,
                initial_description: &t.initial_description,
                notes: &t.notes,
            })
            .collect();
        serde_json::json!({
            "tenant_id": directory.tenant_id,
            "mailboxes": mailboxes,
            "tickets": tickets,
            "sent_mail": self.sent_mail,
        })
    }
}
