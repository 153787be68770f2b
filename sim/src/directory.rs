//! The tenant's directory (immutable after load): people (users and mailboxes)
//! and groups, with their derived ids, aliases and DNs, and identity resolution
//! the way Exchange and Graph resolve an identity string.

use crate::fixture::{derived_guid, distinguished_name, Fixture, MailboxType};

/// A user and/or mailbox: every user has a mailbox, and every mailbox is a
/// (possibly disabled) user in Graph.
#[derive(Debug)]
pub(crate) struct Person {
    /// Lowercased UPN: the canonical key used in grant lists.
    pub upn: String,
    pub mail: String,
    pub display_name: String,
    pub id: String,
    /// Exchange `Name` / `Alias`: the local part of the UPN.
    pub name: String,
    pub dn: String,
    pub kind: MailboxType,
    pub calendar_folder: String,
}

impl Person {
    pub fn account_enabled(&self) -> bool {
        self.kind == MailboxType::UserMailbox
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub name: String,
    pub mail: String,
    pub id: String,
    pub dn: String,
    /// Lowercased UPNs.
    pub members: Vec<String>,
}

/// A resolved recipient.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Principal<'a> {
    Person(&'a Person),
    Group(&'a Group),
}

impl<'a> Principal<'a> {
    /// The form stored in grant lists: lowercased UPN, or the group name.
    pub fn key(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.upn,
            Principal::Group(g) => &g.name,
        }
    }
    pub fn name(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.name,
            Principal::Group(g) => &g.name,
        }
    }
    pub fn display_name(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.display_name,
            Principal::Group(g) => &g.name,
        }
    }
    pub fn mail(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.mail,
            Principal::Group(g) => &g.mail,
        }
    }
    pub fn id(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.id,
            Principal::Group(g) => &g.id,
        }
    }
    pub fn recipient_type(&self) -> &'static str {
        match self {
            Principal::Person(p) => p.kind.as_str(),
            Principal::Group(_) => "MailUniversalSecurityGroup",
        }
    }
    fn same(&self, other: &Principal) -> bool {
        self.id() == other.id()
    }
    /// Exact identifiers Exchange accepts for this recipient (not the display name).
    fn identifiers(&self) -> [&'a str; 5] {
        match self {
            Principal::Person(p) => [&p.upn, &p.mail, &p.name, &p.id, &p.dn],
            // A group's Name is its name: listed twice to keep one array shape.
            Principal::Group(g) => [&g.name, &g.mail, &g.id, &g.dn, &g.name],
        }
    }
}

/// Why an identity did not resolve to exactly one recipient.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unresolved {
    NotFound,
    Ambiguous,
}

/// Who a permission entry is for: a known recipient, or a string that names
/// none (an orphaned SID, `NT AUTHORITY\SELF`, ...) matched verbatim.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Account<'a> {
    Known(Principal<'a>),
    Verbatim(&'a str),
}

impl Account<'_> {
    /// Does a stored grant-list entry designate this account?
    pub fn matches(&self, directory: &Directory, stored: &str) -> bool {
        match (self, directory.resolve_exact(stored)) {
            (Account::Known(who), Some(holder)) => who.same(&holder),
            (Account::Known(_), None) => false,
            (Account::Verbatim(text), _) => text.eq_ignore_ascii_case(stored),
        }
    }
    /// How the account is shown in messages.
    pub fn label(&self) -> &str {
        match self {
            Account::Known(who) => who.key(),
            Account::Verbatim(text) => text,
        }
    }
}

pub(crate) struct Directory {
    pub tenant_id: String,
    /// Sorted by UPN.
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
}

impl Directory {
    pub fn new(fixture: &Fixture) -> Directory {
        let mut people: Vec<Person> = Vec::new();
        for user in &fixture.users {
            let mailbox = fixture
                .mailboxes
                .iter()
                .find(|m| m.upn.eq_ignore_ascii_case(&user.upn));
            let mail = user.mail.as_deref().unwrap_or(&user.upn);
            people.push(person(
                fixture,
                &user.upn,
                mail,
                Some(&user.display_name),
                mailbox,
            ));
        }
        for mailbox in &fixture.mailboxes {
            if !people
                .iter()
                .any(|p| p.upn.eq_ignore_ascii_case(&mailbox.upn))
            {
                let display = mailbox.display_name.as_deref();
                people.push(person(
                    fixture,
                    &mailbox.upn,
                    &mailbox.upn,
                    display,
                    Some(mailbox),
                ));
            }
        }
        people.sort_by(|a, b| a.upn.cmp(&b.upn));

        let domain = fixture.domain();
        let groups = fixture
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                mail: g.mail.clone().unwrap_or_else(|| {
                    format!("{}@{domain}", g.name.to_lowercase().replace(' ', "-"))
                }),
                id: derived_guid(&format!("group:{}", g.name.to_lowercase())),
                dn: distinguished_name(&g.name, &fixture.tenant_id),
                members: g.members.iter().map(|m| m.to_lowercase()).collect(),
            })
            .collect();
        Directory {
            tenant_id: fixture.tenant_id.clone(),
            people,
            groups,
        }
    }

    /// Is `tenant` this tenant (its id, or the domain of one of its addresses)?
    pub fn is_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
            || self.people.iter().any(|p| {
                p.upn
                    .split_once('@')
                    .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(tenant))
            })
    }

    pub fn person(&self, upn: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.upn.eq_ignore_ascii_case(upn))
    }

    /// Graph `/users/{id | userPrincipalName}` lookup: exact, case-insensitive.
    pub fn graph_user(&self, key: &str) -> Option<&Person> {
        self.people
            .iter()
            .find(|p| p.upn.eq_ignore_ascii_case(key) || p.id.eq_ignore_ascii_case(key))
    }

    /// By address (UPN or primary SMTP), case-insensitive.
    pub fn by_address(&self, address: &str) -> Option<Principal<'_>> {
        let person = self
            .people
            .iter()
            .find(|p| p.upn.eq_ignore_ascii_case(address) || p.mail.eq_ignore_ascii_case(address));
        let group = || {
            self.groups
                .iter()
                .find(|g| g.mail.eq_ignore_ascii_case(address))
        };
        person
            .map(Principal::Person)
            .or_else(|| group().map(Principal::Group))
    }

    fn principals(&self) -> impl Iterator<Item = Principal<'_>> {
        let people = self.people.iter().map(Principal::Person);
        people.chain(self.groups.iter().map(Principal::Group))
    }

    /// Resolve by UPN, SMTP address, Name, object id or DN (groups: name, mail, id, DN).
    pub fn resolve_exact(&self, identity: &str) -> Option<Principal<'_>> {
        let identity = identity.trim();
        self.principals().find(|p| {
            p.identifiers()
                .iter()
                .any(|i| i.eq_ignore_ascii_case(identity))
        })
    }

    /// Resolve like an Exchange `-Identity`/`-User`/`-Trustee` parameter: exact
    /// identifiers first, then the display name, which may be ambiguous.
    pub fn resolve(&self, identity: &str) -> Result<Principal<'_>, Unresolved> {
        if let Some(found) = self.resolve_exact(identity) {
            return Ok(found);
        }
        let identity = identity.trim();
        let mut by_display = self
            .principals()
            .filter(|p| p.display_name().eq_ignore_ascii_case(identity));
        match (by_display.next(), by_display.next()) {
            (Some(only), None) => Ok(only),
            (Some(_), Some(_)) => Err(Unresolved::Ambiguous),
            (None, _) => Err(Unresolved::NotFound),
        }
    }

    /// A mailbox identity (UPN, SMTP address, Name, id, DN or display name).
    pub fn resolve_mailbox(&self, identity: &str) -> Result<&Person, Unresolved> {
        match self.resolve(identity)? {
            Principal::Person(person) => Ok(person),
            Principal::Group(_) => Err(Unresolved::NotFound),
        }
    }

    /// Resolve a `-User`/`-Trustee` value, keeping unknown strings verbatim.
    pub fn account<'a>(&'a self, identity: &'a str) -> Result<Account<'a>, Unresolved> {
        match self.resolve(identity) {
            Ok(found) => Ok(Account::Known(found)),
            Err(Unresolved::NotFound) => Ok(Account::Verbatim(identity)),
            Err(Unresolved::Ambiguous) => Err(Unresolved::Ambiguous),
        }
    }

    /// Canonical stored form of a fixture grant-list user: lowercased UPN for
    /// people, group name for groups, anything else verbatim.
    pub fn canonical(&self, user: &str) -> String {
        self.resolve_exact(user)
            .map_or_else(|| user.to_string(), |p| p.key().to_string())
    }

    /// Exchange `Name` of a stored grant-list entry (verbatim when unknown).
    pub fn name_of<'a>(&'a self, stored: &'a str) -> &'a str {
        self.resolve_exact(stored).map_or(stored, |p| p.name())
    }

    /// Groups `upn` is a member of (flat membership).
    pub fn groups_of(&self, upn: &str) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(upn)))
            .collect()
    }
}

fn person(
    fixture: &Fixture,
    upn: &str,
    mail: &str,
    display_name: Option<&str>,
    mailbox: Option<&crate::fixture::Mailbox>,
) -> Person {
    let upn = upn.to_lowercase();
    let name = upn.split('@').next().unwrap_or_default().to_string();
    let display_name = display_name
        .or_else(|| mailbox.and_then(|m| m.display_name.as_deref()))
        .unwrap_or(&name)
        .to_string();
    Person {
        mail: mail.to_lowercase(),
        display_name,
        id: derived_guid(&upn),
        dn: distinguished_name(&name, &fixture.tenant_id),
        kind: mailbox.map(|m| m.kind).unwrap_or_default(),
        calendar_folder: mailbox
            .and_then(|m| m.calendar_folder_name.clone())
            .unwrap_or_else(|| "Calendar".to_string()),
        name,
        upn,
    }
}
