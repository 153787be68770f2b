//! The Exchange Online admin API: cmdlets through `InvokeCommand`.

use crate::adapters::http::{Call, HttpCore, Reply};
use crate::adapters::m365::api::{diagnostics_reason, Collection, ErrorBody, M365Api, M365Request};
use crate::adapters::m365::token::EXCHANGE_SCOPE;
use crate::config::{AppCredentials, ServiceUrls};
use crate::error::{RemoteError, ENTRY_EXISTS, ENTRY_NOT_FOUND};
use crate::model::{InboxRule, MailboxForwarding};
use crate::ports::{ExchangeGrants, ExchangePermissions, ExchangeRecipients, MailboxRules};
use crate::ports::{
    ExchangeUser, MailboxInfo, MailboxPermissionEntry, MailboxSettings, Recipient,
    RecipientPermissionEntry, RemovalOutcome,
};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::sync::Arc;

mod grants;
mod rules;

/// The routing hint for cmdlets that are not about one mailbox.
const SYSTEM_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

/// The Get-Mailbox properties `MailboxInfo` needs (a full mailbox object is large).
const MAILBOX_SELECT: &str =
    "UserPrincipalName,PrimarySmtpAddress,DisplayName,Name,Alias,DistinguishedName,\
ExternalDirectoryObjectId,RecipientTypeDetails,GrantSendOnBehalfTo";

/// `MAILBOX_SELECT` and the forwarding settings.
const MAILBOX_SETTINGS_SELECT: &str =
    "UserPrincipalName,PrimarySmtpAddress,DisplayName,Name,Alias,DistinguishedName,\
ExternalDirectoryObjectId,RecipientTypeDetails,GrantSendOnBehalfTo,ForwardingSmtpAddress,\
ForwardingAddress,DeliverToMailboxAndForward";

const RECIPIENT_SELECT: &str = "Name,DisplayName,PrimarySmtpAddress,RecipientTypeDetails,\
ExternalDirectoryObjectId,DistinguishedName,Alias";

const GROUP_SELECT: &str = "Name,DisplayName,WindowsEmailAddress,RecipientTypeDetails,\
ExternalDirectoryObjectId,DistinguishedName";

const USER_SELECT: &str = "UserPrincipalName,Name,DisplayName,DistinguishedName,\
ExternalDirectoryObjectId,RecipientTypeDetails,Sid,SidHistory,SamAccountName,WindowsEmailAddress";

/// Warnings that mean a removal found nothing to remove.
const NOTHING_TO_REMOVE: [&str; 6] = [
    "isn't present",
    "is not present",
    "doesn't exist",
    "does not exist",
    "no settings of",
    "have been modified",
];

pub struct ExchangeClient {
    api: M365Api,
}

/// One cmdlet invocation: what to run and which mailbox routes it.
pub(super) struct Cmdlet<'a> {
    name: &'static str,
    parameters: Value,
    /// The mailbox the cmdlet is about; `None` for tenant-wide cmdlets.
    mailbox: Option<&'a str>,
    select: Option<&'static str>,
}

impl<'a> Cmdlet<'a> {
    pub(super) fn new(name: &'static str, parameters: Value) -> Cmdlet<'a> {
        Cmdlet {
            name,
            parameters,
            mailbox: None,
            select: None,
        }
    }

    pub(super) fn on_mailbox(mut self, mailbox: &'a str) -> Cmdlet<'a> {
        self.mailbox = Some(mailbox);
        self
    }

    pub(super) fn select(mut self, properties: &'static str) -> Cmdlet<'a> {
        self.select = Some(properties);
        self
    }

    /// `Remove-MailboxPermission Identity=a@x User=b@x`, for spans and errors.
    fn describe(&self) -> String {
        let mut text = self.name.to_string();
        for key in ["Identity", "Mailbox", "User", "Trustee", "Filter"] {
            if let Some(value) = self.parameters.get(key).and_then(Value::as_str) {
                text.push_str(&format!(" {key}={value}"));
            }
        }
        text
    }
}

impl ExchangeClient {
    /// `Get-RecipientPermission -AccessRights SendAs -ResultSize Unlimited` with `filter`'s
    /// parameters (`Identity` or `Trustee`, or none: every Send As entry of the tenant).
    async fn send_as_entries_where(
        &self,
        mut filter: Value,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError> {
        filter["AccessRights"] = json!("SendAs");
        filter["ResultSize"] = json!("Unlimited");
        let rows: Vec<RecipientPermissionRow> = self
            .query(Cmdlet::new("Get-RecipientPermission", filter))
            .await?;
        Ok(rows
            .into_iter()
            .map(RecipientPermissionEntry::from)
            .collect())
    }

    pub fn new(core: Arc<HttpCore>, urls: &ServiceUrls, creds: AppCredentials) -> ExchangeClient {
        ExchangeClient {
            api: M365Api::new(
                core,
                "exchange",
                exchange_error,
                &urls.exo,
                &urls.login,
                EXCHANGE_SCOPE,
                creds,
            ),
        }
    }

    /// `X-AnchorMailbox`: the target mailbox when there is one, else the tenant's system mailbox.
    fn anchor(&self, mailbox: Option<&str>) -> String {
        match mailbox {
            Some(m) if m.contains('@') && m.is_ascii() => m.to_string(),
            _ => format!("APP:{SYSTEM_MAILBOX}@{}", self.api.tenant_id()),
        }
    }

    fn invoke_url(&self, select: Option<&str>) -> String {
        let tenant = urlencoding::encode(self.api.tenant_id());
        match select {
            Some(properties) => format!(
                "{}/adminapi/beta/{tenant}/InvokeCommand?$select={properties}",
                self.api.base()
            ),
            None => format!("{}/adminapi/beta/{tenant}/InvokeCommand", self.api.base()),
        }
    }

    /// Runs a cmdlet, POSTing the same body to each `@odata.nextLink` until there is none.
    pub(super) async fn invoke<T: serde::de::DeserializeOwned>(
        &self,
        cmdlet: Cmdlet<'_>,
    ) -> Result<Collection<T>, RemoteError> {
        self.invoke_by_page(cmdlet, |_| {}).await
    }

    /// [`Self::invoke`], telling `page` each page's rows as it arrives.
    async fn invoke_by_page<T: serde::de::DeserializeOwned>(
        &self,
        cmdlet: Cmdlet<'_>,
        page: impl Fn(&[T]),
    ) -> Result<Collection<T>, RemoteError> {
        let call = self.api.call(cmdlet.describe());
        let body = json!({ "CmdletInput": { "CmdletName": cmdlet.name, "Parameters": cmdlet.parameters } });
        let anchor = self.anchor(cmdlet.mailbox);
        let headers = [
            ("Prefer", "odata.maxpagesize=1000"),
            ("X-AnchorMailbox", anchor.as_str()),
        ];
        let mut request =
            M365Request::with_body(Method::POST, self.invoke_url(cmdlet.select), &body)
                .headers(&headers);
        // InvokeCommand is always a POST; a Get-* cmdlet changes nothing and may be asked again.
        if cmdlet.name.starts_with("Get-") {
            request = request.read_only();
        }
        self.api.collect_by_page(&call, request, page).await
    }

    pub(super) async fn query<T: serde::de::DeserializeOwned>(
        &self,
        cmdlet: Cmdlet<'_>,
    ) -> Result<Vec<T>, RemoteError> {
        Ok(self.invoke(cmdlet).await?.items)
    }

    pub(in crate::adapters::m365) async fn remove(
        &self,
        cmdlet: Cmdlet<'_>,
    ) -> Result<RemovalOutcome, RemoteError> {
        match self.invoke::<Value>(cmdlet).await {
            Ok(output) => Ok(removal_outcome(output.warnings, output.replayed)),
            // Asked again after a lost answer, Exchange no longer finds the trustee (an
            // orphaned SID resolves only while its entry exists) or the entry: the lost
            // attempt removed it.
            Err(e) if matches!(e.kind, crate::error::ErrorKind::GoneOnReplay { .. }) => {
                Ok(RemovalOutcome::GoneOnRetry {
                    warning: e.reason(),
                })
            }
            // A folder cmdlet says so with an exception where the others warn.
            Err(e) if e.is_entry_not_found() => Ok(RemovalOutcome::AlreadyGone {
                warning: e.reason(),
            }),
            Err(e) => Err(e),
        }
    }

    async fn add(&self, cmdlet: Cmdlet<'_>) -> Result<(), RemoteError> {
        let output: Collection<Value> = self.invoke(cmdlet).await?;
        for warning in &output.warnings {
            tracing::debug!(%warning, "exchange warning on add");
        }
        Ok(())
    }

    /// A single object by identity; `None` when Exchange says it does not exist.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        cmdlet: Cmdlet<'_>,
        identity: &str,
    ) -> Result<Option<T>, RemoteError> {
        let describe = cmdlet.describe();
        let mut found: Vec<T> = match self.query(cmdlet).await {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        if found.len() > 1 {
            let call = self.api.call(describe);
            return Err(call.api_with(
                StatusCode::OK,
                None,
                format!("'{identity}' matches {} objects", found.len()),
                false,
            ));
        }
        Ok(found.pop())
    }
}

#[async_trait]
impl ExchangeRecipients for ExchangeClient {
    async fn mailboxes(&self) -> Result<Vec<MailboxInfo>, RemoteError> {
        self.mailboxes_by_page(&|_| {}).await
    }

    async fn mailboxes_by_page(
        &self,
        page: &(dyn for<'m> Fn(&'m [MailboxInfo]) + Send + Sync),
    ) -> Result<Vec<MailboxInfo>, RemoteError> {
        let cmdlet =
            Cmdlet::new("Get-Mailbox", json!({ "ResultSize": "Unlimited" })).select(MAILBOX_SELECT);
        let rows: Collection<MailboxRow> = self
            .invoke_by_page(cmdlet, |rows: &[MailboxRow]| {
                let mailboxes: Vec<MailboxInfo> =
                    rows.iter().cloned().map(MailboxInfo::from).collect();
                page(&mailboxes);
            })
            .await?;
        Ok(rows.items.into_iter().map(MailboxInfo::from).collect())
    }

    async fn mailboxes_with_send_on_behalf(
        &self,
        user_dn: &str,
    ) -> Result<Vec<MailboxInfo>, RemoteError> {
        let filter = format!("GrantSendOnBehalfTo -eq '{}'", user_dn.replace('\'', "''"));
        let cmdlet = Cmdlet::new(
            "Get-Mailbox",
            json!({ "ResultSize": "Unlimited", "Filter": filter }),
        )
        .select(MAILBOX_SELECT);
        let rows: Vec<MailboxRow> = self.query(cmdlet).await?;
        Ok(rows.into_iter().map(MailboxInfo::from).collect())
    }

    async fn recipient(&self, identity: &str) -> Result<Option<Recipient>, RemoteError> {
        let cmdlet =
            Cmdlet::new("Get-Recipient", json!({ "Identity": identity })).select(RECIPIENT_SELECT);
        let row: Option<RecipientRow> = self.one(cmdlet, identity).await?;
        Ok(row.map(Recipient::from))
    }

    async fn user(&self, identity: &str) -> Result<Option<ExchangeUser>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-User", json!({ "Identity": identity })).select(USER_SELECT);
        let row: Option<UserRow> = self.one(cmdlet, identity).await?;
        Ok(row.map(ExchangeUser::from))
    }

    async fn group(&self, identity: &str) -> Result<Option<Recipient>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-Group", json!({ "Identity": identity })).select(GROUP_SELECT);
        let row: Option<GroupRow> = self.one(cmdlet, identity).await?;
        Ok(row.map(Recipient::from))
    }

    async fn users(&self) -> Result<Vec<ExchangeUser>, RemoteError> {
        let cmdlet =
            Cmdlet::new("Get-User", json!({ "ResultSize": "Unlimited" })).select(USER_SELECT);
        let rows: Vec<UserRow> = self.query(cmdlet).await?;
        Ok(rows.into_iter().map(ExchangeUser::from).collect())
    }
}

#[async_trait]
impl ExchangePermissions for ExchangeClient {
    async fn mailbox_permissions(
        &self,
        mailbox: &str,
    ) -> Result<Vec<MailboxPermissionEntry>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-MailboxPermission", json!({ "Identity": mailbox }))
            .on_mailbox(mailbox);
        let rows: Vec<MailboxPermissionRow> = self.query(cmdlet).await?;
        Ok(rows.into_iter().map(MailboxPermissionEntry::from).collect())
    }

    async fn send_as_entries(&self) -> Result<Vec<RecipientPermissionEntry>, RemoteError> {
        self.send_as_entries_where(json!({})).await
    }

    async fn send_as_on(
        &self,
        identity: &str,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError> {
        self.send_as_entries_where(json!({ "Identity": identity }))
            .await
    }

    async fn send_as_by_trustee(
        &self,
        trustee: &str,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError> {
        self.send_as_entries_where(json!({ "Trustee": trustee }))
            .await
    }
}

/// Disable-/Enable-InboxRule of one rule (by its `Identity`) of `mailbox`.
fn inbox_rule_cmdlet<'a>(name: &'static str, mailbox: &'a str, identity: &str) -> Cmdlet<'a> {
    Cmdlet::new(
        name,
        json!({ "Identity": identity, "Mailbox": mailbox, "Confirm": false }),
    )
    .on_mailbox(mailbox)
}

/// Remove-/Add-MailboxPermission for Full Access; `extra` holds the parameters only one twin takes.
fn full_access_cmdlet<'a>(
    name: &'static str,
    mailbox: &'a str,
    user: &str,
    extra: Value,
) -> Cmdlet<'a> {
    let mut parameters = json!({ "Identity": mailbox, "User": user, "AccessRights": ["FullAccess"], "InheritanceType": "All" });
    if let (Some(target), Value::Object(extra)) = (parameters.as_object_mut(), extra) {
        target.extend(extra);
    }
    Cmdlet::new(name, parameters).on_mailbox(mailbox)
}

/// Remove-/Add-RecipientPermission. Routed to the mailbox when the recipient is one; a group
/// or contact has no mailbox to route to, so the tenant's system mailbox anchors those.
fn send_as_cmdlet<'a>(
    name: &'static str,
    recipient: &'a str,
    recipient_type: Option<&str>,
    trustee: &str,
) -> Cmdlet<'a> {
    let parameters = json!({ "Identity": recipient, "Trustee": trustee, "AccessRights": ["SendAs"], "Confirm": false });
    let cmdlet = Cmdlet::new(name, parameters);
    match recipient_type {
        Some(t) if !crate::ports::is_mailbox_type(t) => cmdlet,
        _ => cmdlet.on_mailbox(recipient),
    }
}

/// Set-Mailbox editing GrantSendOnBehalfTo; `change` is `add` or `remove`.
fn send_on_behalf_cmdlet<'a>(mailbox: &'a str, change: &str, user: &str) -> Cmdlet<'a> {
    let delta = json!({ "@odata.type": "#Exchange.GenericHashTable", change: user });
    Cmdlet::new(
        "Set-Mailbox",
        json!({ "Identity": mailbox, "GrantSendOnBehalfTo": delta }),
    )
    .on_mailbox(mailbox)
}

/// A removal whose warning says nothing was there is "already gone", which counts as removed;
/// on a replayed call it was this call's earlier attempt that removed it.
fn removal_outcome(warnings: Vec<String>, replayed: bool) -> RemovalOutcome {
    let nothing_there = |w: &String| {
        let w = w.to_lowercase();
        NOTHING_TO_REMOVE.iter().any(|pattern| w.contains(pattern))
    };
    match (warnings.into_iter().find(nothing_there), replayed) {
        (Some(warning), false) => RemovalOutcome::AlreadyGone { warning },
        (Some(warning), true) => RemovalOutcome::GoneOnRetry { warning },
        (None, _) => RemovalOutcome::Removed,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// How trying an Exchange exception again fares, by its type name: the HTTP status says
/// little (permanent cmdlet failures come as 500).
fn exception_is_transient(exception: &str) -> Option<bool> {
    const PERMANENT: [&str; 13] = [
        "NotFound",
        "Ambiguous",
        "AccessDenied",
        "Unauthorized",
        "ParameterBinding",
        "CommandNotFound",
        "Argument",
        "Validation",
        "RecipientTask",
        "TaskException",
        // InvalidOperation; a folder cmdlet's InvalidInternalUserId / InvalidExternalUserId.
        "Invalid",
        "Permanent",
        // A folder cmdlet's CannotChangePermissionsOnFolder / CannotRemoveSpecialUser.
        "Cannot",
    ];
    const TRANSIENT: [&str; 5] = [
        "Transient",
        "ServerBusy",
        "Timeout",
        "Throttl",
        "Unavailable",
    ];
    let e = exception.to_ascii_lowercase();
    if TRANSIENT
        .iter()
        .any(|t| e.contains(&t.to_ascii_lowercase()))
    {
        Some(true)
    } else if PERMANENT
        .iter()
        .any(|p| e.contains(&p.to_ascii_lowercase()))
    {
        Some(false)
    } else {
        None
    }
}

/// `Ex6F9304|Microsoft...ManagementObjectNotFoundException|The operation couldn't ...` →
/// (exception type, text); a message without that shape is all text.
fn split_detail(message: &str) -> (Option<&str>, &str) {
    let mut parts = message.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_code), Some(exception), Some(text)) if !exception.contains(' ') => (
            Some(exception.trim()).filter(|e| !e.is_empty()),
            text.trim(),
        ),
        _ => (None, message.trim()),
    }
}

/// The code of a folder-permission exception a caller acts on ([`ENTRY_NOT_FOUND`],
/// [`ENTRY_EXISTS`]), by its type name or, without one, by the text Exchange writes for it.
fn folder_entry_exception(exception: Option<&str>, text: &str) -> Option<&'static str> {
    let known = [
        (
            "UserNotFoundInPermissionEntryException",
            "no existing permission entry found",
            ENTRY_NOT_FOUND,
        ),
        (
            "UserAlreadyExistsInPermissionEntryException",
            "existing permission entry was found",
            ENTRY_EXISTS,
        ),
    ];
    known.into_iter().find_map(|(name, words, code)| {
        (exception.is_some_and(|e| e.ends_with(name)) || text.contains(words)).then_some(code)
    })
}

fn exchange_error(call: &Call, reply: &Reply) -> RemoteError {
    let parsed = ErrorBody::parse(&reply.body);
    let raw = parsed
        .as_ref()
        .and_then(|b| {
            (!b.details.is_empty())
                .then(|| b.details.join("; "))
                .or_else(|| b.inner.clone())
                .or_else(|| b.message.clone())
        })
        .or_else(|| diagnostics_reason(reply))
        .unwrap_or_else(|| reply.body_snippet());
    let code = parsed.and_then(|b| b.code);
    // Several details: classify by the first, show every text.
    let (exception, _) = split_detail(&raw);
    let text = raw
        .split("; ")
        .map(|d| split_detail(d).1)
        .collect::<Vec<_>>()
        .join("; ");
    let lower = text.to_lowercase();
    // A folder permission entry that is (not) there names its exception in `code`: "not
    // found" here is about the entry, not the folder, and must not read as a missing object.
    if let Some(entry) = folder_entry_exception(exception, &lower) {
        return call.api_with(reply.status, Some(entry.to_string()), text, false);
    }
    let not_found = exception.is_some_and(|e| e.contains("NotFound"))
        || lower.contains("couldn't be found")
        || lower.contains("could not be found");
    match reply.status {
        StatusCode::UNAUTHORIZED => call.auth(text),
        StatusCode::FORBIDDEN => call.api_with(reply.status, code, text, false),
        _ if lower.contains("matches multiple entries") => {
            call.api_with(reply.status, code, text, false)
        }
        _ if not_found || reply.status == StatusCode::NOT_FOUND => call.not_found(text),
        status => {
            let transient = exception
                .and_then(exception_is_transient)
                .unwrap_or(status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            call.api_with(status, code, text, transient)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Answer rows, read tolerantly: fields may be missing, null, a string, a number or a list.

fn loose_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn loose_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(values) => values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) if !s.is_empty() => vec![s],
        _ => Vec::new(),
    })
}

/// AccessRights: a list, or one string such as `"FullAccess, ReadPermission"`.
fn loose_rights<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(loose_list(d)?
        .iter()
        .flat_map(|r| r.split(','))
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect())
}

fn loose_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct MailboxRow {
    #[serde(default, deserialize_with = "loose_text")]
    user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    primary_smtp_address: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    alias: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    distinguished_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    external_directory_object_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    recipient_type_details: Option<String>,
    #[serde(default, deserialize_with = "loose_list")]
    grant_send_on_behalf_to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MailboxSettingsRow {
    #[serde(flatten)]
    mailbox: MailboxRow,
    #[serde(default, deserialize_with = "loose_text")]
    forwarding_smtp_address: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    forwarding_address: Option<String>,
    #[serde(default, deserialize_with = "loose_flag")]
    deliver_to_mailbox_and_forward: bool,
}

/// One `Get-InboxRule` item. Recipient lists print as `"Name" [SMTP:x@y]`; kept as shown.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InboxRuleRow {
    #[serde(default, deserialize_with = "loose_text")]
    identity: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    rule_identity: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "loose_flag")]
    enabled: bool,
    #[serde(default, deserialize_with = "loose_text")]
    priority: Option<String>,
    #[serde(default, deserialize_with = "loose_list")]
    forward_to: Vec<String>,
    #[serde(default, deserialize_with = "loose_list")]
    forward_as_attachment_to: Vec<String>,
    #[serde(default, deserialize_with = "loose_list")]
    redirect_to: Vec<String>,
    #[serde(default, deserialize_with = "loose_flag")]
    delete_message: bool,
    #[serde(default, deserialize_with = "loose_text")]
    move_to_folder: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    description: Option<String>,
}

impl From<InboxRuleRow> for InboxRule {
    fn from(r: InboxRuleRow) -> InboxRule {
        let name = r.name.unwrap_or_default();
        InboxRule {
            identity: r
                .identity
                .or_else(|| r.rule_identity.clone())
                .unwrap_or_else(|| name.clone()),
            rule_identity: r.rule_identity,
            name,
            enabled: r.enabled,
            priority: r.priority.and_then(|p| p.parse().ok()),
            forward_to: r.forward_to,
            forward_as_attachment_to: r.forward_as_attachment_to,
            redirect_to: r.redirect_to,
            delete_message: r.delete_message,
            move_to_folder: r.move_to_folder,
            description: r.description,
        }
    }
}

impl From<MailboxRow> for MailboxInfo {
    fn from(r: MailboxRow) -> MailboxInfo {
        MailboxInfo {
            user_principal_name: r.user_principal_name.unwrap_or_default(),
            primary_smtp_address: r.primary_smtp_address.unwrap_or_default(),
            display_name: r.display_name.unwrap_or_default(),
            name: r.name,
            alias: r.alias,
            distinguished_name: r.distinguished_name.unwrap_or_default(),
            external_directory_object_id: r.external_directory_object_id,
            recipient_type_details: r.recipient_type_details.unwrap_or_default(),
            grant_send_on_behalf_to: r.grant_send_on_behalf_to,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MailboxPermissionRow {
    #[serde(default, deserialize_with = "loose_text")]
    identity: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    user: Option<String>,
    #[serde(default, deserialize_with = "loose_rights")]
    access_rights: Vec<String>,
    #[serde(default, deserialize_with = "loose_flag")]
    is_inherited: bool,
    #[serde(default, deserialize_with = "loose_flag")]
    deny: bool,
}

impl From<MailboxPermissionRow> for MailboxPermissionEntry {
    fn from(r: MailboxPermissionRow) -> MailboxPermissionEntry {
        MailboxPermissionEntry {
            identity: r.identity.unwrap_or_default(),
            user: r.user.unwrap_or_default(),
            access_rights: r.access_rights,
            is_inherited: r.is_inherited,
            deny: r.deny,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientPermissionRow {
    #[serde(default, deserialize_with = "loose_text")]
    identity: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    trustee: Option<String>,
    #[serde(default, deserialize_with = "loose_rights")]
    access_rights: Vec<String>,
    #[serde(default, deserialize_with = "loose_text")]
    access_control_type: Option<String>,
    #[serde(default, deserialize_with = "loose_flag")]
    is_inherited: bool,
}

impl From<RecipientPermissionRow> for RecipientPermissionEntry {
    fn from(r: RecipientPermissionRow) -> RecipientPermissionEntry {
        RecipientPermissionEntry {
            identity: r.identity.unwrap_or_default(),
            trustee: r.trustee.unwrap_or_default(),
            access_rights: r.access_rights,
            access_control_type: r.access_control_type.unwrap_or_else(|| "Allow".into()),
            is_inherited: r.is_inherited,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientRow {
    #[serde(default, deserialize_with = "loose_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    primary_smtp_address: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    recipient_type_details: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    external_directory_object_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    distinguished_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    alias: Option<String>,
}

impl From<RecipientRow> for Recipient {
    fn from(r: RecipientRow) -> Recipient {
        Recipient {
            name: r.name.unwrap_or_default(),
            display_name: r.display_name.unwrap_or_default(),
            primary_smtp_address: r.primary_smtp_address.unwrap_or_default(),
            recipient_type_details: r.recipient_type_details.unwrap_or_default(),
            external_directory_object_id: r.external_directory_object_id,
            distinguished_name: r.distinguished_name,
            alias: r.alias,
        }
    }
}

/// A `Get-Group` row: a group's address is its `WindowsEmailAddress` (empty when it is not
/// mail-enabled).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupRow {
    #[serde(default, deserialize_with = "loose_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    windows_email_address: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    recipient_type_details: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    external_directory_object_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    distinguished_name: Option<String>,
}

impl From<GroupRow> for Recipient {
    fn from(g: GroupRow) -> Recipient {
        Recipient::from(RecipientRow {
            name: g.name,
            display_name: g.display_name,
            primary_smtp_address: g.windows_email_address,
            recipient_type_details: g.recipient_type_details,
            external_directory_object_id: g.external_directory_object_id,
            distinguished_name: g.distinguished_name,
            alias: None,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserRow {
    #[serde(default, deserialize_with = "loose_text")]
    user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    external_directory_object_id: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    distinguished_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    recipient_type_details: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    sid: Option<String>,
    #[serde(default, deserialize_with = "loose_list")]
    sid_history: Vec<String>,
    #[serde(default, deserialize_with = "loose_text")]
    sam_account_name: Option<String>,
    #[serde(default, deserialize_with = "loose_text")]
    windows_email_address: Option<String>,
}

impl From<UserRow> for ExchangeUser {
    fn from(r: UserRow) -> ExchangeUser {
        ExchangeUser {
            user_principal_name: r.user_principal_name,
            external_directory_object_id: r.external_directory_object_id,
            display_name: r.display_name,
            name: r.name,
            distinguished_name: r.distinguished_name,
            recipient_type_details: r.recipient_type_details,
            sid: r.sid,
            sid_history: r.sid_history,
            sam_account_name: r.sam_account_name,
            windows_email_address: r.windows_email_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn call() -> Call {
        Call::new(
            "exchange",
            "Remove-MailboxPermission Identity=ceo@acme.com",
            None,
        )
    }

    #[test]
    fn warnings_that_say_nothing_was_there_mean_already_gone() {
        for warning in [
            "WARNING: Can't remove the access control entry on the object \"CN=ceo\" for account \"john\" because the ACE doesn't exist on the object.",
            "WARNING: Can't remove the access control entry ... because the ACE isn't present.",
            "WARNING: The command completed successfully but no settings of 'ceo' have been modified.",
        ] {
            assert_eq!(
                removal_outcome(vec!["unrelated".into(), warning.into()], false),
                RemovalOutcome::AlreadyGone { warning: warning.into() }
            );
            assert_eq!(
                removal_outcome(vec![warning.into()], true),
                RemovalOutcome::GoneOnRetry { warning: warning.into() }
            );
        }
        assert_eq!(removal_outcome(vec![], false), RemovalOutcome::Removed);
        assert_eq!(
            removal_outcome(vec!["Mailbox auditing is on".into()], true),
            RemovalOutcome::Removed
        );
    }

    fn exo_body(detail: &str) -> String {
        json!({"error":{"code":"InternalServerError","message":"Error executing cmdlet","details":[{"message": detail}]}}).to_string()
    }

    #[test]
    fn failures_show_exchanges_text_and_are_classified_by_exception_type() {
        let not_found = exo_body("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x@acme.com' couldn't be found on 'SRV'.");
        let err = exchange_error(&call(), &Reply::with(500, &not_found));
        assert!(err.is_not_found() && !err.is_transient(), "{err:?}");
        assert_eq!(
            err.reason(),
            "The operation couldn't be performed because object 'x@acme.com' couldn't be found on 'SRV'."
        );

        let denied = exo_body("Ex2A1B3C|Microsoft.Exchange.Configuration.Tasks.TaskAccessDeniedException|Access to mailbox 'ceo@acme.com' is denied.");
        let err = exchange_error(&call(), &Reply::with(500, &denied));
        assert!(!err.is_transient(), "permanent even as HTTP 500: {err:?}");
        assert_eq!(err.reason(), "Access to mailbox 'ceo@acme.com' is denied.");

        let transient = exo_body("Ex000001|Microsoft.Exchange.Data.Storage.StorageTransientException|The server is busy.");
        assert!(exchange_error(&call(), &Reply::with(500, &transient)).is_transient());

        // The older shape without a code, and an unknown exception (status decides).
        let legacy = exo_body(
            "|Microsoft.Exchange.Management.RestApiClient.RestClientException|Something odd.",
        );
        let err = exchange_error(&call(), &Reply::with(500, &legacy));
        assert!(err.is_transient());
        assert_eq!(err.reason(), "Something odd.");

        let ambiguous = r#"{"error":{"code":"BadRequest","message":"The operation couldn't be performed because 'John Smith' matches multiple entries."}}"#;
        let err = exchange_error(&call(), &Reply::with(400, ambiguous));
        assert!(
            matches!(&err.kind, ErrorKind::Api { status: 400, message, transient: false, .. } if message.contains("matches multiple entries"))
        );
        let inner = r#"{"error":{"code":"InternalServerError","message":"outer","details":[],"innererror":{"internalException":{"message":"inner"}}}}"#;
        assert_eq!(
            exchange_error(&call(), &Reply::with(400, inner)).reason(),
            "inner"
        );
    }

    #[test]
    fn a_403_keeps_its_reason_from_the_diagnostics_header() {
        let mut reply = Reply::with(403, "\0\0\0\0");
        reply.headers.insert(
            "x-ms-diagnostics",
            "2000003;reason=\"Missing RBAC role for Remove-RecipientPermission\";error_category=\"insufficient_privileges\""
                .parse()
                .unwrap(),
        );
        let err = exchange_error(&call(), &reply);
        assert_eq!(
            err.reason(),
            "Missing RBAC role for Remove-RecipientPermission"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn rows_are_read_tolerantly() {
        let permission: MailboxPermissionRow = serde_json::from_value(
            json!({"Identity":"ceo","User":"john@acme.com","AccessRights":"FullAccess, ReadPermission","IsInherited":"False","Deny":null}),
        )
        .unwrap();
        let entry = MailboxPermissionEntry::from(permission);
        assert_eq!(entry.access_rights, vec!["FullAccess", "ReadPermission"]);
        assert!(!entry.is_inherited && !entry.deny);

        let mailbox: MailboxRow = serde_json::from_value(
            json!({"UserPrincipalName":"ceo@acme.com","GrantSendOnBehalfTo":null,"RecipientTypeDetails":"SharedMailbox"}),
        )
        .unwrap();
        let mailbox = MailboxInfo::from(mailbox);
        assert!(mailbox.grant_send_on_behalf_to.is_empty() && mailbox.is_shared());
        assert_eq!(
            (mailbox.name, mailbox.distinguished_name),
            (None, String::new())
        );

        let send_as: RecipientPermissionRow = serde_json::from_value(
            json!({"Identity":"ceo","Trustee":"john@acme.com","AccessRights":["SendAs"]}),
        )
        .unwrap();
        let send_as = RecipientPermissionEntry::from(send_as);
        assert_eq!(
            (send_as.access_control_type.as_str(), send_as.access_rights),
            ("Allow", vec!["SendAs".to_string()])
        );
        let user: UserRow = serde_json::from_value(
            json!({"Sid":"S-1-5-21-1-2-3-1001","SidHistory":"S-1-5-21-9-9-9-500"}),
        )
        .unwrap();
        assert_eq!(ExchangeUser::from(user).sid_history, ["S-1-5-21-9-9-9-500"]);
    }

    #[test]
    fn cmdlet_bodies_have_the_documented_parameters() {
        let remove = full_access_cmdlet(
            "Remove-MailboxPermission",
            "ceo@acme.com",
            "john@acme.com",
            json!({"Confirm": false}),
        );
        assert_eq!(
            remove.parameters,
            json!({"Identity":"ceo@acme.com","User":"john@acme.com","AccessRights":["FullAccess"],"InheritanceType":"All","Confirm":false})
        );
        assert_eq!(
            remove.describe(),
            "Remove-MailboxPermission Identity=ceo@acme.com User=john@acme.com"
        );
        let set = send_on_behalf_cmdlet("ceo@acme.com", "remove", "john@acme.com");
        assert_eq!(
            set.parameters["GrantSendOnBehalfTo"],
            json!({"@odata.type":"#Exchange.GenericHashTable","remove":"john@acme.com"})
        );
    }
}
