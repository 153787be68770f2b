//! The Exchange Online admin API: cmdlets through `InvokeCommand`.

use crate::adapters::http::{same_origin_link, Call, HttpCore, Reply};
use crate::adapters::token::EXCHANGE_SCOPE;
use crate::config::{AppCredentials, ServiceUrls};
use crate::error::RemoteError;
use crate::ports::{
    Exchange, MailboxInfo, MailboxPermissionEntry, Recipient, RecipientPermissionEntry,
    RemovalOutcome,
};
use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Stops a server that hands out next links forever.
const MAX_PAGES: usize = 10_000;

/// The routing hint for cmdlets that are not about one mailbox.
const SYSTEM_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

/// The Get-Mailbox properties `MailboxInfo` needs (a full mailbox object is large).
const MAILBOX_SELECT: &str =
    "UserPrincipalName,PrimarySmtpAddress,DisplayName,Name,DistinguishedName,\
ExternalDirectoryObjectId,RecipientTypeDetails,GrantSendOnBehalfTo";

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
    core: Arc<HttpCore>,
    base: String,
    login: String,
    creds: AppCredentials,
}

/// One cmdlet invocation: what to run and which mailbox routes it.
struct Cmdlet<'a> {
    name: &'static str,
    parameters: Value,
    /// The mailbox the cmdlet is about; `None` for tenant-wide cmdlets.
    mailbox: Option<&'a str>,
    select: Option<&'static str>,
}

/// Every page's items and warnings of one invocation.
#[derive(Debug, Default)]
struct CmdletOutput {
    values: Vec<Value>,
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct InvokePage {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default)]
    warnings: Vec<String>,
}

impl<'a> Cmdlet<'a> {
    fn new(name: &'static str, parameters: Value) -> Cmdlet<'a> {
        Cmdlet {
            name,
            parameters,
            mailbox: None,
            select: None,
        }
    }

    fn on_mailbox(mut self, mailbox: &'a str) -> Cmdlet<'a> {
        self.mailbox = Some(mailbox);
        self
    }

    fn select(mut self, properties: &'static str) -> Cmdlet<'a> {
        self.select = Some(properties);
        self
    }

    /// `Remove-MailboxPermission Identity=a@x User=b@x`, for spans and errors.
    fn describe(&self) -> String {
        let mut text = self.name.to_string();
        for key in ["Identity", "User", "Trustee", "Filter"] {
            if let Some(value) = self.parameters.get(key).and_then(Value::as_str) {
                text.push_str(&format!(" {key}={value}"));
            }
        }
        text
    }
}

impl ExchangeClient {
    pub fn new(core: Arc<HttpCore>, urls: &ServiceUrls, creds: AppCredentials) -> ExchangeClient {
        ExchangeClient {
            core,
            base: urls.exo.trim_end_matches('/').to_string(),
            login: urls.login.trim_end_matches('/').to_string(),
            creds,
        }
    }

    /// `X-AnchorMailbox`: the target mailbox when there is one, else the tenant's system mailbox.
    fn anchor(&self, mailbox: Option<&str>) -> String {
        match mailbox {
            Some(m) if m.contains('@') && m.is_ascii() => m.to_string(),
            _ => format!("APP:{SYSTEM_MAILBOX}@{}", self.creds.tenant_id),
        }
    }

    fn invoke_url(&self, select: Option<&str>) -> String {
        let tenant = urlencoding::encode(&self.creds.tenant_id);
        match select {
            Some(properties) => format!(
                "{}/adminapi/beta/{tenant}/InvokeCommand?$select={properties}",
                self.base
            ),
            None => format!("{}/adminapi/beta/{tenant}/InvokeCommand", self.base),
        }
    }

    /// Runs a cmdlet, POSTing the same body to each `@odata.nextLink` until there is none.
    async fn invoke(&self, cmdlet: Cmdlet<'_>) -> Result<CmdletOutput, RemoteError> {
        let call = Call::new("exchange", cmdlet.describe(), Some(&self.creds.tenant_id));
        let body = json!({ "CmdletInput": { "CmdletName": cmdlet.name, "Parameters": cmdlet.parameters } }).to_string();
        let anchor = self.anchor(cmdlet.mailbox);
        let mut url = self.invoke_url(cmdlet.select);
        let mut output = CmdletOutput::default();
        for _ in 0..MAX_PAGES {
            let token = self
                .core
                .token(&self.login, &self.creds, EXCHANGE_SCOPE)
                .await?;
            let reply = self
                .core
                .send(&call, |client| {
                    client
                        .post(&url)
                        .bearer_auth(token.expose())
                        .header(CONTENT_TYPE, "application/json; charset=utf-8")
                        .header("Prefer", "odata.maxpagesize=1000")
                        .header("X-AnchorMailbox", &anchor)
                        .body(body.clone())
                })
                .await?;
            if !reply.is_success() {
                return Err(exchange_error(&call, &reply));
            }
            let page: InvokePage = reply.json(&call)?;
            output.values.extend(page.value);
            output.warnings.extend(page.warnings);
            match page.next_link {
                Some(link) => url = same_origin_link(&self.base, &link, &call)?.to_string(),
                None => return Ok(output),
            }
        }
        Err(call.protocol(format!("more than {MAX_PAGES} pages")))
    }

    async fn query<T>(
        &self,
        cmdlet: Cmdlet<'_>,
        map: impl Fn(&Value) -> T,
    ) -> Result<Vec<T>, RemoteError> {
        Ok(self.invoke(cmdlet).await?.values.iter().map(map).collect())
    }

    async fn remove(&self, cmdlet: Cmdlet<'_>) -> Result<RemovalOutcome, RemoteError> {
        Ok(removal_outcome(self.invoke(cmdlet).await?.warnings))
    }

    async fn add(&self, cmdlet: Cmdlet<'_>) -> Result<(), RemoteError> {
        let output = self.invoke(cmdlet).await?;
        for warning in &output.warnings {
            tracing::debug!(%warning, "exchange warning on add");
        }
        Ok(())
    }
}

#[async_trait]
impl Exchange for ExchangeClient {
    async fn mailboxes(&self) -> Result<Vec<MailboxInfo>, RemoteError> {
        let cmdlet =
            Cmdlet::new("Get-Mailbox", json!({ "ResultSize": "Unlimited" })).select(MAILBOX_SELECT);
        self.query(cmdlet, mailbox_info).await
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
        self.query(cmdlet, mailbox_info).await
    }

    async fn mailbox_permissions(
        &self,
        mailbox: &str,
    ) -> Result<Vec<MailboxPermissionEntry>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-MailboxPermission", json!({ "Identity": mailbox }))
            .on_mailbox(mailbox);
        self.query(cmdlet, mailbox_permission).await
    }

    async fn send_as_by_trustee(
        &self,
        trustee: &str,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError> {
        let parameters =
            json!({ "Trustee": trustee, "AccessRights": "SendAs", "ResultSize": "Unlimited" });
        self.query(
            Cmdlet::new("Get-RecipientPermission", parameters),
            recipient_permission,
        )
        .await
    }

    async fn recipient(&self, identity: &str) -> Result<Option<Recipient>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-Recipient", json!({ "Identity": identity }));
        let describe = cmdlet.describe();
        let mut found = match self.query(cmdlet, recipient).await {
            Err(RemoteError::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        if found.len() > 1 {
            let call = Call::new("exchange", describe, None);
            return Err(call.protocol(format!("'{identity}' matches {} recipients", found.len())));
        }
        Ok(found.pop())
    }

    async fn remove_full_access(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(full_access_cmdlet(
            "Remove-MailboxPermission",
            mailbox,
            user,
            json!({ "Confirm": false }),
        ))
        .await
    }

    async fn remove_send_as(
        &self,
        mailbox: &str,
        trustee: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(send_as_cmdlet(
            "Remove-RecipientPermission",
            mailbox,
            trustee,
        ))
        .await
    }

    async fn remove_send_on_behalf(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(send_on_behalf_cmdlet(mailbox, "remove", user))
            .await
    }

    async fn add_full_access(&self, mailbox: &str, user: &str) -> Result<(), RemoteError> {
        self.add(full_access_cmdlet(
            "Add-MailboxPermission",
            mailbox,
            user,
            json!({ "AutoMapping": false }),
        ))
        .await
    }

    async fn add_send_as(&self, mailbox: &str, trustee: &str) -> Result<(), RemoteError> {
        self.add(send_as_cmdlet("Add-RecipientPermission", mailbox, trustee))
            .await
    }

    async fn add_send_on_behalf(&self, mailbox: &str, user: &str) -> Result<(), RemoteError> {
        self.add(send_on_behalf_cmdlet(mailbox, "add", user)).await
    }
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

fn send_as_cmdlet<'a>(name: &'static str, mailbox: &'a str, trustee: &str) -> Cmdlet<'a> {
    let parameters = json!({ "Identity": mailbox, "Trustee": trustee, "AccessRights": ["SendAs"], "Confirm": false });
    Cmdlet::new(name, parameters).on_mailbox(mailbox)
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

/// A removal whose warning says nothing was there is "already gone", which counts as removed.
fn removal_outcome(warnings: Vec<String>) -> RemovalOutcome {
    let nothing_there = |w: &String| {
        let w = w.to_lowercase();
        NOTHING_TO_REMOVE.iter().any(|pattern| w.contains(pattern))
    };
    match warnings.into_iter().find(nothing_there) {
        Some(warning) => RemovalOutcome::AlreadyGone { warning },
        None => RemovalOutcome::Removed,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn exchange_error(call: &Call, reply: &Reply) -> RemoteError {
    let (code, message) =
        parse_exchange_error(&reply.body).unwrap_or_else(|| (None, reply.body_snippet()));
    let lower = message.to_lowercase();
    if lower.contains("matches multiple entries") {
        call.api(reply.status, code, message)
    } else if lower.contains("couldn't be found")
        || lower.contains("could not be found")
        || reply.status == StatusCode::NOT_FOUND
    {
        call.not_found(message)
    } else if reply.status == StatusCode::UNAUTHORIZED {
        call.auth(message)
    } else {
        call.api(reply.status, code, message)
    }
}

/// The most specific message: `details[].message`, else the inner exception's, else `message`.
fn parse_exchange_error(body: &str) -> Option<(Option<String>, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let details: Vec<&str> = error
        .get("details")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|d| d.get("message")?.as_str())
                .filter(|m| !m.trim().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let message = if !details.is_empty() {
        details
            .iter()
            .map(|m| without_exception_type(m))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        let inner = error
            .pointer("/innererror/internalException/message")
            .and_then(Value::as_str);
        let outer = error.get("message").and_then(Value::as_str);
        without_exception_type(inner.or(outer).unwrap_or_default()).to_string()
    };
    Some((code, message))
}

/// `|Microsoft.Exchange...Exception|The operation couldn't...` → `The operation couldn't...`.
fn without_exception_type(message: &str) -> &str {
    message
        .strip_prefix('|')
        .and_then(|rest| rest.split_once('|'))
        .map(|(_, text)| text)
        .unwrap_or(message)
        .trim()
}

// ---------------------------------------------------------------------------------------------
// Answer items, read tolerantly: fields may be missing, null, a string or a list.

fn text(item: &Value, key: &str) -> Option<String> {
    match item.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(item: &Value, key: &str) -> Vec<String> {
    match item.get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// AccessRights: a list, or one string such as `"FullAccess, ReadPermission"`.
fn rights(item: &Value) -> Vec<String> {
    list(item, "AccessRights")
        .iter()
        .flat_map(|r| r.split(','))
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

fn flag(item: &Value, key: &str) -> bool {
    match item.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn mailbox_info(item: &Value) -> MailboxInfo {
    MailboxInfo {
        user_principal_name: text(item, "UserPrincipalName").unwrap_or_default(),
        primary_smtp_address: text(item, "PrimarySmtpAddress").unwrap_or_default(),
        display_name: text(item, "DisplayName").unwrap_or_default(),
        name: text(item, "Name"),
        distinguished_name: text(item, "DistinguishedName").unwrap_or_default(),
        external_directory_object_id: text(item, "ExternalDirectoryObjectId"),
        recipient_type_details: text(item, "RecipientTypeDetails").unwrap_or_default(),
        grant_send_on_behalf_to: list(item, "GrantSendOnBehalfTo"),
    }
}

fn mailbox_permission(item: &Value) -> MailboxPermissionEntry {
    MailboxPermissionEntry {
        identity: text(item, "Identity").unwrap_or_default(),
        user: text(item, "User").unwrap_or_default(),
        access_rights: rights(item),
        is_inherited: flag(item, "IsInherited"),
        deny: flag(item, "Deny"),
    }
}

fn recipient_permission(item: &Value) -> RecipientPermissionEntry {
    RecipientPermissionEntry {
        identity: text(item, "Identity").unwrap_or_default(),
        trustee: text(item, "Trustee").unwrap_or_default(),
        access_rights: rights(item),
        access_control_type: text(item, "AccessControlType").unwrap_or_else(|| "Allow".into()),
        is_inherited: flag(item, "IsInherited"),
    }
}

fn recipient(item: &Value) -> Recipient {
    Recipient {
        name: text(item, "Name").unwrap_or_default(),
        display_name: text(item, "DisplayName").unwrap_or_default(),
        primary_smtp_address: text(item, "PrimarySmtpAddress").unwrap_or_default(),
        recipient_type_details: text(item, "RecipientTypeDetails").unwrap_or_default(),
        external_directory_object_id: text(item, "ExternalDirectoryObjectId"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                removal_outcome(vec!["unrelated".into(), warning.into()]),
                RemovalOutcome::AlreadyGone { warning: warning.into() }
            );
        }
        assert_eq!(removal_outcome(vec![]), RemovalOutcome::Removed);
        assert_eq!(
            removal_outcome(vec!["Mailbox auditing is on".into()]),
            RemovalOutcome::Removed
        );
    }

    #[test]
    fn error_bodies_prefer_details_then_inner_exception_then_message() {
        let details = r#"{"error":{"code":"BadRequest","message":"outer","details":[{"message":"|Microsoft.Exchange.Management.RestApiClient.RestClientException|The operation couldn't be performed because object 'x@acme.com' couldn't be found on 'SRV'."}],"innererror":{"internalException":{"message":"inner"}}}}"#;
        assert_eq!(
            parse_exchange_error(details),
            Some((
                Some("BadRequest".into()),
                "The operation couldn't be performed because object 'x@acme.com' couldn't be found on 'SRV'.".into()
            ))
        );
        let inner = r#"{"error":{"code":"InternalServerError","message":"outer","details":[],"innererror":{"internalException":{"message":"inner"}}}}"#;
        assert_eq!(parse_exchange_error(inner).unwrap().1, "inner");
        assert_eq!(
            parse_exchange_error(r#"{"error":{"message":"outer"}}"#).unwrap(),
            (None, "outer".into())
        );
        assert_eq!(parse_exchange_error("<html/>"), None);
    }

    #[test]
    fn not_found_and_ambiguity_are_told_apart() {
        let not_found = r#"{"error":{"code":"BadRequest","message":"x","details":[{"message":"The operation couldn't be performed because object 'x' couldn't be found on 'SRV'."}]}}"#;
        assert!(exchange_error(&call(), &Reply::with(400, not_found)).is_not_found());
        let ambiguous = r#"{"error":{"code":"BadRequest","message":"The operation couldn't be performed because 'John Smith' matches multiple entries."}}"#;
        assert!(
            matches!(exchange_error(&call(), &Reply::with(400, ambiguous)), RemoteError::Api { status: 400, message, .. } if message.contains("matches multiple entries"))
        );
        let denied = r#"{"error":{"code":"InternalServerError","message":"x","details":[{"message":"|Microsoft.Exchange.Data.StoragePermanentException|Access to mailbox 'ceo@acme.com' is denied."}]}}"#;
        let err = exchange_error(&call(), &Reply::with(500, denied));
        assert!(
            matches!(&err, RemoteError::Api { status: 500, message, .. } if message == "Access to mailbox 'ceo@acme.com' is denied."),
            "{err:?}"
        );
    }

    #[test]
    fn items_are_read_tolerantly() {
        let permission = json!({"Identity":"ceo","User":"john@acme.com","AccessRights":"FullAccess, ReadPermission","IsInherited":"False"});
        let entry = mailbox_permission(&permission);
        assert_eq!(entry.access_rights, vec!["FullAccess", "ReadPermission"]);
        assert!(!entry.is_inherited && !entry.deny);

        let mailbox = mailbox_info(
            &json!({"UserPrincipalName":"ceo@acme.com","GrantSendOnBehalfTo":null,"RecipientTypeDetails":"SharedMailbox"}),
        );
        assert!(mailbox.grant_send_on_behalf_to.is_empty() && mailbox.is_shared());
        assert_eq!(
            (mailbox.name, mailbox.distinguished_name),
            (None, String::new())
        );

        let send_as = recipient_permission(
            &json!({"Identity":"ceo","Trustee":"john@acme.com","AccessRights":["SendAs"]}),
        );
        assert_eq!(
            (send_as.access_control_type.as_str(), send_as.access_rights),
            ("Allow", vec!["SendAs".to_string()])
        );
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
