//! ConnectWise Manage: tickets and notes.

use super::text::{id_text, truncate_chars};
use crate::adapters::http::{Call, HttpCore, Reply};
use crate::config::{ConnectWiseCredentials, Secret};
use crate::error::RemoteError;
use crate::model::PsaKind;
use crate::ports::{NewTicket, Psa, PsaCompany};
use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const SERVICE: &str = "connectwise";
const SUMMARY_MAX_CHARS: usize = 100;

pub struct ConnectWiseClient {
    core: Arc<HttpCore>,
    /// `{psa}/v4_6_release/apis/3.0`
    base: String,
    /// `Basic base64(company+public:private)`
    authorization: Secret,
    client_id: String,
}

/// The fields of a ticket Revoke365 reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub summary: String,
    pub board: Option<String>,
    pub company: Option<String>,
}

#[derive(Deserialize)]
struct TicketAnswer {
    id: Value,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    board: Option<NamedRef>,
    #[serde(default)]
    company: Option<NamedRef>,
}

#[derive(Deserialize)]
struct NamedRef {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
}

impl NamedRef {
    fn company(self) -> PsaCompany {
        PsaCompany {
            id: self.id.as_ref().and_then(id_text).unwrap_or_default(),
            identifier: self.identifier.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
        }
    }
}

impl ConnectWiseClient {
    pub fn new(
        core: Arc<HttpCore>,
        base_url: &str,
        creds: ConnectWiseCredentials,
    ) -> ConnectWiseClient {
        let pair = format!(
            "{}+{}:{}",
            creds.company,
            creds.public_key,
            creds.private_key.expose()
        );
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        ConnectWiseClient {
            core,
            base: format!("{}/v4_6_release/apis/3.0", base_url.trim_end_matches('/')),
            authorization: Secret::new(authorization),
            client_id: creds.client_id,
        }
    }

    /// Reads a ticket back (used to check what was written).
    pub async fn get_ticket(&self, ticket_id: &str) -> Result<Ticket, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("GET ticket {ticket_id}"));
        let reply = self
            .request(
                &call,
                Method::GET,
                &format!("service/tickets/{ticket_id}"),
                None,
            )
            .await?;
        let ticket: TicketAnswer = reply.json(&call)?;
        Ok(Ticket {
            id: id_text(&ticket.id).ok_or_else(|| call.protocol("ticket without an id"))?,
            summary: ticket.summary,
            board: ticket.board.and_then(|b| b.name),
            company: ticket.company.and_then(|c| c.identifier),
        })
    }

    /// Companies matching one ConnectWise condition (at most a few).
    async fn companies_where(
        &self,
        call: &Call,
        condition: &str,
    ) -> Result<Vec<PsaCompany>, RemoteError> {
        let path = format!(
            "company/companies?conditions={}&fields=id,identifier,name&pageSize=2",
            urlencoding::encode(condition)
        );
        let reply = self.request(call, Method::GET, &path, None).await?;
        let found: Vec<NamedRef> = reply.json(call)?;
        Ok(found.into_iter().map(NamedRef::company).collect())
    }

    /// A call against this PSA instance: its few calls per run share one small budget.
    fn call(&self, operation: String) -> Call {
        Call::new(SERVICE, operation, Some(&self.base))
    }

    /// One PSA request; any non-2xx answer becomes the typed error.
    async fn request(
        &self,
        call: &Call,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RemoteError> {
        let url = format!("{}/{path}", self.base);
        let mut authorization = HeaderValue::from_str(self.authorization.expose())
            .map_err(|_| call.invalid("credentials", "not valid in an HTTP header"))?;
        authorization.set_sensitive(true);
        let reply = self
            .core
            .send(call, |client| {
                let request = client
                    .request(method.clone(), &url)
                    .header(AUTHORIZATION, authorization.clone())
                    .header("clientId", &self.client_id);
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(connectwise_error(call, &reply))
        }
    }
}

#[async_trait]
impl Psa for ConnectWiseClient {
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError> {
        PsaKind::Connectwise.check_ticket_id(SERVICE, ticket_id)
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError> {
        // Never replayed blindly: a retry after a timeout could create a second ticket.
        let call = self
            .call(format!(
                "create ticket on board '{}' for company '{}'",
                ticket.board, ticket.company
            ))
            .once();
        let body = json!({
            "summary": truncate_chars(&ticket.summary, SUMMARY_MAX_CHARS),
            "board": { "name": ticket.board },
            "company": { "identifier": ticket.company },
            "initialDescription": ticket.initial_description,
        });
        let reply = self
            .request(&call, Method::POST, "service/tickets", Some(&body))
            .await?;
        let created: TicketAnswer = reply.json(&call)?;
        id_text(&created.id).ok_or_else(|| call.protocol("created ticket has no id"))
    }

    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("add note to ticket {ticket_id}")).once();
        let body = json!({
            "text": text,
            "detailDescriptionFlag": false,
            "internalAnalysisFlag": true,
            "resolutionFlag": false,
        });
        self.request(
            &call,
            Method::POST,
            &format!("service/tickets/{ticket_id}/notes"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn find_ticket(&self, marker: &str) -> Result<Option<String>, RemoteError> {
        let call = self.call(format!("find ticket by marker {marker}"));
        // ConnectWise conditions quote with double quotes; the marker is a run id (no quotes).
        let conditions = format!("summary like \"%{}%\"", marker.replace('"', ""));
        let path = format!(
            "service/tickets?conditions={}&fields=id,summary&pageSize=25",
            urlencoding::encode(&conditions)
        );
        let reply = self.request(&call, Method::GET, &path, None).await?;
        let found: Vec<TicketAnswer> = reply.json(&call)?;
        Ok(found.iter().find_map(|t| id_text(&t.id)))
    }

    async fn has_note(&self, ticket_id: &str, marker: &str) -> Result<bool, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("read notes of ticket {ticket_id}"));
        let path = format!("service/tickets/{ticket_id}/notes?pageSize=1000");
        let reply = self.request(&call, Method::GET, &path, None).await?;
        let notes: Vec<NoteAnswer> = reply.json(&call)?;
        Ok(notes
            .iter()
            .any(|n| n.text.as_deref().is_some_and(|t| t.contains(marker))))
    }

    async fn ticket_company(&self, ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("GET company of ticket {ticket_id}"));
        let path = format!("service/tickets/{ticket_id}?fields=id,company");
        let reply = match self.request(&call, Method::GET, &path, None).await {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let ticket: TicketAnswer = reply.json(&call)?;
        let company = ticket
            .company
            .ok_or_else(|| call.protocol(format!("ticket {ticket_id} has no company")))?;
        Ok(Some(company.company()))
    }

    async fn find_company(&self, psa_company: &str) -> Result<Option<PsaCompany>, RemoteError> {
        let wanted = psa_company.trim();
        let call = self.call(format!("find company '{wanted}'"));
        // Conditions quote with double quotes; an identifier has none.
        let by_identifier = format!("identifier=\"{}\"", wanted.replace('"', ""));
        let mut found = self.companies_where(&call, &by_identifier).await?;
        if found.is_empty() && !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_digit()) {
            found = self.companies_where(&call, &format!("id={wanted}")).await?;
        }
        Ok(found.into_iter().find(|c| c.is(wanted)))
    }
}

#[derive(Deserialize)]
struct NoteAnswer {
    #[serde(default)]
    text: Option<String>,
}

/// `{"code","message","errors":[{"message","field"}]}`: 404 NotFound, 401 Auth, else Api.
fn connectwise_error(call: &Call, reply: &Reply) -> RemoteError {
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code")?.as_str())
        .map(str::to_string);
    let message = parsed
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| reply.body_snippet());
    match reply.status {
        StatusCode::NOT_FOUND => call.not_found(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => call.auth(message),
        status => call.api(status, code, message),
    }
}

fn error_message(body: &Value) -> Option<String> {
    let mut message = body.get("message")?.as_str()?.to_string();
    for error in body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = error.get("field").and_then(Value::as_str);
        if let Some(text) = error.get("message").and_then(Value::as_str) {
            match field {
                Some(field) => message.push_str(&format!("; {field}: {text}")),
                None => message.push_str(&format!("; {text}")),
            }
        }
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpSettings;

    fn client() -> ConnectWiseClient {
        let creds = ConnectWiseCredentials {
            company: "msp".into(),
            public_key: "pub".into(),
            private_key: Secret::new("very-private"),
            client_id: "0000".into(),
        };
        ConnectWiseClient::new(
            HttpCore::new(HttpSettings::default()).unwrap(),
            "http://127.0.0.1:9/",
            creds,
        )
    }

    #[test]
    fn ticket_ids_must_be_numbers() {
        let psa = client();
        assert!(psa.check_ticket_id("48213").is_ok());
        for bad in [
            "",
            "T-1",
            "12a",
            "+12",
            " 12",
            "-3",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(
                    psa.check_ticket_id(bad).map_err(|e| e.kind),
                    Err(crate::error::ErrorKind::InvalidInput {
                        field: "ticket_id",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_stay_out_of_debug_and_errors() {
        let psa = client();
        assert!(!psa.authorization.to_string().contains("Basic"));
        let body = r#"{"code":"InvalidObject","message":"ticket object is invalid","errors":[{"code":"Required","message":"summary is required","field":"summary"}]}"#;
        let call = Call::new(SERVICE, "create ticket", None);
        let err = connectwise_error(&call, &Reply::with(400, body));
        assert_eq!(
            err,
            RemoteError::new(
                SERVICE,
                "create ticket",
                crate::error::ErrorKind::Api {
                    status: 400,
                    code: Some("InvalidObject".into()),
                    message: "ticket object is invalid; summary: summary is required".into(),
                    transient: false,
                }
            )
        );
    }
}
