//! Autotask: the API user's zone (looked up once per process), tickets and ticket notes, and
//! the company check. Every integration of an Autotask database shares 10,000 requests an
//! hour, so a run makes a handful of calls and backs off on 429. Wire facts: docs/psa.md.

use super::text::{id_text, truncate_chars};
use crate::adapters::http::{Call, HttpCore, Reply};
use crate::config::{AutotaskSettings, Secret};
use crate::error::RemoteError;
use crate::model::{AutotaskIds, PsaKind};
use crate::ports::{NewTicket, Psa, PsaCompany};
use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SERVICE: &str = "autotask";
const TITLE_MAX_CHARS: usize = 255;
const NOTE_TITLE_MAX_CHARS: usize = 250;
const DESCRIPTION_MAX_CHARS: usize = 8_000;
const NOTE_MAX_CHARS: usize = 32_000;
/// A database changes zone rarely; the zone is looked up again after this long (or at once
/// when the zone refuses the credentials).
const ZONE_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// Picklist values used when neither the company nor `[psa.autotask]` names one: status New,
/// priority Medium, note type and publish 1.
const DEFAULT_STATUS: u64 = 1;
const DEFAULT_PRIORITY: u64 = 2;
const DEFAULT_NOTE_TYPE: u64 = 1;
const DEFAULT_PUBLISH: u64 = 1;
/// How long a company's id found by its name is used for new tickets.
const COMPANY_LIFETIME: Duration = Duration::from_secs(3600);
const CUT: &str = "\n… (cut to fit Autotask; the whole report is in the email)";

pub struct AutotaskClient {
    core: Arc<HttpCore>,
    /// Where zones are looked up, without trailing slash.
    zone_lookup: String,
    integration_code: Secret,
    username: String,
    secret: Secret,
    ids: AutotaskIds,
}

#[derive(Deserialize)]
struct ZoneAnswer {
    url: String,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "itemId")]
    item_id: Value,
}

/// `GET Entity/{id}`: `{"item": null}` when there is no such entity.
#[derive(Deserialize)]
struct One<T> {
    item: Option<T>,
}

/// A query's `{"items": [...], "pageDetails": {...}}`.
#[derive(Deserialize)]
struct Many<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TicketAnswer {
    id: Value,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "companyID")]
    company_id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NoteAnswer {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompanyAnswer {
    id: Value,
    #[serde(default)]
    company_name: String,
}

impl CompanyAnswer {
    fn company(self) -> PsaCompany {
        PsaCompany {
            id: id_text(&self.id).unwrap_or_default(),
            identifier: self.company_name.clone(),
            name: self.company_name,
        }
    }
}

impl AutotaskClient {
    /// A client for one company: its own ids over the `[psa.autotask]` defaults.
    pub fn new(
        core: Arc<HttpCore>,
        settings: &AutotaskSettings,
        company: Option<&AutotaskIds>,
    ) -> Self {
        AutotaskClient {
            core,
            zone_lookup: settings.zone_url.trim().trim_end_matches('/').to_string(),
            integration_code: settings.integration_code.clone(),
            username: settings.username.clone(),
            secret: settings.secret.clone(),
            ids: company.map_or_else(|| settings.ids.clone(), |c| c.over(&settings.ids)),
        }
    }

    fn company_key(&self, name: &str) -> String {
        format!(
            "autotask company {} {}",
            self.zone_lookup,
            name.trim().to_lowercase()
        )
    }

    fn zone_key(&self) -> String {
        format!("autotask zone {} {}", self.zone_lookup, self.username)
    }

    /// The API user's zone (`…/atservicesrest/`), looked up once and kept for every client
    /// of this process.
    async fn zone(&self) -> Result<String, RemoteError> {
        let key = self.zone_key();
        if let Some(zone) = self.core.remembered(&key) {
            return Ok(zone.expose().to_string());
        }
        let call = Call::new(
            SERVICE,
            format!("zone of API user {}", self.username),
            Some(&self.zone_lookup),
        );
        let url = format!(
            "{}/v1.0/zoneInformation?user={}",
            self.zone_lookup,
            urlencoding::encode(&self.username)
        );
        let reply = self.core.send(&call, |client| client.get(&url)).await?;
        if !reply.is_success() {
            // An unknown API user has no zone: the credentials are wrong.
            let error = autotask_error(&call, &reply);
            return Err(match reply.status {
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => call
                    .auth(format!(
                        "no Autotask zone for API user '{}': {}",
                        self.username,
                        error.reason()
                    )),
                _ => error,
            });
        }
        let answer: ZoneAnswer = reply.json(&call)?;
        let zone = answer.url.trim().trim_end_matches('/').to_string();
        if zone.is_empty() {
            return Err(call.protocol("zoneInformation answered no url"));
        }
        self.core
            .remember(&key, Secret::new(zone.clone()), ZONE_LIFETIME);
        Ok(zone)
    }

    fn call(&self, operation: String) -> Call {
        Call::new(SERVICE, operation, Some(&self.zone_lookup))
    }

    /// One request to the zone with the three auth headers; any non-2xx is the typed error.
    async fn request(
        &self,
        call: &Call,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RemoteError> {
        let url = format!("{}/v1.0/{path}", self.zone().await?);
        let sensitive = |value: &str| {
            let mut header = HeaderValue::from_str(value)
                .map_err(|_| call.invalid("credentials", "not valid in an HTTP header"))?;
            header.set_sensitive(true);
            Ok::<_, RemoteError>(header)
        };
        let code = sensitive(self.integration_code.expose())?;
        let secret = sensitive(self.secret.expose())?;
        let reply = self
            .core
            .send(call, |client| {
                let request = client
                    .request(method.clone(), &url)
                    .header("ApiIntegrationCode", code.clone())
                    .header("UserName", &self.username)
                    .header("Secret", secret.clone())
                    .header(CONTENT_TYPE, "application/json");
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        if reply.is_success() {
            return Ok(reply);
        }
        if reply.status == StatusCode::UNAUTHORIZED {
            // The next call looks the zone up again, in case the database moved.
            self.core.forget(&self.zone_key());
        }
        Err(autotask_error(call, &reply))
    }

    async fn get<T: DeserializeOwned>(&self, call: &Call, path: &str) -> Result<T, RemoteError> {
        let reply = self.request(call, Method::GET, path, None).await?;
        reply.json(call)
    }

    /// `GET Entity/query?search=…` with one filter.
    async fn query<T: DeserializeOwned>(
        &self,
        call: &Call,
        entity: &str,
        op: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<T>, RemoteError> {
        let search = json!({"filter": [{"op": op, "field": field, "value": value}]});
        let path = format!(
            "{entity}/query?search={}",
            urlencoding::encode(&search.to_string())
        );
        Ok(self.get::<Many<T>>(call, &path).await?.items)
    }

    async fn company_by_id(
        &self,
        call: &Call,
        id: &str,
    ) -> Result<Option<PsaCompany>, RemoteError> {
        let found: One<CompanyAnswer> = self.get(call, &format!("Companies/{id}")).await?;
        Ok(found.item.map(CompanyAnswer::company))
    }

    /// The numeric company id `psa_company` names (looked up when it is a name).
    async fn company_id_of(&self, psa_company: &str) -> Result<u64, RemoteError> {
        if let Ok(id) = psa_company.trim().parse::<u64>() {
            return Ok(id);
        }
        // The check before removal looked it up already: one call less of the shared budget.
        let known = self.core.remembered(&self.company_key(psa_company));
        if let Some(id) = known.and_then(|id| id.expose().parse().ok()) {
            return Ok(id);
        }
        let call = self.call(format!("find company '{psa_company}'"));
        let company = self.find_company(psa_company).await?.ok_or_else(|| {
            call.not_found(format!("no Autotask company is named '{psa_company}'"))
        })?;
        company
            .id
            .parse()
            .map_err(|_| call.protocol(format!("company id '{}' is not a number", company.id)))
    }
}

#[async_trait]
impl Psa for AutotaskClient {
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError> {
        PsaKind::Autotask.check_ticket_id(SERVICE, ticket_id)
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError> {
        let company_id = self.company_id_of(&ticket.company).await?;
        // Never replayed blindly: a retry after a timeout could create a second ticket.
        let call = self
            .call(format!("create ticket for company {company_id}"))
            .once();
        let mut body = json!({
            "companyID": company_id,
            "title": truncate_chars(&ticket.summary, TITLE_MAX_CHARS),
            "description": fit(&ticket.initial_description, DESCRIPTION_MAX_CHARS),
            "status": self.ids.status.unwrap_or(DEFAULT_STATUS),
            "priority": self.ids.priority.unwrap_or(DEFAULT_PRIORITY),
        });
        if let Some(queue) = self.ids.queue_id {
            body["queueID"] = json!(queue);
        }
        let reply = self
            .request(&call, Method::POST, "Tickets", Some(&body))
            .await?;
        let created: Created = reply.json(&call)?;
        id_text(&created.item_id).ok_or_else(|| call.protocol("created ticket has no itemId"))
    }

    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("add note to ticket {ticket_id}")).once();
        // Always titled: a tenant's settings may require a title, and one never hurts.
        let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let title = match first_line.trim() {
            "" => "Revoke365 report",
            line => truncate_chars(line, NOTE_TITLE_MAX_CHARS),
        };
        let body = json!({
            "title": title,
            "description": fit(text, NOTE_MAX_CHARS),
            "noteType": self.ids.note_type.unwrap_or(DEFAULT_NOTE_TYPE),
            "publish": self.ids.publish.unwrap_or(DEFAULT_PUBLISH),
        });
        self.request(
            &call,
            Method::POST,
            &format!("Tickets/{ticket_id}/Notes"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn find_ticket(&self, marker: &str) -> Result<Option<String>, RemoteError> {
        let call = self.call(format!("find ticket by marker {marker}"));
        let found: Vec<TicketAnswer> = self
            .query(&call, "Tickets", "contains", "title", marker)
            .await?;
        Ok(found
            .iter()
            .filter(|t| t.title.as_deref().is_some_and(|s| s.contains(marker)))
            .find_map(|t| id_text(&t.id)))
    }

    async fn has_note(&self, ticket_id: &str, marker: &str) -> Result<bool, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("read notes of ticket {ticket_id}"));
        let notes: Many<NoteAnswer> = self
            .get(&call, &format!("Tickets/{ticket_id}/Notes"))
            .await?;
        Ok(notes.items.iter().any(|n| {
            [&n.title, &n.description]
                .into_iter()
                .flatten()
                .any(|t| t.contains(marker))
        }))
    }

    async fn ticket_company(&self, ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError> {
        self.check_ticket_id(ticket_id)?;
        let call = self.call(format!("GET company of ticket {ticket_id}"));
        let found: One<TicketAnswer> = match self.get(&call, &format!("Tickets/{ticket_id}")).await
        {
            Ok(found) => found,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(ticket) = found.item else {
            return Ok(None);
        };
        let company_id = ticket
            .company_id
            .as_ref()
            .and_then(id_text)
            .ok_or_else(|| call.protocol(format!("ticket {ticket_id} has no companyID")))?;
        // The name too, so that a company named by name in the config is recognised.
        let company = self.company_by_id(&call, &company_id).await?;
        Ok(Some(company.unwrap_or(PsaCompany {
            id: company_id,
            identifier: String::new(),
            name: String::new(),
        })))
    }

    async fn find_company(&self, psa_company: &str) -> Result<Option<PsaCompany>, RemoteError> {
        let wanted = psa_company.trim();
        let call = self.call(format!("find company '{wanted}'"));
        if !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_digit()) {
            return self.company_by_id(&call, wanted).await;
        }
        let found: Vec<CompanyAnswer> = self
            .query(&call, "Companies", "eq", "companyName", wanted)
            .await?;
        let company = found
            .into_iter()
            .map(CompanyAnswer::company)
            .find(|c| c.is(wanted));
        if let Some(company) = &company {
            let id = Secret::new(company.id.clone());
            self.core
                .remember(&self.company_key(wanted), id, COMPANY_LIFETIME);
        }
        Ok(company)
    }
}

/// `text` within `max` characters; a cut one says so at its end.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(CUT.chars().count());
    format!("{}{CUT}", truncate_chars(text, keep))
}

/// `{"errors": ["..."]}`: 404 NotFound, 401/403 Auth, else Api. Autotask answers a rejected
/// object (a missing field, a business rule) with 500 and its reasons: that does not pass by
/// trying again, so it is permanent.
fn autotask_error(call: &Call, reply: &Reply) -> RemoteError {
    let errors: Vec<String> = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            Some(
                v.get("errors")?
                    .as_array()?
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let message = if errors.is_empty() {
        reply.body_snippet()
    } else {
        errors.join("; ")
    };
    match reply.status {
        StatusCode::NOT_FOUND => call.not_found(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => call.auth(message),
        StatusCode::INTERNAL_SERVER_ERROR if !errors.is_empty() => {
            call.api_with(reply.status, None, message, false)
        }
        status => call.api(status, None, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_object_is_permanent_even_as_500() {
        let call = Call::new(SERVICE, "create ticket", None);
        let body = r#"{"errors":["Missing Required Field: title"]}"#;
        let err = autotask_error(&call, &Reply::with(500, body));
        assert!(!err.is_transient(), "{err:?}");
        assert!(err.reason().contains("Missing Required Field: title"));
        assert!(autotask_error(&call, &Reply::with(500, "")).is_transient());
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let long = "x".repeat(9_000);
        let cut = fit(&long, DESCRIPTION_MAX_CHARS);
        assert_eq!(cut.chars().count(), DESCRIPTION_MAX_CHARS);
        assert!(cut.ends_with("the whole report is in the email)"));
        assert_eq!(fit("short", 10), "short");
    }
}
