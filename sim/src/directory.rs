//! The tenant's directory (immutable after load): people (users, mailboxes,
//! mail users), groups and mail contacts, with their derived ids, names, SIDs
//! and DNs, and identity resolution the way Exchange and Graph resolve an
//! identity string.

use std::collections::{HashMap, HashSet};

use crate::fixture::{
    derived_guid, distinguished_name, fnv1a, Fixture, GroupType, MailboxType, ShownAs, UserType,
};

/// The NetBIOS domain Exchange Online prints in `DOMAIN\sam` trustees.
pub(crate) const NETBIOS: &str = "NAMPR01A001";

/// What Exchange knows of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PersonKind {
    UserMailbox,
    SharedMailbox,
    /// Mail-enabled, no Exchange Online mailbox.
    MailUser,
    /// Not an Exchange recipient.
    User,
}

impl PersonKind {
    /// `RecipientTypeDetails`.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonKind::UserMailbox => "UserMailbox",
            PersonKind::SharedMailbox => "SharedMailbox",
            PersonKind::MailUser => "MailUser",
            PersonKind::User => "User",
        }
    }

    pub fn has_mailbox(self) -> bool {
        matches!(self, PersonKind::UserMailbox | PersonKind::SharedMailbox)
    }

    pub fn is_recipient(self) -> bool {
        self != PersonKind::User
    }
}

/// A user and/or mailbox. Every person is a Graph user.
#[derive(Debug)]
pub(crate) struct Person {
    /// Lowercased UPN: the canonical key used in grant lists.
    pub upn: String,
    pub mail: String,
    pub display_name: String,
    pub id: String,
    /// Exchange `Name`.
    pub name: String,
    /// The local part of the UPN.
    pub alias: String,
    pub dn: String,
    pub kind: PersonKind,
    /// The mailbox's folders (none for a person without a mailbox).
    pub folders: Vec<crate::folders::Folder>,
    /// The `Name` of the mailbox's root folder (localized).
    pub root_folder_name: &'static str,
    pub sid: String,
    pub sid_history: Vec<String>,
    pub sam: String,
    pub proxy_addresses: Vec<String>,
    pub account_enabled: bool,
    pub last_sign_in: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug)]
pub(crate) struct Group {
    /// The fixture name: display name and canonical key.
    pub display_name: String,
    /// Exchange `Name`: the display name, or the object id with `guid_names`.
    pub name: String,
    /// `None` for a `SecurityGroup`.
    pub mail: Option<String>,
    pub alias: String,
    pub id: String,
    pub dn: String,
    pub sid: String,
    pub kind: GroupType,
    /// Lowercased UPNs.
    pub members: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Contact {
    /// Lowercased address: the canonical key.
    pub address: String,
    pub display_name: String,
    pub name: String,
    pub alias: String,
    pub id: String,
    pub dn: String,
}

/// A resolved directory object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Principal<'a> {
    Person(&'a Person),
    Group(&'a Group),
    Contact(&'a Contact),
}

impl<'a> Principal<'a> {
    /// The form stored in grant lists: lowercased UPN, group name, contact address.
    pub fn key(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.upn,
            Principal::Group(g) => &g.display_name,
            Principal::Contact(c) => &c.address,
        }
    }
    /// Exchange `Name`.
    pub fn name(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.name,
            Principal::Group(g) => &g.name,
            Principal::Contact(c) => &c.name,
        }
    }
    pub fn display_name(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.display_name,
            Principal::Group(g) => &g.display_name,
            Principal::Contact(c) => &c.display_name,
        }
    }
    /// Primary SMTP address (empty for a security group).
    pub fn mail(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.mail,
            Principal::Group(g) => g.mail.as_deref().unwrap_or_default(),
            Principal::Contact(c) => &c.address,
        }
    }
    pub fn alias(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.alias,
            Principal::Group(g) => &g.alias,
            Principal::Contact(c) => &c.alias,
        }
    }
    pub fn id(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.id,
            Principal::Group(g) => &g.id,
            Principal::Contact(c) => &c.id,
        }
    }
    pub fn dn(&self) -> &'a str {
        match self {
            Principal::Person(p) => &p.dn,
            Principal::Group(g) => &g.dn,
            Principal::Contact(c) => &c.dn,
        }
    }
    /// `RecipientTypeDetails`.
    pub fn recipient_type(&self) -> &'static str {
        match self {
            Principal::Person(p) => p.kind.as_str(),
            Principal::Group(g) => g.kind.as_str(),
            Principal::Contact(_) => "MailContact",
        }
    }
    /// Is it an Exchange recipient (`Get-Recipient` finds it)?
    pub fn is_recipient(&self) -> bool {
        match self {
            Principal::Person(p) => p.kind.is_recipient(),
            Principal::Group(g) => g.kind.is_recipient(),
            Principal::Contact(_) => true,
        }
    }
    /// The person, if it has an Exchange Online mailbox.
    pub fn mailbox(&self) -> Option<&'a Person> {
        match self {
            Principal::Person(p) if p.kind.has_mailbox() => Some(p),
            _ => None,
        }
    }
    fn same(&self, other: &Principal) -> bool {
        self.id() == other.id()
    }

    /// How a permission answer prints this trustee in the given form.
    pub fn shown(&self, form: ShownAs) -> String {
        match (self, form) {
            (Principal::Person(p), ShownAs::Upn) => p.upn.clone(),
            (Principal::Group(g), ShownAs::Upn) => g.mail.clone().unwrap_or_else(|| g.name.clone()),
            (Principal::Contact(c), ShownAs::Upn) => c.address.clone(),
            (_, ShownAs::Name) => self.name().to_string(),
            (_, ShownAs::Guid) => self.id().to_string(),
            (Principal::Person(p), ShownAs::DomainSam) => format!("{NETBIOS}\\{}", p.sam),
            (_, ShownAs::DomainSam) => format!("{NETBIOS}\\{}", self.alias()),
            (Principal::Person(p), ShownAs::Sid) => p.sid.clone(),
            (Principal::Group(g), ShownAs::Sid) => g.sid.clone(),
            (Principal::Contact(c), ShownAs::Sid) => c.id.clone(),
        }
    }

    /// Every identifier that names this object exactly (not by display name),
    /// lowercased: UPN, SMTP and proxy addresses, Name, Alias, object id, DN,
    /// SID (and SID history), `NAMPR01A001\<sam>`.
    fn identifiers(&self) -> Vec<String> {
        let domain_sam = |sam: &str| format!("{NETBIOS}\\{sam}");
        let mut all: Vec<String> = vec![
            self.name().into(),
            self.alias().into(),
            self.id().into(),
            self.dn().into(),
        ];
        match self {
            Principal::Person(p) => {
                all.extend([
                    p.upn.clone(),
                    p.mail.clone(),
                    p.sid.clone(),
                    domain_sam(&p.sam),
                ]);
                all.extend(p.sid_history.iter().cloned());
                for proxy in &p.proxy_addresses {
                    all.push(proxy.clone());
                    all.extend(smtp_address(proxy).map(str::to_string));
                }
            }
            Principal::Group(g) => {
                all.extend([g.display_name.clone(), g.sid.clone(), domain_sam(&g.alias)]);
                all.extend(g.mail.clone());
            }
            Principal::Contact(c) => all.push(c.address.clone()),
        }
        all.iter_mut().for_each(|i| i.make_ascii_lowercase());
        all.sort();
        all.dedup();
        all
    }
}

/// The address of an `smtp:`/`SMTP:` proxy address.
pub(crate) fn smtp_address(proxy: &str) -> Option<&str> {
    proxy
        .split_once(':')
        .filter(|(prefix, _)| prefix.eq_ignore_ascii_case("smtp"))
        .map(|(_, address)| address)
}

/// Which objects an identity parameter may designate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// People with an Exchange Online mailbox (`Get-Mailbox`).
    Mailboxes,
    /// Exchange recipients: mailboxes, mail users, mail-enabled groups, contacts.
    Recipients,
    /// Every person (`Get-User`).
    Users,
    /// Every group, mail-enabled or not (`Get-Group`).
    Groups,
    /// Everything in the directory.
    All,
}

impl Scope {
    fn holds(self, p: &Principal) -> bool {
        match self {
            Scope::Mailboxes => p.mailbox().is_some(),
            Scope::Recipients => p.is_recipient(),
            Scope::Users => matches!(p, Principal::Person(_)),
            Scope::Groups => matches!(p, Principal::Group(_)),
            Scope::All => true,
        }
    }
}

/// Why an identity did not resolve to exactly one object.
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
        match self {
            Account::Known(who) => directory.by_key(stored).is_some_and(|h| who.same(&h)),
            Account::Verbatim(text) => text.eq_ignore_ascii_case(stored),
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
    pub contacts: Vec<Contact>,
    index: Index,
}

/// A directory object by position: people, then groups, then contacts (the
/// order lookups prefer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ref {
    Person(usize),
    Group(usize),
    Contact(usize),
}

/// Lookups by lowercased string, each list in [`Ref`] order, so that a
/// lookup answers what a scan in that order would find first.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Vec<Ref>>,
    display: HashMap<String, Vec<Ref>>,
    keys: HashMap<String, Ref>,
    /// Graph `/users/{id | userPrincipalName}`.
    graph_users: HashMap<String, usize>,
    /// UPN, primary SMTP and proxy addresses of people, then group mail.
    addresses: HashMap<String, Ref>,
}

impl Directory {
    pub fn new(fixture: &Fixture) -> Directory {
        let guid_names = fixture.sim.guid_names;
        let domain_sid = domain_sid(&fixture.tenant_id);
        let mailboxes: HashMap<String, &crate::fixture::Mailbox> = fixture
            .mailboxes
            .iter()
            .map(|m| (m.upn.to_ascii_lowercase(), m))
            .collect();
        let mut people: Vec<Person> = Vec::new();
        let mut seen = HashSet::new();
        for user in &fixture.users {
            let upn = user.upn.to_ascii_lowercase();
            let mailbox = mailboxes.get(&upn).copied();
            people.push(person(fixture, &domain_sid, Some(user), mailbox));
            seen.insert(upn);
        }
        for mailbox in &fixture.mailboxes {
            if seen.insert(mailbox.upn.to_ascii_lowercase()) {
                people.push(person(fixture, &domain_sid, None, Some(mailbox)));
            }
        }
        people.sort_by(|a, b| a.upn.cmp(&b.upn));

        let domain = fixture.domain();
        let groups = fixture
            .groups
            .iter()
            .map(|g| {
                let id = derived_guid(&format!("group:{}", g.name.to_lowercase()));
                let mail = match g.kind {
                    GroupType::SecurityGroup => None,
                    _ => Some(g.mail.clone().map_or_else(
                        || format!("{}@{domain}", g.name.to_lowercase().replace(' ', "-")),
                        |m| m.to_lowercase(),
                    )),
                };
                let alias = match &mail {
                    Some(mail) => local_part(mail).to_string(),
                    None => g.name.replace(' ', ""),
                };
                let name = if guid_names {
                    id.clone()
                } else {
                    g.name.clone()
                };
                Group {
                    display_name: g.name.clone(),
                    dn: distinguished_name(&name, &fixture.tenant_id),
                    sid: sid(&domain_sid, &format!("group:{}", g.name.to_lowercase())),
                    name,
                    mail,
                    alias,
                    id,
                    kind: g.kind,
                    members: g.members.iter().map(|m| m.to_lowercase()).collect(),
                }
            })
            .collect();
        let contacts = fixture
            .contacts
            .iter()
            .map(|c| {
                let address = c.address.to_lowercase();
                let name = c.name.clone().unwrap_or_else(|| c.display_name.clone());
                Contact {
                    id: derived_guid(&format!("contact:{address}")),
                    dn: distinguished_name(&name, &fixture.tenant_id),
                    alias: local_part(&address).to_string(),
                    display_name: c.display_name.clone(),
                    name,
                    address,
                }
            })
            .collect();
        let mut directory = Directory {
            tenant_id: fixture.tenant_id.clone(),
            people,
            groups,
            contacts,
            index: Index::default(),
        };
        directory.index = directory.build_index();
        directory
    }

    fn build_index(&self) -> Index {
        let mut index = Index::default();
        let refs = (0..self.people.len())
            .map(Ref::Person)
            .chain((0..self.groups.len()).map(Ref::Group))
            .chain((0..self.contacts.len()).map(Ref::Contact));
        for r in refs {
            let p = self.principal(r);
            for identifier in p.identifiers() {
                index.exact.entry(identifier).or_default().push(r);
            }
            index
                .display
                .entry(p.display_name().to_ascii_lowercase())
                .or_default()
                .push(r);
            index.keys.entry(p.key().to_ascii_lowercase()).or_insert(r);
        }
        for (i, person) in self.people.iter().enumerate() {
            for key in [&person.upn, &person.id] {
                index
                    .graph_users
                    .entry(key.to_ascii_lowercase())
                    .or_insert(i);
            }
            let proxies = person
                .proxy_addresses
                .iter()
                .filter_map(|p| smtp_address(p));
            for address in [person.upn.as_str(), person.mail.as_str()]
                .into_iter()
                .chain(proxies)
            {
                index
                    .addresses
                    .entry(address.to_ascii_lowercase())
                    .or_insert(Ref::Person(i));
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            if let Some(mail) = &group.mail {
                index
                    .addresses
                    .entry(mail.to_ascii_lowercase())
                    .or_insert(Ref::Group(i));
            }
        }
        index
    }

    fn principal(&self, r: Ref) -> Principal<'_> {
        match r {
            Ref::Person(i) => Principal::Person(&self.people[i]),
            Ref::Group(i) => Principal::Group(&self.groups[i]),
            Ref::Contact(i) => Principal::Contact(&self.contacts[i]),
        }
    }

    /// Is `tenant` this tenant (its id, or the domain of one of its UPNs)?
    pub fn is_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
            || self.people.iter().any(|p| {
                p.upn
                    .split_once('@')
                    .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(tenant))
            })
    }

    /// Graph `/users/{id | userPrincipalName}` lookup: exact, case-insensitive.
    pub fn graph_user(&self, key: &str) -> Option<&Person> {
        let i = self.index.graph_users.get(&key.to_ascii_lowercase())?;
        Some(&self.people[*i])
    }

    /// The object a stored grant-list entry (a canonical key) designates.
    pub fn by_key(&self, stored: &str) -> Option<Principal<'_>> {
        let r = self.index.keys.get(&stored.to_ascii_lowercase())?;
        Some(self.principal(*r))
    }

    /// A person or group by address (UPN, primary SMTP or proxy address).
    pub fn by_address(&self, address: &str) -> Option<Principal<'_>> {
        let r = self.index.addresses.get(&address.to_ascii_lowercase())?;
        Some(self.principal(*r))
    }

    /// The objects of a scope: people (by UPN), then groups, then contacts.
    pub fn principals(&self, scope: Scope) -> impl Iterator<Item = Principal<'_>> {
        let people = self.people.iter().map(Principal::Person);
        let groups = self.groups.iter().map(Principal::Group);
        let contacts = self.contacts.iter().map(Principal::Contact);
        people
            .chain(groups)
            .chain(contacts)
            .filter(move |p| scope.holds(p))
    }

    /// The objects of `scope` a lowercased lookup names, in lookup order.
    fn looked_up<'a>(
        &'a self,
        map: &'a HashMap<String, Vec<Ref>>,
        identity: &str,
        scope: Scope,
    ) -> impl Iterator<Item = Principal<'a>> {
        map.get(&identity.trim().to_ascii_lowercase())
            .into_iter()
            .flatten()
            .map(|r| self.principal(*r))
            .filter(move |p| scope.holds(p))
    }

    /// Resolve by an exact identifier (see [`Principal::identifiers`]).
    pub fn resolve_exact(&self, identity: &str, scope: Scope) -> Option<Principal<'_>> {
        self.looked_up(&self.index.exact, identity, scope).next()
    }

    /// Resolve like an Exchange `-Identity`/`-User`/`-Trustee` parameter: exact
    /// identifiers first, then the display name, which may be ambiguous.
    pub fn resolve(&self, identity: &str, scope: Scope) -> Result<Principal<'_>, Unresolved> {
        if let Some(found) = self.resolve_exact(identity, scope) {
            return Ok(found);
        }
        let mut by_display = self.looked_up(&self.index.display, identity, scope);
        match (by_display.next(), by_display.next()) {
            (Some(only), None) => Ok(only),
            (Some(_), Some(_)) => Err(Unresolved::Ambiguous),
            (None, _) => Err(Unresolved::NotFound),
        }
    }

    /// A mailbox identity.
    pub fn resolve_mailbox(&self, identity: &str) -> Result<&Person, Unresolved> {
        let found = self.resolve(identity, Scope::Mailboxes)?;
        found.mailbox().ok_or(Unresolved::NotFound)
    }

    /// A `Get-User` identity: any person.
    pub fn resolve_user(&self, identity: &str) -> Result<&Person, Unresolved> {
        match self.resolve(identity, Scope::Users)? {
            Principal::Person(person) => Ok(person),
            _ => Err(Unresolved::NotFound),
        }
    }

    /// Resolve a `-User`/`-Trustee` value, keeping unknown strings verbatim.
    pub fn account<'a>(&'a self, identity: &'a str) -> Result<Account<'a>, Unresolved> {
        match self.resolve(identity, Scope::Recipients) {
            Ok(found) => Ok(Account::Known(found)),
            Err(Unresolved::NotFound) => Ok(Account::Verbatim(identity)),
            Err(Unresolved::Ambiguous) => Err(Unresolved::Ambiguous),
        }
    }

    /// Canonical stored form of a fixture grant-list user: lowercased UPN for
    /// people, group name for groups, anything else verbatim.
    pub fn canonical(&self, user: &str) -> String {
        self.resolve_exact(user, Scope::All)
            .map_or_else(|| user.to_string(), |p| p.key().to_string())
    }

    /// Exchange `Name` of a stored grant-list entry (verbatim when unknown).
    pub fn name_of<'a>(&'a self, stored: &'a str) -> &'a str {
        self.by_key(stored).map_or(stored, |p| p.name())
    }

    /// How a permission answer prints a stored entry shown in `form`.
    pub fn shown(&self, stored: &str, form: Option<ShownAs>) -> String {
        match (self.by_key(stored), form) {
            (Some(holder), Some(form)) => holder.shown(form),
            _ => stored.to_string(),
        }
    }

    /// Groups `upn` is a member of (flat membership).
    pub fn groups_of(&self, upn: &str) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(upn)))
            .collect()
    }
}

fn local_part(address: &str) -> &str {
    address.split('@').next().unwrap_or_default()
}

/// `S-1-5-21-a-b-c`: the tenant's domain SID, from the FNV-1a hash of its id.
fn domain_sid(tenant_id: &str) -> String {
    let high = fnv1a(format!("domain-sid:{tenant_id}").as_bytes());
    let low = fnv1a(format!("domain-sid#{high:016x}").as_bytes());
    format!(
        "S-1-5-21-{}-{}-{}",
        high >> 32,
        high & 0xffff_ffff,
        low >> 32
    )
}

/// The SID of an object: the domain SID and a RID from the object's key.
fn sid(domain_sid: &str, key: &str) -> String {
    let rid = 1000 + fnv1a(format!("rid:{key}").as_bytes()) % 1_000_000_000;
    format!("{domain_sid}-{rid}")
}

fn person(
    fixture: &Fixture,
    domain_sid: &str,
    user: Option<&crate::fixture::User>,
    mailbox: Option<&crate::fixture::Mailbox>,
) -> Person {
    let upn = user
        .map(|u| u.upn.as_str())
        .or(mailbox.map(|m| m.upn.as_str()))
        .unwrap_or_default()
        .to_lowercase();
    let alias = local_part(&upn).to_string();
    let id = derived_guid(&upn);
    let mail = user
        .and_then(|u| u.mail.as_deref())
        .unwrap_or(&upn)
        .to_lowercase();
    let display_name = user
        .map(|u| u.display_name.as_str())
        .or_else(|| mailbox.and_then(|m| m.display_name.as_deref()))
        .unwrap_or(&alias)
        .to_string();
    let explicit_name = user.and_then(|u| u.name.clone());
    let name = match &explicit_name {
        Some(name) => name.clone(),
        None if fixture.sim.guid_names => id.clone(),
        None => alias.clone(),
    };
    let sam = user
        .and_then(|u| u.sam_account_name.clone())
        .or(explicit_name)
        .unwrap_or_else(|| alias.clone());
    let kind = match (user.map(|u| u.recipient_type), mailbox.map(|m| m.kind)) {
        (Some(UserType::MailUser), _) => PersonKind::MailUser,
        (Some(UserType::User), _) => PersonKind::User,
        (_, Some(MailboxType::SharedMailbox)) => PersonKind::SharedMailbox,
        _ => PersonKind::UserMailbox,
    };
    let proxy_addresses = user
        .and_then(|u| u.proxy_addresses.clone())
        .unwrap_or_else(|| vec![format!("SMTP:{mail}")]);
    let account_enabled = user
        .and_then(|u| u.account_enabled)
        .unwrap_or(kind != PersonKind::SharedMailbox);
    let folders = if kind.has_mailbox() {
        crate::folders::mailbox_folders(&upn, mailbox)
    } else {
        Vec::new()
    };
    Person {
        dn: distinguished_name(&name, &fixture.tenant_id),
        sid: sid(domain_sid, &upn),
        sid_history: user.map(|u| u.sid_history.clone()).unwrap_or_default(),
        folders,
        root_folder_name: crate::folders::root_name(mailbox),
        mail,
        display_name,
        id,
        name,
        alias,
        kind,
        sam,
        proxy_addresses,
        account_enabled,
        last_sign_in: user.and_then(|u| u.last_sign_in),
        upn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(users: &str) -> Directory {
        let json = format!(
            r#"{{"tenant_id":"t","organization":{{"company_id":"c","company_name":"C",
            "m365_permission_ticket_board":"B","notification_sender":"n@x.com"}},
            "users":{users}}}"#
        );
        Directory::new(&Fixture::from_json(&json).unwrap())
    }

    #[test]
    fn sids_share_the_domain_and_resolve() {
        let directory = directory(
            r#"[{"upn":"a@x.com","display_name":"A","sid_history":["S-1-5-21-1-2-3-500"]},
                {"upn":"b@x.com","display_name":"B","sam_account_name":"bee"}]"#,
        );
        let (a, b) = (&directory.people[0], &directory.people[1]);
        let domain = |sid: &str| sid.rsplit_once('-').unwrap().0.to_string();
        assert_eq!(domain(&a.sid), domain(&b.sid));
        assert_ne!(a.sid, b.sid);
        assert_eq!(a.sid.matches('-').count(), 7, "{}", a.sid);
        for identity in [
            a.sid.as_str(),
            "S-1-5-21-1-2-3-500",
            "NAMPR01A001\\a",
            "smtp:A@x.com",
        ] {
            let found = directory.resolve_exact(identity, Scope::All).unwrap();
            assert_eq!(found.key(), "a@x.com", "{identity}");
        }
        assert_eq!(
            directory
                .resolve_exact("nampr01a001\\BEE", Scope::All)
                .unwrap()
                .key(),
            "b@x.com"
        );
        assert!(directory.resolve_exact("OTHER\\bee", Scope::All).is_none());
        assert_eq!(
            Principal::Person(b).shown(ShownAs::DomainSam),
            "NAMPR01A001\\bee"
        );
    }
}
