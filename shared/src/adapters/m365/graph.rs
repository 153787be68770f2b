//! Microsoft Graph: user lookup, group membership, calendar permissions, sendMail, and the
//! security alerts (Defender XDR `alerts_v2`, Entra ID Protection `riskyUsers`).

use crate::adapters::http::{Call, HttpCore, Reply};
use crate::adapters::m365::api::{diagnostics_reason, Collection, ErrorBody, M365Api, M365Request};
use crate::adapters::m365::token::{roles_of, EXCHANGE_SCOPE, GRAPH_SCOPE};
use crate::config::{AppCredentials, ServiceUrls};
use crate::error::RemoteError;
use crate::model::{MatchedBy, RiskyUser, SecurityAlert, UserEvidence};
use crate::ports::{
    AlertSource, AppRoles, CalendarInfo, CalendarPermission, Directory, DirectoryGroup,
    DirectoryUser, MailboxState, Mailer, OutgoingMail, RemovalOutcome, UserLookup, UserSignIn,
};
use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The path of a user's default calendar under `/users/{id}/`.
const DEFAULT_CALENDAR: &str = "calendar";

const USER_SELECT: &str = "id,displayName,userPrincipalName,mail,accountEnabled,proxyAddresses";

pub struct GraphClient {
    api: M365Api,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    proxy_addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphGroup {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphCalendarPermission {
    id: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    is_removable: bool,
    #[serde(default)]
    email_address: Option<GraphEmailAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphCalendar {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    is_default_calendar: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphMailboxSettings {
    #[serde(default)]
    user_purpose: Option<String>,
}

#[derive(Deserialize)]
struct GraphEmailAddress {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

impl GraphClient {
    /// Every calendar of the mailbox (`GET /users/{id}/calendars`).
    pub(super) async fn calendar_list(
        &self,
        mailbox: &str,
    ) -> Result<Vec<CalendarInfo>, RemoteError> {
        let call = self.mailbox_call(format!("GET calendars {mailbox}"), mailbox);
        let url = self.user_url(mailbox, "calendars?$select=id,name,isDefaultCalendar");
        let calendars: Vec<GraphCalendar> = self.get_all(&call, M365Request::get(url)).await?;
        Ok(calendars
            .into_iter()
            .map(|c| CalendarInfo {
                id: c.id,
                name: c.name.unwrap_or_default(),
                is_default: c.is_default_calendar.unwrap_or(false),
            })
            .collect())
    }

    /// A calendar's permissions; `calendar` is the path under the user (`calendar` for the
    /// default one, `calendars/{id}` for any).
    pub(super) async fn permissions_at(
        &self,
        mailbox: &str,
        calendar: &str,
    ) -> Result<Vec<CalendarPermission>, RemoteError> {
        let call = self.mailbox_call(
            format!("GET {calendar}/calendarPermissions {mailbox}"),
            mailbox,
        );
        let url = self.user_url(mailbox, &format!("{calendar}/calendarPermissions"));
        let permissions: Vec<GraphCalendarPermission> =
            self.get_all(&call, M365Request::get(url)).await?;
        Ok(permissions
            .into_iter()
            .map(CalendarPermission::from)
            .collect())
    }

    pub(super) async fn remove_permission_at(
        &self,
        mailbox: &str,
        calendar: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        let call = self.mailbox_call(
            format!("DELETE {calendar}/calendarPermission {permission_id} on {mailbox}"),
            mailbox,
        );
        let rest = format!(
            "{calendar}/calendarPermissions/{}",
            urlencoding::encode(permission_id)
        );
        let request = M365Request {
            method: Method::DELETE,
            url: self.user_url(mailbox, &rest),
            body: None,
            headers: &[],
            read: false,
        };
        let reply = self.api.send(&call, &request).await?;
        if reply.is_success() {
            return Ok(RemovalOutcome::Removed);
        }
        // Only ErrorItemNotFound means the entry is gone (graph_error maps nothing else to
        // NotFound). After an attempt that may have deleted it, the retry's "gone" is ours.
        let e = graph_error(&call, &reply);
        match (e.is_not_found(), reply.replayed) {
            (true, false) => Ok(RemovalOutcome::AlreadyGone {
                warning: e.reason(),
            }),
            (true, true) => Ok(RemovalOutcome::GoneOnRetry {
                warning: e.reason(),
            }),
            (false, _) => Err(e),
        }
    }

    /// Restore: grants `role` on a calendar of `mailbox` to `address`.
    pub(super) async fn add_permission_at(
        &self,
        mailbox: &str,
        calendar: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError> {
        let call = self.mailbox_call(
            format!("POST {calendar}/calendarPermission {role} for {address} on {mailbox}"),
            mailbox,
        );
        let body = json!({
            "emailAddress": { "address": address },
            "isInsideOrganization": true,
            "isRemovable": true,
            "role": role,
        });
        let url = self.user_url(mailbox, &format!("{calendar}/calendarPermissions"));
        self.expect_success(&call, M365Request::with_body(Method::POST, url, &body))
            .await
            .map(drop)
    }

    pub fn new(core: Arc<HttpCore>, urls: &ServiceUrls, creds: AppCredentials) -> GraphClient {
        GraphClient {
            api: M365Api::new(
                core,
                "graph",
                graph_error,
                &urls.graph,
                &urls.login,
                GRAPH_SCOPE,
                creds,
            ),
        }
    }

    /// The Graph API of this tenant (for the identity actions in `graph_identity.rs`).
    pub(super) fn api(&self) -> &M365Api {
        &self.api
    }

    /// `{graph}/v1.0/users/{user}/{rest}` with the user as one encoded path segment.
    pub(super) fn user_url(&self, user: &str, rest: &str) -> String {
        let user = urlencoding::encode(user);
        if rest.is_empty() {
            format!("{}/v1.0/users/{user}", self.api.base())
        } else {
            format!("{}/v1.0/users/{user}/{rest}", self.api.base())
        }
    }

    /// A call about one mailbox: it also takes one of the mailbox's few Graph slots.
    fn mailbox_call(&self, operation: String, mailbox: &str) -> Call {
        self.api.call(operation).about_mailbox(mailbox)
    }

    async fn get_all<T: DeserializeOwned>(
        &self,
        call: &Call,
        request: M365Request<'_>,
    ) -> Result<Vec<T>, RemoteError> {
        let Collection { items, .. } = self.api.collect(call, request).await?;
        Ok(items)
    }

    /// A request whose success has no body we need.
    async fn expect_success(
        &self,
        call: &Call,
        request: M365Request<'_>,
    ) -> Result<Reply, RemoteError> {
        let reply = self.api.send(call, &request).await?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(graph_error(call, &reply))
        }
    }

    /// Users whose `filter` matches, e.g. `mail eq 'a@b.c'`.
    async fn users_where(&self, filter: &str) -> Result<Vec<DirectoryUser>, RemoteError> {
        let call = self.api.call(format!("GET users where {filter}"));
        let url = format!(
            "{}/v1.0/users?$filter={}&$select={USER_SELECT}",
            self.api.base(),
            urlencoding::encode(filter)
        );
        let users: Vec<GraphUser> = self.get_all(&call, M365Request::get(url)).await?;
        Ok(users.into_iter().map(DirectoryUser::from).collect())
    }
}

impl From<GraphUser> for DirectoryUser {
    fn from(user: GraphUser) -> DirectoryUser {
        DirectoryUser {
            user_principal_name: user.user_principal_name.unwrap_or_default(),
            id: user.id,
            display_name: user.display_name.unwrap_or_default(),
            mail: user.mail.filter(|m| !m.is_empty()),
            account_enabled: user.account_enabled,
            proxy_addresses: user.proxy_addresses,
        }
    }
}

/// An OData string literal: `'` doubled.
pub(super) fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[async_trait]
impl Directory for GraphClient {
    async fn find_user(&self, address: &str) -> Result<UserLookup, RemoteError> {
        let call = self.api.call(format!("GET user {address}"));
        let url = self.user_url(address, "") + "?$select=" + USER_SELECT;
        let reply = self.api.send(&call, &M365Request::get(url)).await?;
        if reply.is_success() {
            let user: GraphUser = reply.json(&call)?;
            let mut user = DirectoryUser::from(user);
            if user.user_principal_name.is_empty() {
                user.user_principal_name = address.to_string();
            }
            return Ok(UserLookup::Found {
                user,
                matched_by: MatchedBy::Upn,
            });
        }
        if reply.status != StatusCode::NOT_FOUND && reply.status != StatusCode::BAD_REQUEST {
            return Err(graph_error(&call, &reply));
        }
        // `/users/{x}` takes only the object id or the UPN; operators type the mail address.
        let literal = odata_literal(address);
        for (filter, matched_by) in [
            (format!("mail eq {literal}"), MatchedBy::Mail),
            (
                format!(
                    "proxyAddresses/any(p:p eq {})",
                    odata_literal(&format!("smtp:{address}"))
                ),
                MatchedBy::ProxyAddress,
            ),
        ] {
            let mut found = self.users_where(&filter).await?;
            match found.len() {
                0 => continue,
                1 => {
                    return Ok(UserLookup::Found {
                        user: found.remove(0),
                        matched_by,
                    })
                }
                _ => {
                    return Ok(UserLookup::Ambiguous {
                        candidates: found.into_iter().map(|u| u.user_principal_name).collect(),
                    })
                }
            }
        }
        Ok(UserLookup::NotFound)
    }

    async fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>, RemoteError> {
        let call = self.api.call(format!("GET transitiveMemberOf {user_id}"));
        let url = self.user_url(user_id, "transitiveMemberOf/microsoft.graph.group")
            + "?$select=id,displayName,mail&$count=true";
        // Graph serves OData casts on directory objects only as "advanced queries".
        let headers = [("ConsistencyLevel", "eventual")];
        let groups: Vec<GraphGroup> = self
            .get_all(&call, M365Request::get(url).headers(&headers))
            .await?;
        Ok(groups
            .into_iter()
            .map(|g| DirectoryGroup {
                id: g.id,
                display_name: g.display_name.unwrap_or_default(),
                mail: g.mail.filter(|m| !m.is_empty()),
            })
            .collect())
    }

    async fn calendar_permissions(
        &self,
        mailbox: &str,
    ) -> Result<Vec<CalendarPermission>, RemoteError> {
        self.permissions_at(mailbox, DEFAULT_CALENDAR).await
    }

    async fn remove_calendar_permission(
        &self,
        mailbox: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove_permission_at(mailbox, DEFAULT_CALENDAR, permission_id)
            .await
    }

    async fn add_calendar_permission(
        &self,
        mailbox: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError> {
        self.add_permission_at(mailbox, DEFAULT_CALENDAR, address, role)
            .await
    }

    async fn app_roles(&self) -> Result<AppRoles, RemoteError> {
        let graph = self.api.token(GRAPH_SCOPE).await?;
        let exchange = self.api.token(EXCHANGE_SCOPE).await?;
        Ok(AppRoles {
            graph: roles_of(&graph),
            exchange: roles_of(&exchange),
        })
    }

    async fn sign_ins(&self) -> Result<Vec<UserSignIn>, RemoteError> {
        let call = self.api.call("GET users signInActivity".to_string());
        // With signInActivity selected Graph serves at most 120 users a page.
        let url = format!(
            "{}/v1.0/users?$select=id,userPrincipalName,accountEnabled,signInActivity&$top=120",
            self.api.base()
        );
        let users: Vec<GraphSignInUser> = self.get_all(&call, M365Request::get(url)).await?;
        Ok(users.into_iter().map(UserSignIn::from).collect())
    }

    async fn mailbox_state(&self, user: &str) -> Result<MailboxState, RemoteError> {
        let call = self.mailbox_call(format!("GET mailboxSettings {user}"), user);
        let url = self.user_url(user, "mailboxSettings") + "?$select=userPurpose";
        let reply = self.api.send(&call, &M365Request::get(url)).await?;
        if reply.is_success() {
            let settings: GraphMailboxSettings = reply.json(&call)?;
            return Ok(MailboxState::Usable {
                purpose: settings.user_purpose.filter(|p| !p.is_empty()),
            });
        }
        // 404 with MailboxNotEnabledForRESTAPI, ErrorInvalidUser, ResourceNotFound ...: there is
        // no mailbox Graph can use for this user.
        if reply.status == StatusCode::NOT_FOUND {
            let parsed = ErrorBody::parse(&reply.body).unwrap_or_default();
            let reason = match (parsed.code, parsed.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(text), None) | (None, Some(text)) => text,
                (None, None) => reply.body_snippet(),
            };
            return Ok(MailboxState::NotUsable { reason });
        }
        Err(graph_error(&call, &reply))
    }
}

#[async_trait]
impl Mailer for GraphClient {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), RemoteError> {
        // Never sent twice: a retry after a timeout or 5xx could deliver a second copy.
        let call = self
            .api
            .call(format!("sendMail from {} \"{}\"", mail.from, mail.subject))
            .once();
        let url = self.user_url(&mail.from, "sendMail");
        let body = send_mail_body(mail);
        self.expect_success(&call, M365Request::with_body(Method::POST, url, &body))
            .await
            .map(drop)
    }
}

/// An `alerts_v2` alert as Graph sends it (the fields the poller reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphAlert {
    id: String,
    #[serde(default)]
    incident_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    determination: Option<String>,
    #[serde(default)]
    classification: Option<String>,
    #[serde(default)]
    service_source: Option<String>,
    #[serde(default)]
    last_update_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    evidence: Vec<GraphEvidence>,
}

/// One `alertEvidence`; only user and mailbox evidence name a user.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphEvidence {
    #[serde(rename = "@odata.type", default)]
    odata_type: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    user_account: Option<GraphUserAccount>,
    /// mailboxEvidence
    #[serde(default)]
    primary_address: Option<String>,
    #[serde(default)]
    upn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUserAccount {
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    azure_ad_user_id: Option<String>,
}

/// A user of the sign-in listing: `signInActivity` is null for one who never signed in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphSignInUser {
    id: String,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    sign_in_activity: Option<GraphSignInActivity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphSignInActivity {
    #[serde(default)]
    last_sign_in_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    last_non_interactive_sign_in_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    last_successful_sign_in_date_time: Option<DateTime<Utc>>,
}

impl From<GraphSignInUser> for UserSignIn {
    fn from(u: GraphSignInUser) -> UserSignIn {
        let last = u.sign_in_activity.and_then(|a| {
            [
                a.last_sign_in_date_time,
                a.last_non_interactive_sign_in_date_time,
                a.last_successful_sign_in_date_time,
            ]
            .into_iter()
            .flatten()
            .max()
        });
        UserSignIn {
            id: u.id,
            user_principal_name: u.user_principal_name.unwrap_or_default(),
            last_sign_in: last,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphRiskyUser {
    id: String,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    risk_level: Option<String>,
    #[serde(default)]
    risk_state: Option<String>,
    #[serde(default)]
    risk_last_updated_date_time: Option<DateTime<Utc>>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl GraphEvidence {
    /// The user this evidence names, for user and mailbox evidence.
    fn user(self) -> Option<UserEvidence> {
        let kind = self.odata_type.rsplit('.').next().unwrap_or_default();
        let (upn, id) = self
            .user_account
            .map(|a| {
                (
                    non_empty(a.user_principal_name),
                    non_empty(a.azure_ad_user_id),
                )
            })
            .unwrap_or_default();
        let address = match kind {
            "userEvidence" => upn,
            "mailboxEvidence" => non_empty(self.primary_address)
                .or(non_empty(self.upn))
                .or(upn),
            _ => return None,
        };
        Some(UserEvidence {
            address,
            azure_ad_user_id: id,
            roles: self.roles,
        })
    }
}

impl From<GraphAlert> for SecurityAlert {
    fn from(a: GraphAlert) -> SecurityAlert {
        SecurityAlert {
            users: a
                .evidence
                .into_iter()
                .filter_map(GraphEvidence::user)
                .collect(),
            id: a.id,
            incident_id: non_empty(a.incident_id),
            title: a.title.unwrap_or_default(),
            severity: a.severity.unwrap_or_else(|| "unknown".into()),
            status: a.status.unwrap_or_default(),
            determination: non_empty(a.determination).filter(|d| d != "unknown"),
            classification: non_empty(a.classification).filter(|c| c != "unknown"),
            service_source: non_empty(a.service_source),
            last_update: a.last_update_date_time,
        }
    }
}

impl From<GraphRiskyUser> for RiskyUser {
    fn from(u: GraphRiskyUser) -> RiskyUser {
        RiskyUser {
            id: u.id,
            user_principal_name: non_empty(u.user_principal_name),
            risk_level: u.risk_level.unwrap_or_default(),
            risk_state: u.risk_state.unwrap_or_default(),
            risk_last_updated: u.risk_last_updated_date_time,
        }
    }
}

/// An OData `DateTimeOffset` literal (unquoted), to the second.
fn odata_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[async_trait]
impl AlertSource for GraphClient {
    async fn security_alerts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<SecurityAlert>, RemoteError> {
        let filter = format!("lastUpdateDateTime gt {}", odata_time(since));
        let call = self
            .api
            .call(format!("GET security/alerts_v2 where {filter}"));
        let url = format!(
            "{}/v1.0/security/alerts_v2?$filter={}",
            self.api.base(),
            urlencoding::encode(&filter)
        );
        let alerts: Vec<GraphAlert> = self.get_all(&call, M365Request::get(url)).await?;
        Ok(alerts.into_iter().map(SecurityAlert::from).collect())
    }

    async fn risky_users(&self, since: DateTime<Utc>) -> Result<Vec<RiskyUser>, RemoteError> {
        let filter = format!("riskLastUpdatedDateTime gt {}", odata_time(since));
        let call = self
            .api
            .call(format!("GET identityProtection/riskyUsers where {filter}"));
        let url = format!(
            "{}/v1.0/identityProtection/riskyUsers?$filter={}",
            self.api.base(),
            urlencoding::encode(&filter)
        );
        let users: Vec<GraphRiskyUser> = self.get_all(&call, M365Request::get(url)).await?;
        Ok(users.into_iter().map(RiskyUser::from).collect())
    }
}

impl From<GraphCalendarPermission> for CalendarPermission {
    fn from(p: GraphCalendarPermission) -> CalendarPermission {
        let (email_name, email_address) = p
            .email_address
            .map(|e| (e.name, e.address))
            .unwrap_or_default();
        CalendarPermission {
            id: p.id,
            role: p.role,
            is_removable: p.is_removable,
            email_name: email_name.filter(|n| !n.is_empty()),
            email_address: email_address.filter(|a| !a.is_empty()),
        }
    }
}

/// HTML body; attachments as base64 file attachments; a copy kept in Sent Items.
fn send_mail_body(mail: &OutgoingMail) -> Value {
    let recipients: Vec<Value> = mail
        .to
        .iter()
        .map(|a| json!({ "emailAddress": { "address": a } }))
        .collect();
    let attachments: Vec<Value> = mail
        .attachments
        .iter()
        .map(|a| {
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": a.name,
                "contentType": a.content_type,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.content),
            })
        })
        .collect();
    json!({
        "message": {
            "subject": mail.subject,
            "body": { "contentType": "HTML", "content": mail.html_body },
            "toRecipients": recipients,
            "attachments": attachments,
        },
        "saveToSentItems": true,
    })
}

/// Graph's `{"error":{"code","message"}}` into the typed error. Only `ErrorItemNotFound` (and
/// the directory's `Request_ResourceNotFound`) mean the object is gone: other 404s such as
/// `ErrorInvalidUser`, `MailboxNotEnabledForRESTAPI` or `ResourceNotFound` say the mailbox
/// cannot be used through REST, which is an error.
pub(super) fn graph_error(call: &Call, reply: &Reply) -> RemoteError {
    let parsed = ErrorBody::parse(&reply.body).unwrap_or_default();
    let message = parsed
        .message
        .clone()
        .or_else(|| diagnostics_reason(reply))
        .unwrap_or_else(|| reply.body_snippet());
    let code = parsed.code;
    match reply.status {
        StatusCode::NOT_FOUND
            if matches!(
                code.as_deref(),
                Some("ErrorItemNotFound" | "Request_ResourceNotFound")
            ) =>
        {
            call.not_found(format!("{}: {message}", code.unwrap_or_default()))
        }
        StatusCode::UNAUTHORIZED => call.auth(message),
        status if status.is_client_error() => call.api_with(status, code, message, false),
        status => call.api(status, code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Attachment;

    #[test]
    fn graph_errors_map_to_typed_errors() {
        use crate::error::ErrorKind;
        let call = Call::new("graph", "DELETE calendarPermission x on a@b.c", None);
        let not_found = r#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}"#;
        assert!(matches!(
            graph_error(&call, &Reply::with(404, not_found)).kind,
            ErrorKind::NotFound { message } if message == "ErrorItemNotFound: The specified object was not found in the store."
        ));
        // A mailbox Graph cannot reach is an error, never "already gone".
        for code in [
            "ErrorInvalidUser",
            "MailboxNotEnabledForRESTAPI",
            "ResourceNotFound",
        ] {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"no"}}}}"#);
            let err = graph_error(&call, &Reply::with(404, &body));
            assert!(
                !err.is_not_found() && !err.is_transient(),
                "{code}: {err:?}"
            );
        }
        let denied = r#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
        assert_eq!(
            graph_error(&call, &Reply::with(403, denied)).kind,
            ErrorKind::Api {
                status: 403,
                code: Some("ErrorAccessDenied".into()),
                message: "Access is denied.".into(),
                transient: false,
            }
        );
        assert!(matches!(
            graph_error(&call, &Reply::with(401, "{}")).kind,
            ErrorKind::Auth { .. }
        ));
        let gateway = graph_error(&call, &Reply::with(502, "<html>bad gateway</html>"));
        assert!(
            matches!(&gateway.kind, ErrorKind::Api { status: 502, code: None, message, .. } if message.contains("bad gateway"))
        );
        assert!(gateway.is_transient());
    }

    #[test]
    fn alert_evidence_names_users_of_user_and_mailbox_evidence_only() {
        let raw = r##"{"id":"da1","incidentId":"7","severity":"high","status":"new","determination":"unknown",
            "lastUpdateDateTime":"2026-01-15T09:30:12.345Z",
            "evidence":[
              {"@odata.type":"#microsoft.graph.security.userEvidence","roles":["compromised"],
               "userAccount":{"accountName":"john","userPrincipalName":"john@acme.example","azureAdUserId":"u1"}},
              {"@odata.type":"#microsoft.graph.security.mailboxEvidence","roles":[],"primaryAddress":"ceo@acme.example","upn":"ceo@acme.example"},
              {"@odata.type":"#microsoft.graph.security.ipEvidence","roles":["attacker"],"ipAddress":"10.0.0.1"}
            ]}"##;
        let alert: SecurityAlert = serde_json::from_str::<GraphAlert>(raw).unwrap().into();
        assert_eq!(alert.users.len(), 2);
        assert!(alert.users[0].is_compromised());
        assert_eq!(alert.users[0].address.as_deref(), Some("john@acme.example"));
        assert_eq!(alert.users[1].address.as_deref(), Some("ceo@acme.example"));
        assert!(!alert.users[1].is_compromised());
        assert_eq!(alert.determination, None, "unknown is no determination");
        assert_eq!(alert.incident_id.as_deref(), Some("7"));
    }

    #[test]
    fn odata_literals_escape_quotes() {
        assert_eq!(odata_literal("o'brien@x.com"), "'o''brien@x.com'");
    }

    #[test]
    fn send_mail_body_has_the_documented_shape() {
        let mail = OutgoingMail {
            from: "automation@acme.com".into(),
            to: vec!["a@acme.com".into(), "b@acme.com".into()],
            subject: "Access removed".into(),
            html_body: "<p>done</p>".into(),
            attachments: vec![Attachment {
                name: "report.txt".into(),
                content_type: "text/plain".into(),
                content: b"hi".to_vec(),
            }],
        };
        let body = send_mail_body(&mail);
        assert_eq!(body["saveToSentItems"], true);
        assert_eq!(
            body["message"]["body"],
            json!({"contentType": "HTML", "content": "<p>done</p>"})
        );
        assert_eq!(
            body["message"]["toRecipients"][1]["emailAddress"]["address"],
            "b@acme.com"
        );
        let attachment = &body["message"]["attachments"][0];
        assert_eq!(attachment["@odata.type"], "#microsoft.graph.fileAttachment");
        assert_eq!(attachment["contentBytes"], "aGk=");
        assert_eq!(attachment["contentType"], "text/plain");
    }

    #[test]
    fn calendar_entries_without_address_keep_their_name() {
        let raw = r#"{"id":"RGVmYXVsdA==","role":"freeBusyRead","isRemovable":false,"emailAddress":{"name":"My Organization"}}"#;
        let p: CalendarPermission = serde_json::from_str::<GraphCalendarPermission>(raw)
            .unwrap()
            .into();
        assert_eq!(p.email_name.as_deref(), Some("My Organization"));
        assert_eq!(p.email_address, None);
        assert!(!p.is_removable);
    }
}
