//! Microsoft Graph: user lookup, group membership, calendar permissions and sendMail.

use crate::adapters::http::{same_origin_link, Call, HttpCore, Reply};
use crate::adapters::token::GRAPH_SCOPE;
use crate::config::{AppCredentials, ServiceUrls};
use crate::error::RemoteError;
use crate::ports::{
    CalendarPermission, Directory, DirectoryGroup, DirectoryUser, Mailer, OutgoingMail,
    RemovalOutcome,
};
use async_trait::async_trait;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Stops a server that hands out next links forever.
const MAX_PAGES: usize = 10_000;

pub struct GraphClient {
    core: Arc<HttpCore>,
    base: String,
    login: String,
    creds: AppCredentials,
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
struct GraphEmailAddress {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

impl GraphClient {
    pub fn new(core: Arc<HttpCore>, urls: &ServiceUrls, creds: AppCredentials) -> GraphClient {
        GraphClient {
            core,
            base: urls.graph.trim_end_matches('/').to_string(),
            login: urls.login.trim_end_matches('/').to_string(),
            creds,
        }
    }

    fn call(&self, operation: String) -> Call {
        Call::new("graph", operation, Some(&self.creds.tenant_id))
    }

    /// `{graph}/v1.0/users/{user}/{rest}` with the user as one encoded path segment.
    fn user_url(&self, user: &str, rest: &str) -> String {
        let user = urlencoding::encode(user);
        if rest.is_empty() {
            format!("{}/v1.0/users/{user}", self.base)
        } else {
            format!("{}/v1.0/users/{user}/{rest}", self.base)
        }
    }

    async fn request(
        &self,
        call: &Call,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RemoteError> {
        self.request_with(call, method, url, body, &[]).await
    }

    async fn request_with(
        &self,
        call: &Call,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, RemoteError> {
        let token = self
            .core
            .token(&self.login, &self.creds, GRAPH_SCOPE)
            .await?;
        self.core
            .send(call, |client| {
                let mut request = client
                    .request(method.clone(), url)
                    .bearer_auth(token.expose());
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    /// Every item of a collection, following `@odata.nextLink`.
    async fn get_all<T: DeserializeOwned>(
        &self,
        call: &Call,
        first_url: String,
        headers: &[(&str, &str)],
    ) -> Result<Vec<T>, RemoteError> {
        let mut items = Vec::new();
        let mut url = first_url;
        for _ in 0..MAX_PAGES {
            let reply = self
                .request_with(call, Method::GET, &url, None, headers)
                .await?;
            if !reply.is_success() {
                return Err(graph_error(call, &reply));
            }
            let page: Page<T> = reply.json(call)?;
            items.extend(page.value);
            match page.next_link {
                Some(link) => url = same_origin_link(&self.base, &link, call)?.to_string(),
                None => return Ok(items),
            }
        }
        Err(call.protocol(format!("more than {MAX_PAGES} pages")))
    }

    /// A request whose success has no body we need.
    async fn expect_success(
        &self,
        call: &Call,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(), RemoteError> {
        let reply = self.request(call, method, url, body).await?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(graph_error(call, &reply))
        }
    }
}

#[async_trait]
impl Directory for GraphClient {
    async fn find_user(&self, upn: &str) -> Result<Option<DirectoryUser>, RemoteError> {
        let call = self.call(format!("GET user {upn}"));
        let url = self.user_url(upn, "")
            + "?$select=id,displayName,userPrincipalName,mail,accountEnabled";
        let reply = self.request(&call, Method::GET, &url, None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(graph_error(&call, &reply));
        }
        let user: GraphUser = reply.json(&call)?;
        Ok(Some(DirectoryUser {
            id: user.id,
            user_principal_name: user.user_principal_name.unwrap_or_else(|| upn.to_string()),
            display_name: user.display_name.unwrap_or_default(),
            mail: user.mail.filter(|m| !m.is_empty()),
            account_enabled: user.account_enabled,
        }))
    }

    async fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>, RemoteError> {
        let call = self.call(format!("GET transitiveMemberOf {user_id}"));
        let url = self.user_url(user_id, "transitiveMemberOf/microsoft.graph.group")
            + "?$select=id,displayName,mail&$count=true";
        // Graph serves OData casts on directory objects only as "advanced queries".
        let groups: Vec<GraphGroup> = self
            .get_all(&call, url, &[("ConsistencyLevel", "eventual")])
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
        let call = self.call(format!("GET calendarPermissions {mailbox}"));
        let url = self.user_url(mailbox, "calendar/calendarPermissions");
        let permissions: Vec<GraphCalendarPermission> = self.get_all(&call, url, &[]).await?;
        Ok(permissions
            .into_iter()
            .map(CalendarPermission::from)
            .collect())
    }

    async fn remove_calendar_permission(
        &self,
        mailbox: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        let call = self.call(format!(
            "DELETE calendarPermission {permission_id} on {mailbox}"
        ));
        let rest = format!(
            "calendar/calendarPermissions/{}",
            urlencoding::encode(permission_id)
        );
        match self
            .expect_success(&call, Method::DELETE, &self.user_url(mailbox, &rest), None)
            .await
        {
            Ok(()) => Ok(RemovalOutcome::Removed),
            Err(RemoteError::NotFound { message, .. }) => {
                Ok(RemovalOutcome::AlreadyGone { warning: message })
            }
            Err(e) => Err(e),
        }
    }

    async fn add_calendar_permission(
        &self,
        mailbox: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError> {
        let call = self.call(format!(
            "POST calendarPermission {role} for {address} on {mailbox}"
        ));
        let body = json!({
            "emailAddress": { "address": address },
            "isInsideOrganization": true,
            "isRemovable": true,
            "role": role,
        });
        let url = self.user_url(mailbox, "calendar/calendarPermissions");
        self.expect_success(&call, Method::POST, &url, Some(&body))
            .await
    }
}

#[async_trait]
impl Mailer for GraphClient {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), RemoteError> {
        let call = self.call(format!("sendMail from {} \"{}\"", mail.from, mail.subject));
        let url = self.user_url(&mail.from, "sendMail");
        self.expect_success(&call, Method::POST, &url, Some(&send_mail_body(mail)))
            .await
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

/// `{"error":{"code","message"}}` into the typed error: 404 is NotFound, 401 Auth.
fn graph_error(call: &Call, reply: &Reply) -> RemoteError {
    let (code, message) =
        parse_graph_error(&reply.body).unwrap_or_else(|| (None, reply.body_snippet()));
    match reply.status {
        StatusCode::NOT_FOUND => call.not_found(match code {
            Some(code) => format!("{code}: {message}"),
            None => message,
        }),
        StatusCode::UNAUTHORIZED => call.auth(message),
        status => call.api(status, code, message),
    }
}

fn parse_graph_error(body: &str) -> Option<(Option<String>, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Attachment;

    #[test]
    fn graph_errors_map_to_typed_errors() {
        let call = Call::new("graph", "DELETE calendarPermission x on a@b.c", None);
        let not_found = r#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}"#;
        assert!(matches!(
            graph_error(&call, &Reply::with(404, not_found)),
            RemoteError::NotFound { message, .. } if message == "ErrorItemNotFound: The specified object was not found in the store."
        ));
        let denied = r#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
        assert_eq!(
            graph_error(&call, &Reply::with(403, denied)),
            RemoteError::Api {
                service: "graph",
                operation: call.operation.clone(),
                status: 403,
                code: Some("ErrorAccessDenied".into()),
                message: "Access is denied.".into()
            }
        );
        assert!(matches!(
            graph_error(&call, &Reply::with(401, "{}")),
            RemoteError::Auth { .. }
        ));
        assert!(
            matches!(graph_error(&call, &Reply::with(502, "<html>bad gateway</html>")),
            RemoteError::Api { status: 502, code: None, message, .. } if message.contains("bad gateway"))
        );
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
