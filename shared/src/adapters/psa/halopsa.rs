//! HaloPSA: a client-credentials token, tickets, and the report as a ticket action (a note
//! hidden from the end user). Wire facts: docs/psa.md.

use super::text::{id_text, truncate_chars};
use crate::adapters::http::{Call, HttpCore, Reply};
use crate::config::{HaloSettings, Secret, HALO_DEFAULT_OUTCOME_ID};
use crate::error::{ErrorKind, RemoteError};
use crate::model::{HaloIds, PsaKind};
use crate::ports::{NewTicket, Psa, PsaCompany};
use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SERVICE: &str = "halopsa";
const SUMMARY_MAX_CHARS: usize = 250;
/// How long a client's id found by its name is used for new tickets.
const CLIENT_LIFETIME: Duration = Duration::from_secs(3600);
/// Tokens are fetched again this long before Halo says they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);

pub struct HaloClient {
    core: Arc<HttpCore>,
    /// `…/auth`, without trailing slash.
    auth_url: String,
    /// `…/api`, without trailing slash.
    api_url: String,
    client_id: String,
    client_secret: Secret,
    tenant: Option<String>,
    ids: HaloIds,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TicketAnswer {
    id: Value,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    client_id: Option<Value>,
    #[serde(default)]
    client_name: Option<String>,
}

#[derive(Deserialize)]
struct TicketList {
    #[serde(default)]
    tickets: Vec<TicketAnswer>,
}

#[derive(Deserialize)]
struct ActionAnswer {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    note_html: Option<String>,
}

#[derive(Deserialize)]
struct ActionList {
    #[serde(default)]
    actions: Vec<ActionAnswer>,
}

#[derive(Deserialize)]
struct ClientAnswer {
    id: Value,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ClientList {
    #[serde(default)]
    clients: Vec<ClientAnswer>,
}

impl ClientAnswer {
    fn company(self) -> PsaCompany {
        PsaCompany {
            id: id_text(&self.id).unwrap_or_default(),
            identifier: self.name.clone(),
            name: self.name,
        }
    }
}

impl HaloClient {
    /// A client for one company: its own ids over the `[psa.halo]` defaults.
    pub fn new(core: Arc<HttpCore>, settings: &HaloSettings, company: Option<&HaloIds>) -> Self {
        let trim = |url: &str| url.trim().trim_end_matches('/').to_string();
        HaloClient {
            core,
            auth_url: trim(&settings.auth_url),
            api_url: trim(&settings.api_url),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            tenant: settings.tenant.clone().filter(|t| !t.trim().is_empty()),
            ids: company.map_or_else(|| settings.ids.clone(), |c| c.over(&settings.ids)),
        }
    }

    fn call(&self, operation: String) -> Call {
        Call::new(SERVICE, operation, Some(&self.api_url))
    }

    fn client_key(&self, name: &str) -> String {
        format!(
            "halo client {} {}",
            self.api_url,
            name.trim().to_lowercase()
        )
    }

    fn token_key(&self) -> String {
        format!(
            "halo token {} {} {}",
            self.auth_url,
            self.tenant.as_deref().unwrap_or(""),
            self.client_id
        )
    }

    /// The bearer token, kept for every client of this process until shortly before it
    /// expires; `stale` (a token Halo refused) is never handed out again.
    async fn token(&self, stale: Option<&Secret>) -> Result<Secret, RemoteError> {
        let key = self.token_key();
        if let Some(token) = self.core.remembered(&key).filter(|t| Some(t) != stale) {
            return Ok(token);
        }
        let url = match &self.tenant {
            Some(tenant) => format!(
                "{}/token?tenant={}",
                self.auth_url,
                urlencoding::encode(tenant)
            ),
            None => format!("{}/token", self.auth_url),
        };
        let call = Call::new(
            SERVICE,
            format!("token for HaloPSA API application {}", self.client_id),
            None,
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", "all"),
        ];
        let reply = self
            .core
            .send(&call, |client| client.post(&url).form(&form))
            .await?;
        if !reply.is_success() {
            let error = redact(halo_error(&call, &reply), &self.client_secret);
            // A refused secret is a rejection whatever the status Halo picked for it.
            return Err(match reply.status {
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    call.auth(error.reason())
                }
                _ => error,
            });
        }
        let answer: TokenAnswer = reply.json(&call)?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let token = Secret::new(answer.access_token);
        let keep = lifetime.checked_sub(EXPIRY_MARGIN).unwrap_or(lifetime / 2);
        self.core.remember(&key, token.clone(), keep);
        Ok(token)
    }

    /// One API request with the bearer token; a 401 fetches one new token and tries once
    /// more (Halo refused the request, so nothing was done).
    async fn request(
        &self,
        call: &Call,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RemoteError> {
        let url = format!("{}/{path}", self.api_url);
        let mut token = self.token(None).await?;
        let mut renewed = false;
        loop {
            let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| call.invalid("token", "not valid in an HTTP header"))?;
            authorization.set_sensitive(true);
            let reply = self
                .core
                .send(call, |client| {
                    let request = client
                        .request(method.clone(), &url)
                        .header(AUTHORIZATION, authorization.clone());
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                })
                .await?;
            if reply.status == StatusCode::UNAUTHORIZED && !renewed {
                self.core.forget(&self.token_key());
                token = self.token(Some(&token)).await?;
                renewed = true;
                continue;
            }
            return if reply.is_success() {
                Ok(reply)
            } else {
                Err(halo_error(call, &reply))
            };
        }
    }

    /// The numeric client id `psa_company` names (looked up when it is a name).
    async fn client_id_of(&self, psa_company: &str) -> Result<u64, RemoteError> {
        if let Ok(id) = psa_company.trim().parse::<u64>() {
            return Ok(id);
        }
        // The check before removal looked it up already.
        let known = self.core.remembered(&self.client_key(psa_company));
        if let Some(id) = known.and_then(|id| id.expose().parse().ok()) {
            return Ok(id);
        }
        let company = self.find_company(psa_company).await?.ok_or_else(|| {
            self.call(format!("find client '{psa_company}'"))
                .not_found(format!("no HaloPSA client is named '{psa_company}'"))
        })?;
        company.id.parse().map_err(|_| {
            self.call(format!("find client '{psa_company}'"))
                .protocol(format!("client id '{}' is not a number", company.id))
        })
    }
}

#[async_trait]
impl Psa for HaloClient {
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError> {
        PsaKind::Halo.check_ticket_id(SERVICE, ticket_id)
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError> {
        let client_id = self.client_id_of(&ticket.company).await?;
        // Never replayed blindly: a retry after a timeout could create a second ticket.
        let call = self
            .call(format!("create ticket for client {client_id}"))
            .once();
        let mut item = json!({
            "summary": truncate_chars(&ticket.summary, SUMMARY_MAX_CHARS),
            "details_html": text_html(&ticket.initial_description),
            "client_id": client_id,
        });
        for (field, value) in [
            ("site_id", self.ids.site_id),
            ("tickettype_id", self.ids.tickettype_id),
            ("priority_id", self.ids.priority_id),
        ] {
            if let Some(value) = value {
                item[field] = json!(value);
            }
        }
        let reply = self
            .request(&call, Method::POST, "Tickets", Some(&json!([item])))
            .await?;
        // One posted item comes back as the ticket object; several (or `returnall`) as an array.
        let created: Value = reply.json(&call)?;
        let created = match created {
            Value::Array(items) => items.into_iter().next().unwrap_or_default(),
            object => object,
        };
        created
            .get("id")
            .and_then(id_text)
            .filter(|id| id != "0")
            .ok_or_else(|| call.protocol("created ticket has no id"))
    }

    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self
            .call(format!("add action to ticket {ticket_id}"))
            .once();
        let action = json!([{
            "ticket_id": ticket_id.parse::<u64>().unwrap_or_default(),
            "outcome_id": self.ids.outcome_id.unwrap_or(HALO_DEFAULT_OUTCOME_ID),
            "note_html": text_html(text),
            "hiddenfromuser": true,
        }]);
        self.request(&call, Method::POST, "Actions", Some(&action))
            .await?;
        Ok(())
    }

    async fn find_ticket(&self, marker: &str) -> Result<Option<String>, RemoteError> {
        let call = self.call(format!("find ticket by marker {marker}"));
        let path = format!("Tickets?search={}", urlencoding::encode(marker));
        let reply = self.request(&call, Method::GET, &path, None).await?;
        let found: TicketList = reply.json(&call)?;
        // Halo's search looks at more than the summary: keep only a summary that carries it.
        Ok(found
            .tickets
            .iter()
            .filter(|t| t.summary.as_deref().is_some_and(|s| s.contains(marker)))
            .find_map(|t| id_text(&t.id)))
    }

    async fn has_note(&self, ticket_id: &str, marker: &str) -> Result<bool, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("read actions of ticket {ticket_id}"));
        let path = format!("Actions?ticket_id={ticket_id}&excludesys=true");
        let reply = self.request(&call, Method::GET, &path, None).await?;
        let found: ActionList = reply.json(&call)?;
        Ok(found.actions.iter().any(|a| {
            [&a.note, &a.note_html]
                .into_iter()
                .flatten()
                .any(|t| t.contains(marker))
        }))
    }

    async fn ticket_company(&self, ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("GET client of ticket {ticket_id}"));
        let reply = match self
            .request(&call, Method::GET, &format!("Tickets/{ticket_id}"), None)
            .await
        {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let ticket: TicketAnswer = reply.json(&call)?;
        let id = ticket
            .client_id
            .as_ref()
            .and_then(id_text)
            .ok_or_else(|| call.protocol(format!("ticket {ticket_id} has no client_id")))?;
        let name = ticket.client_name.unwrap_or_default();
        Ok(Some(PsaCompany {
            id,
            identifier: name.clone(),
            name,
        }))
    }

    async fn find_company(&self, psa_company: &str) -> Result<Option<PsaCompany>, RemoteError> {
        let wanted = psa_company.trim();
        let call = self.call(format!("find client '{wanted}'"));
        if !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_digit()) {
            let path = format!("Client/{wanted}");
            return match self.request(&call, Method::GET, &path, None).await {
                Ok(reply) => Ok(Some(reply.json::<ClientAnswer>(&call)?.company())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            };
        }
        let path = format!("Client?search={}", urlencoding::encode(wanted));
        let reply = self.request(&call, Method::GET, &path, None).await?;
        let found: ClientList = reply.json(&call)?;
        let client = found
            .clients
            .into_iter()
            .map(ClientAnswer::company)
            .find(|c| c.is(wanted));
        if let Some(client) = &client {
            let id = Secret::new(client.id.clone());
            self.core
                .remember(&self.client_key(wanted), id, CLIENT_LIFETIME);
        }
        Ok(client)
    }
}

/// Belt and braces: an error never carries the client secret, whatever the server echoed.
fn redact(mut error: RemoteError, secret: &Secret) -> RemoteError {
    let value = secret.expose();
    if value.is_empty() {
        return error;
    }
    if let ErrorKind::Auth { message }
    | ErrorKind::Api { message, .. }
    | ErrorKind::NotFound { message }
    | ErrorKind::Protocol { message } = &mut error.kind
    {
        *message = message.replace(value, "***");
    }
    error
}

/// Plain text as HTML that keeps its lines and spacing (Halo shows `note_html` as HTML).
pub(crate) fn text_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 64);
    html.push_str("<p style=\"white-space: pre-wrap; font-family: monospace\">");
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\n' => html.push_str("<br>"),
            '\r' => {}
            c => html.push(c),
        }
    }
    html.push_str("</p>");
    html
}

/// Halo's error answers come as a JSON string, an object with a message, or plain text:
/// 404 NotFound, 401/403 Auth, else Api.
fn halo_error(call: &Call, reply: &Reply) -> RemoteError {
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => ["message", "error_description", "error", "title"]
                .iter()
                .find_map(|k| o.get(*k)?.as_str().map(str::to_string)),
            _ => None,
        })
        .unwrap_or_else(|| reply.body_snippet());
    match reply.status {
        StatusCode::NOT_FOUND => call.not_found(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => call.auth(message),
        status => call.api(status, None, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_keep_their_lines_and_escape_markup() {
        assert_eq!(
            text_html("a <b> & c\nnext"),
            "<p style=\"white-space: pre-wrap; font-family: monospace\">a &lt;b&gt; &amp; c<br>next</p>"
        );
    }

    #[test]
    fn error_bodies_of_every_shape_give_their_message() {
        let call = Call::new(SERVICE, "add action", None);
        let text = |status, body| halo_error(&call, &Reply::with(status, body)).reason();
        assert!(text(400, r#""An Outcome must be entered for this Action""#)
            .contains("An Outcome must be entered"));
        assert!(text(400, r#"{"message":"bad client"}"#).contains("bad client"));
        assert!(text(500, "plain failure").contains("plain failure"));
        assert!(matches!(
            halo_error(&call, &Reply::with(401, "")).kind,
            ErrorKind::Auth { .. }
        ));
    }
}
