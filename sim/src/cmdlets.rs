//! The Exchange cmdlets the simulator understands, with their parameter sets.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::directory::{Account, Directory, Person, Principal, Scope, Unresolved};
use crate::exo::{CmdletInput, ExoError};
use crate::folder_cmdlets;
use crate::inbox_rules::{self, ForwardingChange};
pub(crate) use crate::inbox_rules::{rule_identity, without_smtp_prefix};
use crate::state::{FullAccessAce, SendAsAce};
use crate::Sim;

const SELF: &str = "NT AUTHORITY\\SELF";
/// Common PowerShell parameters every cmdlet accepts (and the simulator ignores).
const COMMON: &[&str] = &["ErrorAction", "WarningAction", "Verbose", "Debug"];

/// What a cmdlet answers: `value` items and `@adminapi.warnings`.
#[derive(Default)]
pub(crate) struct Output {
    pub items: Vec<Value>,
    pub warnings: Vec<String>,
    /// Set when `items` hold only the page asked for ([`Output::page`]): how many items the
    /// whole result has.
    pub listed: Option<usize>,
}

/// The part of a cmdlet's result one answer shows (`$skiptoken` offset, page size).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub offset: usize,
    pub size: usize,
}

impl Output {
    /// A listing's answer: only the items inside `window` are built and serialized, the rest
    /// only counted. A tenant-wide listing holds thousands of items and is read a page at a
    /// time, so building all of them for every page made each page cost the whole listing.
    pub(crate) fn page<T, U: Serialize>(
        items: &[T],
        window: Window,
        build: impl Fn(&T) -> U,
    ) -> Output {
        let shown = items.iter().skip(window.offset).take(window.size);
        let mut output = Output::items(shown.map(build));
        output.listed = Some(items.len());
        output
    }

    pub(crate) fn items<T: Serialize>(items: impl IntoIterator<Item = T>) -> Output {
        let items = items
            .into_iter()
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .collect();
        Output {
            items,
            warnings: Vec::new(),
            listed: None,
        }
    }
    pub(crate) fn warning(warning: String) -> Output {
        Output {
            items: Vec::new(),
            warnings: vec![warning],
            listed: None,
        }
    }
}

pub(crate) type CmdletResult = Result<Output, ExoError>;

struct Cmdlet {
    name: &'static str,
    parameters: &'static [&'static str],
    required: &'static [&'static str],
    run: fn(&Sim, &Params) -> CmdletResult,
}

const CMDLETS: &[Cmdlet] = &[
    Cmdlet {
        name: "Get-Mailbox",
        parameters: &["Identity", "Filter", "ResultSize", "RecipientTypeDetails"],
        required: &[],
        run: get_mailbox,
    },
    Cmdlet {
        name: "Get-MailboxPermission",
        parameters: &["Identity", "User", "ResultSize"],
        required: &["Identity"],
        run: get_mailbox_permission,
    },
    Cmdlet {
        name: "Get-RecipientPermission",
        parameters: &["Identity", "Trustee", "AccessRights", "ResultSize"],
        required: &[],
        run: get_recipient_permission,
    },
    Cmdlet {
        name: "Get-Recipient",
        parameters: &["Identity", "ResultSize", "RecipientTypeDetails"],
        required: &[],
        run: get_recipient,
    },
    Cmdlet {
        name: "Get-User",
        parameters: &["Identity", "ResultSize", "RecipientTypeDetails"],
        required: &[],
        run: get_user,
    },
    Cmdlet {
        name: "Get-Group",
        parameters: &["Identity", "ResultSize"],
        required: &[],
        run: get_group,
    },
    Cmdlet {
        name: "Get-MailboxFolderStatistics",
        parameters: &["Identity", "FolderScope", "ResultSize"],
        required: &["Identity"],
        run: folder_cmdlets::get_mailbox_folder_statistics,
    },
    Cmdlet {
        name: "Get-MailboxFolderPermission",
        parameters: &["Identity", "User"],
        required: &["Identity"],
        run: folder_cmdlets::get_mailbox_folder_permission,
    },
    Cmdlet {
        name: "Remove-MailboxFolderPermission",
        parameters: &[
            "Identity",
            "User",
            "Confirm",
            "Force",
            "SendNotificationToUser",
        ],
        required: &["Identity", "User"],
        run: folder_cmdlets::remove_mailbox_folder_permission,
    },
    Cmdlet {
        name: "Add-MailboxFolderPermission",
        parameters: &[
            "Identity",
            "User",
            "AccessRights",
            "SharingPermissionFlags",
            "SendNotificationToUser",
            "Confirm",
        ],
        required: &["Identity", "User", "AccessRights"],
        run: folder_cmdlets::add_mailbox_folder_permission,
    },
    Cmdlet {
        name: "Set-MailboxFolderPermission",
        parameters: &[
            "Identity",
            "User",
            "AccessRights",
            "SharingPermissionFlags",
            "SendNotificationToUser",
            "Confirm",
        ],
        required: &["Identity", "User", "AccessRights"],
        run: folder_cmdlets::set_mailbox_folder_permission,
    },
    Cmdlet {
        name: "Remove-MailboxPermission",
        parameters: &[
            "Identity",
            "User",
            "AccessRights",
            "InheritanceType",
            "Confirm",
        ],
        required: &["Identity", "User", "AccessRights"],
        run: remove_mailbox_permission,
    },
    Cmdlet {
        name: "Add-MailboxPermission",
        parameters: &[
            "Identity",
            "User",
            "AccessRights",
            "InheritanceType",
            "AutoMapping",
            "Confirm",
        ],
        required: &["Identity", "User", "AccessRights"],
        run: add_mailbox_permission,
    },
    Cmdlet {
        name: "Remove-RecipientPermission",
        parameters: &["Identity", "Trustee", "AccessRights", "Confirm"],
        required: &["Identity", "Trustee", "AccessRights"],
        run: remove_recipient_permission,
    },
    Cmdlet {
        name: "Add-RecipientPermission",
        parameters: &["Identity", "Trustee", "AccessRights", "Confirm"],
        required: &["Identity", "Trustee", "AccessRights"],
        run: add_recipient_permission,
    },
    Cmdlet {
        name: "Set-Mailbox",
        parameters: &[
            "Identity",
            "GrantSendOnBehalfTo",
            "ForwardingSmtpAddress",
            "ForwardingAddress",
            "DeliverToMailboxAndForward",
            "Confirm",
            "Force",
        ],
        required: &["Identity"],
        run: set_mailbox,
    },
    Cmdlet {
        name: "Get-InboxRule",
        parameters: &["Mailbox", "Identity", "IncludeHidden"],
        required: &[],
        run: inbox_rules::get_inbox_rule,
    },
    Cmdlet {
        name: "Disable-InboxRule",
        parameters: &[
            "Identity",
            "Mailbox",
            "Confirm",
            "AlwaysDeleteOutlookRulesBlob",
            "Force",
        ],
        required: &["Identity"],
        run: inbox_rules::disable_inbox_rule,
    },
    Cmdlet {
        name: "Enable-InboxRule",
        parameters: &[
            "Identity",
            "Mailbox",
            "Confirm",
            "AlwaysDeleteOutlookRulesBlob",
            "Force",
        ],
        required: &["Identity"],
        run: inbox_rules::enable_inbox_rule,
    },
];

fn cmdlet(name: &str) -> Option<&'static Cmdlet> {
    CMDLETS
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name.trim()))
}

/// Canonical spelling of a known cmdlet name (names match case-insensitively).
pub(crate) fn canonical_name(name: &str) -> Option<&'static str> {
    cmdlet(name).map(|c| c.name)
}

/// Runs a cmdlet for the answer page `window` (listings build only that page's items).
pub(crate) fn invoke(sim: &Sim, input: &CmdletInput, window: Window) -> CmdletResult {
    let cmdlet = cmdlet(&input.name).ok_or_else(|| ExoError::command_not_found(&input.name))?;
    let params = Params {
        values: &input.parameters,
        window,
    };
    let allowed = cmdlet.parameters.iter().chain(COMMON);
    if let Some(unknown) = params
        .values
        .keys()
        .find(|k| !allowed.clone().any(|a| a.eq_ignore_ascii_case(k)))
    {
        return Err(ExoError::binding(format!(
            "A parameter cannot be found that matches parameter name '{unknown}'."
        )));
    }
    let missing: Vec<&str> = cmdlet
        .required
        .iter()
        .copied()
        .filter(|r| params.get(r).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ExoError::binding(format!(
            "Cannot process command because of one or more missing mandatory parameters: {}.",
            missing.join(" ")
        )));
    }
    (cmdlet.run)(sim, &params)
}

/// Cmdlet parameters (names match case-insensitively) and the answer page asked for.
pub(crate) struct Params<'a> {
    values: &'a Map<String, Value>,
    window: Window,
}

impl Params<'_> {
    /// A parameter as given, JSON `null` included (`$null` clears a setting).
    pub(crate) fn given(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A switch parameter (`-IncludeHidden`): `true`, or absent.
    pub(crate) fn switch(&self, name: &str) -> Result<bool, ExoError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(ExoError::binding(format!(
                "Cannot bind parameter '{name}': a switch takes true or false."
            ))),
        }
    }

    /// The answer page asked for.
    pub(crate) fn window(&self) -> Window {
        self.window
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, ExoError> {
        self.get(name).map(|value| scalar(name, value)).transpose()
    }

    /// A parameter the cmdlet declares mandatory (presence checked by `invoke`).
    pub(crate) fn required(&self, name: &str) -> Result<String, ExoError> {
        self.text(name)?
            .ok_or_else(|| ExoError::binding(format!("Missing parameter '{name}'.")))
    }

    /// A string or an array of strings.
    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, ExoError> {
        self.get(name)
            .map_or(Ok(Vec::new()), |value| list(name, value))
    }

    /// `ResultSize`: `Unlimited` or a count.
    fn result_size(&self) -> Result<Option<usize>, ExoError> {
        match self.text("ResultSize")? {
            None => Ok(None),
            Some(size) if size.eq_ignore_ascii_case("unlimited") => Ok(None),
            Some(size) => size.parse().map(Some).map_err(|_| {
                ExoError::binding(format!(
                    "Cannot bind parameter 'ResultSize'. Cannot convert value \"{size}\"."
                ))
            }),
        }
    }
}

fn scalar(name: &str, value: &Value) -> Result<String, ExoError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ExoError::binding(format!(
            "Cannot bind parameter '{name}': a single value is expected."
        ))),
    }
}

fn list(name: &str, value: &Value) -> Result<Vec<String>, ExoError> {
    match value {
        Value::Array(items) => items.iter().map(|item| scalar(name, item)).collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![scalar(name, other)?]),
    }
}

/// Apply `ResultSize` to a result list.
fn limited<T>(mut items: Vec<T>, size: Option<usize>) -> Vec<T> {
    if let Some(size) = size {
        items.truncate(size);
    }
    items
}

pub(crate) fn mailbox<'a>(
    directory: &'a Directory,
    identity: &str,
) -> Result<&'a Person, ExoError> {
    directory
        .resolve_mailbox(identity)
        .map_err(|e| unresolved(e, identity))
}

/// Any Exchange recipient (mailbox, mail user, mail-enabled group, contact).
pub(crate) fn recipient<'a>(
    directory: &'a Directory,
    identity: &str,
) -> Result<Principal<'a>, ExoError> {
    directory
        .resolve(identity, Scope::Recipients)
        .map_err(|e| unresolved(e, identity))
}

pub(crate) fn account<'a>(
    directory: &'a Directory,
    identity: &'a str,
) -> Result<Account<'a>, ExoError> {
    directory
        .account(identity)
        .map_err(|e| unresolved(e, identity))
}

fn unresolved(error: Unresolved, identity: &str) -> ExoError {
    match error {
        Unresolved::NotFound => ExoError::not_found(identity),
        Unresolved::Ambiguous => ExoError::ambiguous(identity),
    }
}

/// Mutations on a `sim.fail_mailboxes` mailbox fail.
pub(crate) fn ensure_writable(sim: &Sim, recipient: Principal) -> Result<(), ExoError> {
    if sim.fails(recipient.key()) {
        return Err(ExoError::access_denied(recipient.key()));
    }
    Ok(())
}

/// `AccessRights` of a Send As cmdlet must be `SendAs`.
fn ensure_send_as(params: &Params) -> Result<(), ExoError> {
    match params.list("AccessRights")?.iter().find(|r| !r.eq_ignore_ascii_case("SendAs")) {
        Some(bad) => Err(ExoError::binding(format!(
            "Cannot bind parameter 'AccessRights'. Cannot convert value \"{bad}\": the only valid value is \"SendAs\"."
        ))),
        None => Ok(()),
    }
}

// ---- Get-Mailbox ---------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MailboxItem<'a> {
    user_principal_name: &'a str,
    primary_smtp_address: &'a str,
    display_name: &'a str,
    name: &'a str,
    alias: &'a str,
    distinguished_name: &'a str,
    external_directory_object_id: &'a str,
    recipient_type_details: &'a str,
    grant_send_on_behalf_to: Vec<&'a str>,
    /// `smtp:x@y`, or null.
    forwarding_smtp_address: Option<String>,
    /// The recipient's Name, or null.
    forwarding_address: Option<&'a str>,
    deliver_to_mailbox_and_forward: bool,
}

fn get_mailbox(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mut mailboxes: Vec<&Person> = match params.text("Identity")? {
        Some(identity) => vec![mailbox(directory, &identity)?],
        None => directory
            .people
            .iter()
            .filter(|p| p.kind.has_mailbox())
            .collect(),
    };
    let types = params.list("RecipientTypeDetails")?;
    if !types.is_empty() {
        mailboxes.retain(|m| {
            types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(m.kind.as_str()))
        });
    }
    let state = sim.state();
    if let Some(filter) = params.text("Filter")? {
        let delegate = send_on_behalf_filter(directory, &filter)?;
        mailboxes.retain(|m| {
            state
                .visible(&m.upn)
                .send_on_behalf
                .iter()
                .any(|s| delegate.matches(directory, s))
        });
    }
    let mailboxes = limited(mailboxes, params.result_size()?);
    Ok(Output::page(&mailboxes, params.window, |m| {
        let grants = state.visible(&m.upn);
        MailboxItem {
            user_principal_name: &m.upn,
            primary_smtp_address: &m.mail,
            display_name: &m.display_name,
            name: &m.name,
            alias: &m.alias,
            distinguished_name: &m.dn,
            external_directory_object_id: &m.id,
            recipient_type_details: m.kind.as_str(),
            grant_send_on_behalf_to: grants
                .send_on_behalf
                .iter()
                .map(|s| directory.name_of(s))
                .collect(),
            forwarding_smtp_address: grants
                .forwarding
                .smtp_address
                .as_ref()
                .map(|a| format!("smtp:{a}")),
            forwarding_address: grants
                .forwarding
                .address
                .as_deref()
                .map(|a| directory.name_of(a)),
            deliver_to_mailbox_and_forward: grants.forwarding.deliver_to_mailbox_and_forward,
        }
    }))
}

/// The one supported filter: `GrantSendOnBehalfTo -eq '<DN | UPN | Name | id>'`
/// of a mailbox, mail user or mail-enabled group.
fn send_on_behalf_filter<'a>(
    directory: &'a Directory,
    filter: &str,
) -> Result<Account<'a>, ExoError> {
    let value = parse_eq_filter(filter, "GrantSendOnBehalfTo").ok_or_else(|| {
        ExoError::binding(format!(
            "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"Invalid filter syntax. \
             The simulator supports only \"GrantSendOnBehalfTo -eq '<value>'\": {filter}\""
        ))
    })?;
    let delegate = directory
        .resolve_exact(&value, Scope::Recipients)
        .ok_or_else(|| {
            ExoError::binding(format!(
                "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \
                 \"Couldn't find object \"{value}\". Please make sure that it was spelled correctly.\""
            ))
        })?;
    Ok(Account::Known(delegate))
}

/// Parse `<property> -eq '<value>'` (OPATH; `''` escapes a quote, double
/// quotes work too; optional surrounding braces or parentheses).
fn parse_eq_filter(filter: &str, property: &str) -> Option<String> {
    let mut text = filter.trim();
    while let Some(inner) = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .or_else(|| text.strip_prefix('{')?.strip_suffix('}'))
    {
        text = inner.trim();
    }
    let (name, rest) = text.split_once(char::is_whitespace)?;
    if !name.eq_ignore_ascii_case(property) {
        return None;
    }
    let rest = rest.trim_start();
    let operator = rest.get(..3)?;
    if !operator.eq_ignore_ascii_case("-eq") {
        return None;
    }
    let rest = rest[3..].trim();
    let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"')?;
    let mut value = String::new();
    let mut chars = rest[1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            if chars.peek() == Some(&quote) {
                chars.next();
                value.push(quote);
                continue;
            }
            return chars.all(char::is_whitespace).then_some(value);
        }
        value.push(c);
    }
    None
}

// ---- Get-MailboxPermission / Add / Remove ------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MailboxPermissionItem<'a> {
    identity: &'a str,
    user: String,
    access_rights: &'a [String],
    is_inherited: bool,
    deny: bool,
}

impl<'a> MailboxPermissionItem<'a> {
    fn new(directory: &Directory, mailbox: &'a Person, ace: &'a FullAccessAce) -> Self {
        MailboxPermissionItem {
            identity: &mailbox.name,
            user: directory.shown(&ace.user, ace.shown_as),
            access_rights: &ace.access_rights,
            is_inherited: ace.inherited,
            deny: ace.deny,
        }
    }
}

fn self_ace() -> FullAccessAce {
    FullAccessAce {
        user: SELF.to_string(),
        inherited: false,
        deny: false,
        access_rights: vec!["FullAccess".to_string(), "ReadPermission".to_string()],
        shown_as: None,
    }
}

fn get_mailbox_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mailbox = mailbox(directory, &params.required("Identity")?)?;
    if sim.unreadable(&mailbox.upn) {
        return Err(ExoError::unreadable(&mailbox.upn));
    }
    let user = params.text("User")?;
    let user = user.as_deref().map(|u| account(directory, u)).transpose()?;
    let mut aces = sim.state().visible(&mailbox.upn).full_access.clone();
    if !aces.iter().any(|a| a.user.eq_ignore_ascii_case(SELF)) {
        aces.insert(0, self_ace());
    }
    if let Some(user) = &user {
        aces.retain(|a| user.matches(directory, &a.user));
    }
    let items = limited(aces, params.result_size()?);
    Ok(Output::items(items.iter().map(|a| {
        MailboxPermissionItem::new(directory, mailbox, a)
    })))
}

fn remove_mailbox_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mailbox = mailbox(directory, &params.required("Identity")?)?;
    let rights = params.list("AccessRights")?;
    ensure_writable(sim, Principal::Person(mailbox))?;
    let user = params.required("User")?;
    let account = account(directory, &user)?;
    if sim.ignores_removals(&mailbox.upn) {
        return Ok(Output::default());
    }
    let removed = sim.state().write(&mailbox.upn, |grants| {
        let overlaps = |ace: &FullAccessAce| {
            ace.access_rights
                .iter()
                .any(|r| rights.iter().any(|g| g.eq_ignore_ascii_case(r)))
        };
        let found = grants.full_access.iter().position(|ace| {
            !ace.inherited && !ace.deny && account.matches(directory, &ace.user) && overlaps(ace)
        });
        if let Some(index) = found {
            let ace = &mut grants.full_access[index];
            ace.access_rights
                .retain(|r| !rights.iter().any(|g| g.eq_ignore_ascii_case(r)));
            if ace.access_rights.is_empty() {
                grants.full_access.remove(index);
            }
        }
        found.is_some()
    });
    match (removed, account) {
        (true, _) => Ok(Output::default()),
        (false, Account::Verbatim(_)) => Err(ExoError::not_found(&user)),
        (false, Account::Known(_)) => Ok(Output::warning(format!(
            "WARNING: Can't remove the access control entry on the object \"{}\" for account \"{}\" because the \
             ACE doesn't exist on the object.",
            mailbox.dn,
            account.label()
        ))),
    }
}

fn add_mailbox_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mailbox = mailbox(directory, &params.required("Identity")?)?;
    let rights = params.list("AccessRights")?;
    ensure_writable(sim, Principal::Person(mailbox))?;
    let user = recipient(directory, &params.required("User")?)?;
    let added = sim.state().write(&mailbox.upn, |grants| {
        let existing = grants
            .full_access
            .iter_mut()
            .find(|a| !a.inherited && !a.deny && a.user == user.key());
        match existing {
            Some(ace) => {
                let missing: Vec<String> = rights
                    .iter()
                    .filter(|r| !ace.access_rights.iter().any(|a| a.eq_ignore_ascii_case(r)))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    return None;
                }
                ace.access_rights.extend(missing);
                Some(ace.clone())
            }
            None => {
                let ace = FullAccessAce {
                    user: user.key().to_string(),
                    inherited: false,
                    deny: false,
                    access_rights: rights.clone(),
                    shown_as: None,
                };
                grants.full_access.push(ace.clone());
                Some(ace)
            }
        }
    });
    let Some(ace) = added else {
        return Ok(Output::warning(format!(
            "WARNING: An existing permission entry was found for user: {}.",
            user.name()
        )));
    };
    Ok(Output::items([MailboxPermissionItem::new(
        directory, mailbox, &ace,
    )]))
}

// ---- Get-RecipientPermission / Add / Remove ----------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientPermissionItem<'a> {
    identity: &'a str,
    trustee: String,
    access_control_type: &'static str,
    access_rights: [&'static str; 1],
    is_inherited: bool,
}

impl<'a> RecipientPermissionItem<'a> {
    fn new(directory: &Directory, recipient: Principal<'a>, ace: &SendAsAce) -> Self {
        RecipientPermissionItem {
            identity: recipient.name(),
            trustee: directory.shown(&ace.user, ace.shown_as),
            access_control_type: if ace.deny { "Deny" } else { "Allow" },
            access_rights: ["SendAs"],
            is_inherited: ace.inherited,
        }
    }
}

fn get_recipient_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    ensure_send_as(params)?;
    let recipients: Vec<Principal> = match params.text("Identity")? {
        Some(identity) => vec![recipient(directory, &identity)?],
        None => directory.principals(Scope::Recipients).collect(),
    };
    let trustee = params.text("Trustee")?;
    let trustee = trustee
        .as_deref()
        .map(|t| recipient(directory, t))
        .transpose()?;
    let self_ace = SendAsAce {
        user: SELF.to_string(),
        deny: false,
        inherited: false,
        shown_as: None,
        trustee_lookup_misses: false,
    };
    let state = sim.state();
    let mut entries: Vec<(Principal, SendAsAce)> = Vec::new();
    for recipient in recipients {
        let aces = &state.visible(recipient.key()).send_as;
        match trustee {
            // By trustee, Exchange compares SIDs: an entry whose SID changed is missed.
            Some(who) => {
                let held = aces.iter().filter(|a| {
                    !a.trustee_lookup_misses && Account::Known(who).matches(directory, &a.user)
                });
                entries.extend(held.map(|a| (recipient, a.clone())));
            }
            None => {
                if recipient.mailbox().is_some() {
                    entries.push((recipient, self_ace.clone()));
                }
                entries.extend(aces.iter().map(|a| (recipient, a.clone())));
            }
        }
    }
    let entries = limited(entries, params.result_size()?);
    Ok(Output::page(&entries, params.window, |(recipient, ace)| {
        RecipientPermissionItem::new(directory, *recipient, ace)
    }))
}

fn remove_recipient_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let recipient = recipient(directory, &params.required("Identity")?)?;
    ensure_send_as(params)?;
    ensure_writable(sim, recipient)?;
    let trustee = params.required("Trustee")?;
    let account = account(directory, &trustee)?;
    if sim.ignores_removals(recipient.key()) {
        return Ok(Output::default());
    }
    let removed = sim.state().write(recipient.key(), |grants| {
        let found = grants
            .send_as
            .iter()
            .position(|a| !a.inherited && !a.deny && account.matches(directory, &a.user));
        found.map(|index| grants.send_as.remove(index)).is_some()
    });
    match (removed, account) {
        (true, _) => Ok(Output::default()),
        (false, Account::Verbatim(_)) => Err(ExoError::not_found(&trustee)),
        (false, Account::Known(_)) => Ok(Output::warning(format!(
            "WARNING: Can't remove the access control entry on the object \"{}\" for account \"{}\" because the \
             ACE isn't present.",
            recipient.dn(),
            account.label()
        ))),
    }
}

fn add_recipient_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let trustee = params.required("Trustee")?;
    let recipient = recipient(directory, &params.required("Identity")?)?;
    ensure_send_as(params)?;
    ensure_writable(sim, recipient)?;
    let trustee = directory
        .resolve(&trustee, Scope::Recipients)
        .map_err(|e| unresolved(e, &trustee))?;
    let ace = SendAsAce {
        user: trustee.key().to_string(),
        deny: false,
        inherited: false,
        shown_as: None,
        trustee_lookup_misses: false,
    };
    let added = sim.state().write(recipient.key(), |grants| {
        let present = grants
            .send_as
            .iter()
            .any(|a| !a.deny && !a.inherited && a.user == ace.user);
        if !present {
            grants.send_as.push(ace.clone());
        }
        !present
    });
    if !added {
        return Ok(Output::warning(format!(
            "WARNING: The appropriate access control entry is already present on object \"{}\" for account \"{}\".",
            recipient.dn(),
            trustee.key()
        )));
    }
    Ok(Output::items([RecipientPermissionItem::new(
        directory, recipient, &ace,
    )]))
}

// ---- Get-Recipient / Get-User ----------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientItem<'a> {
    identity: &'a str,
    name: &'a str,
    alias: &'a str,
    display_name: &'a str,
    primary_smtp_address: &'a str,
    distinguished_name: &'a str,
    recipient_type_details: &'static str,
    external_directory_object_id: &'a str,
}

fn get_recipient(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mut recipients: Vec<Principal> = match params.text("Identity")? {
        Some(identity) => vec![recipient(directory, &identity)?],
        None => directory.principals(Scope::Recipients).collect(),
    };
    let types = params.list("RecipientTypeDetails")?;
    if !types.is_empty() {
        recipients.retain(|r| {
            types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(r.recipient_type()))
        });
    }
    let recipients = limited(recipients, params.result_size()?);
    Ok(Output::page(&recipients, params.window, |r| {
        RecipientItem {
            identity: r.name(),
            name: r.name(),
            alias: r.alias(),
            display_name: r.display_name(),
            primary_smtp_address: r.mail(),
            distinguished_name: r.dn(),
            recipient_type_details: r.recipient_type(),
            external_directory_object_id: r.id(),
        }
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserItem<'a> {
    identity: &'a str,
    user_principal_name: &'a str,
    name: &'a str,
    display_name: &'a str,
    distinguished_name: &'a str,
    external_directory_object_id: &'a str,
    recipient_type_details: &'static str,
    sid: &'a str,
    sid_history: &'a [String],
    sam_account_name: &'a str,
    windows_email_address: &'a str,
}

fn get_user(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mut users: Vec<&Person> = match params.text("Identity")? {
        Some(identity) => vec![directory
            .resolve_user(&identity)
            .map_err(|e| unresolved(e, &identity))?],
        None => directory.people.iter().collect(),
    };
    let types = params.list("RecipientTypeDetails")?;
    if !types.is_empty() {
        users.retain(|u| {
            types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(u.kind.as_str()))
        });
    }
    let users = limited(users, params.result_size()?);
    Ok(Output::page(&users, params.window, |u| UserItem {
        identity: &u.name,
        user_principal_name: &u.upn,
        name: &u.name,
        display_name: &u.display_name,
        distinguished_name: &u.dn,
        external_directory_object_id: &u.id,
        recipient_type_details: u.kind.as_str(),
        sid: &u.sid,
        sid_history: &u.sid_history,
        sam_account_name: &u.sam,
        windows_email_address: &u.mail,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupItem<'a> {
    identity: &'a str,
    name: &'a str,
    display_name: &'a str,
    windows_email_address: &'a str,
    distinguished_name: &'a str,
    recipient_type_details: &'static str,
    external_directory_object_id: &'a str,
}

/// `Get-Group`: every group, mail-enabled or not — a security group that is no Exchange
/// recipient (`Get-Recipient` does not find it) can still hold Full Access.
fn get_group(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let groups: Vec<Principal> = match params.text("Identity")? {
        Some(identity) => vec![directory
            .resolve(&identity, Scope::Groups)
            .map_err(|e| unresolved(e, &identity))?],
        None => directory.principals(Scope::Groups).collect(),
    };
    let groups = limited(groups, params.result_size()?);
    Ok(Output::page(&groups, params.window, |g| GroupItem {
        identity: g.name(),
        name: g.name(),
        display_name: g.display_name(),
        windows_email_address: g.mail(),
        distinguished_name: g.dn(),
        // A cloud security group that is not mail-enabled.
        recipient_type_details: match g.recipient_type() {
            "SecurityGroup" => "UniversalSecurityGroup",
            other => other,
        },
        external_directory_object_id: g.id(),
    }))
}

// ---- Set-Mailbox -----------------------------------------------------------------

/// `GrantSendOnBehalfTo`: `{"add": .., "remove": ..}` (a GenericHashTable), or
/// a plain value / list that replaces the whole list.
enum DelegateChange {
    Edit {
        add: Vec<String>,
        remove: Vec<String>,
    },
    Replace(Vec<String>),
}

fn delegate_change(value: &Value) -> Result<DelegateChange, ExoError> {
    let Value::Object(table) = value else {
        return Ok(DelegateChange::Replace(list("GrantSendOnBehalfTo", value)?));
    };
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for (key, value) in table {
        match key.to_ascii_lowercase().as_str() {
            "@odata.type" => {}
            "add" => add = list("GrantSendOnBehalfTo", value)?,
            "remove" => remove = list("GrantSendOnBehalfTo", value)?,
            other => {
                return Err(ExoError::binding(format!(
                    "Cannot bind parameter 'GrantSendOnBehalfTo': unknown key '{other}' (use add or remove)."
                )))
            }
        }
    }
    Ok(DelegateChange::Edit { add, remove })
}

fn set_mailbox(sim: &Sim, params: &Params) -> CmdletResult {
    let directory = &sim.directory;
    let mailbox = mailbox(directory, &params.required("Identity")?)?;
    ensure_writable(sim, Principal::Person(mailbox))?;
    let change = params
        .get("GrantSendOnBehalfTo")
        .map(delegate_change)
        .transpose()?;
    let forwarding = ForwardingChange::of(directory, params)?;
    let keys = |users: &[String]| -> Result<Vec<String>, ExoError> {
        users
            .iter()
            .map(|u| recipient(directory, u).map(|p| p.key().to_string()))
            .collect()
    };
    let (replacement, added, remove) = match change {
        None => (None, Vec::new(), Vec::new()),
        Some(DelegateChange::Replace(users)) => (Some(keys(&users)?), Vec::new(), Vec::new()),
        Some(DelegateChange::Edit { add, remove }) => (None, keys(&add)?, remove),
    };
    let removals = remove
        .iter()
        .map(|u| account(directory, u))
        .collect::<Result<Vec<_>, _>>()?;
    let mut state = sim.state();
    let current = &state.grants_of(&mailbox.upn).send_on_behalf;
    let unknown = removals.iter().find(|r| {
        matches!(r, Account::Verbatim(_)) && !current.iter().any(|s| r.matches(directory, s))
    });
    if let Some(unknown) = unknown {
        return Err(ExoError::not_found(unknown.label()));
    }
    let removals_ignored = !removals.is_empty() && sim.ignores_removals(&mailbox.upn);
    let changed = state.write(&mailbox.upn, |grants| {
        let before = grants.send_on_behalf.clone();
        if let Some(replacement) = replacement {
            grants.send_on_behalf = replacement;
        } else {
            if !removals_ignored {
                grants
                    .send_on_behalf
                    .retain(|s| !removals.iter().any(|r| r.matches(directory, s)));
            }
            grants.send_on_behalf.extend(added);
        }
        grants.send_on_behalf.sort();
        grants.send_on_behalf.dedup();
        let forwarding_changed = forwarding.apply(&mut grants.forwarding);
        grants.send_on_behalf != before || forwarding_changed
    });
    if !changed && !removals_ignored {
        return Ok(Output::warning(format!(
            "WARNING: The command completed successfully but no settings of '{}' have been modified.",
            mailbox.name
        )));
    }
    Ok(Output::default())
}

#[cfg(test)]
mod tests {
    use super::parse_eq_filter;

    #[test]
    fn filter_parsing() {
        let dn = "CN=john.smith,OU=t,DC=COM";
        assert_eq!(
            parse_eq_filter(
                &format!("GrantSendOnBehalfTo -eq '{dn}'"),
                "GrantSendOnBehalfTo"
            )
            .as_deref(),
            Some(dn)
        );
        assert_eq!(
            parse_eq_filter("{grantsendonbehalfto -EQ \"a\"}", "GrantSendOnBehalfTo").as_deref(),
            Some("a")
        );
        assert_eq!(
            parse_eq_filter("GrantSendOnBehalfTo -eq 'O''Brien'", "GrantSendOnBehalfTo").as_deref(),
            Some("O'Brien")
        );
        assert_eq!(
            parse_eq_filter("GrantSendOnBehalfTo -eq 'a' -or x", "GrantSendOnBehalfTo"),
            None
        );
        assert_eq!(parse_eq_filter("Name -eq 'a'", "GrantSendOnBehalfTo"), None);
        assert_eq!(
            parse_eq_filter("GrantSendOnBehalfTo -like 'a'", "GrantSendOnBehalfTo"),
            None
        );
    }
}
