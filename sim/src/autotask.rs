//! Autotask REST (`/atservicesrest/v1.0/zoneInformation`, then the zone at
//! `/ww5/atservicesrest/v1.0`): tickets, ticket notes and companies, over the same tickets and
//! companies as the other PSAs.
//!
//! Autotask's awkward ways, as the real service has them: the API user's zone must be looked
//! up first; every call carries `ApiIntegrationCode`, `UserName` and `Secret` (401, empty
//! body, when one is wrong); `GET Entity/{id}` of a missing entity is 200 `{"item": null}`;
//! a rejected object is a 500 with `{"errors": [...]}`; a note's `title` may be required by
//! the tenant's settings (`sim.autotask_note_title_required`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::counted;
use crate::state::{Company, Note, Ticket};
use crate::wire::json_response;
use crate::Sim;

const ZONE_INFORMATION: &str = "/atservicesrest/v1.0/zoneInformation";
/// Where the simulator's one zone serves.
pub const ZONE_PATH: &str = "/ww5/atservicesrest";
const TICKETS: &str = "/ww5/atservicesrest/v1.0/Tickets";
const TICKETS_QUERY: &str = "/ww5/atservicesrest/v1.0/Tickets/query";
const TICKET: &str = "/ww5/atservicesrest/v1.0/Tickets/{id}";
const NOTES: &str = "/ww5/atservicesrest/v1.0/Tickets/{id}/Notes";
const COMPANIES_QUERY: &str = "/ww5/atservicesrest/v1.0/Companies/query";
const COMPANY: &str = "/ww5/atservicesrest/v1.0/Companies/{id}";
const TITLE_MAX: usize = 255;

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    let zone = Router::new()
        .route(
            TICKETS,
            counted(sim, "autotask POST tickets", post(create_ticket)),
        )
        .route(
            TICKETS_QUERY,
            counted(sim, "autotask GET tickets query", get(query_tickets)),
        )
        .route(TICKET, counted(sim, "autotask GET ticket", get(get_ticket)))
        .route(
            NOTES,
            counted(sim, "autotask POST notes", post(create_note)),
        )
        .route(NOTES, counted(sim, "autotask GET notes", get(list_notes)))
        .route(
            COMPANIES_QUERY,
            counted(sim, "autotask GET companies query", get(query_companies)),
        )
        .route(
            COMPANY,
            counted(sim, "autotask GET company", get(get_company)),
        )
        .route_layer(from_fn_with_state(sim.clone(), require_api_user));
    Router::new()
        .route(
            ZONE_INFORMATION,
            counted(sim, "autotask GET zoneInformation", get(zone_information)),
        )
        .merge(zone)
}

/// `{"errors": [...]}` with `status`.
fn errors(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, json!({"errors": [message.into()]}))
}

/// A rejected object: Autotask says 500.
fn rejected(message: impl Into<String>) -> Response {
    errors(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// A rejected object before it is answered (small, unlike a `Response`).
struct Rejected(String);

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        rejected(self.0)
    }
}

/// `GET zoneInformation?user=`: where the user's database lives.
async fn zone_information(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let user = query.get("user").map(|u| u.trim()).unwrap_or_default();
    let known = match &sim.options.autotask_username {
        Some(expected) => user.eq_ignore_ascii_case(expected),
        None => user.contains('@'),
    };
    if !known {
        return errors(
            StatusCode::NOT_FOUND,
            format!("Zone information could not be determined for user '{user}'."),
        );
    }
    let base = crate::wire::base_url(&headers, &sim);
    json_response(
        StatusCode::OK,
        json!({
            "zoneName": "Sandbox (ww5)",
            "url": format!("{base}{ZONE_PATH}/"),
            "webUrl": format!("{base}/ww5/"),
            "ci": 5,
        }),
    )
}

async fn require_api_user(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let [code, user, secret] = ["ApiIntegrationCode", "UserName", "Secret"].map(|name| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    });
    let expected = &sim.options;
    let wrong = code.is_empty()
        || user.is_empty()
        || secret.is_empty()
        || expected
            .autotask_secret
            .as_ref()
            .is_some_and(|s| *s != secret)
        || expected
            .autotask_username
            .as_ref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(&user))
        || sim.settings.psa_credentials_rejected;
    if wrong {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if sim.settings.psa_fail {
        // An outage: the web server's own page, not Autotask's `{"errors"}` of a rejected object.
        let page = "<html><body><h2>500 - Internal server error.</h2></body></html>";
        return (StatusCode::INTERNAL_SERVER_ERROR, page).into_response();
    }
    next.run(request).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketOut<'a> {
    id: u64,
    ticket_number: String,
    title: &'a str,
    description: &'a str,
    #[serde(rename = "companyID")]
    company_id: u32,
    #[serde(rename = "queueID")]
    queue_id: Option<u64>,
    status: u64,
    priority: u64,
}

impl<'a> From<&'a Ticket> for TicketOut<'a> {
    fn from(ticket: &'a Ticket) -> Self {
        TicketOut {
            id: ticket.id,
            ticket_number: format!("T20261201.{:04}", ticket.id % 10_000),
            title: &ticket.summary,
            description: ticket.initial_description.as_deref().unwrap_or(""),
            company_id: ticket.company.id,
            queue_id: None,
            status: 1,
            priority: 2,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompanyOut<'a> {
    id: u32,
    company_name: &'a str,
    is_active: bool,
}

impl<'a> From<&'a Company> for CompanyOut<'a> {
    fn from(company: &'a Company) -> Self {
        CompanyOut {
            id: company.id,
            company_name: &company.identifier,
            is_active: true,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoteOut<'a> {
    id: u64,
    #[serde(rename = "ticketID")]
    ticket_id: u64,
    title: Option<&'a str>,
    description: &'a str,
    note_type: Option<u64>,
    publish: Option<u64>,
    create_date_time: &'a str,
}

impl<'a> From<&'a Note> for NoteOut<'a> {
    fn from(note: &'a Note) -> Self {
        NoteOut {
            id: note.id,
            ticket_id: note.ticket_id,
            title: note.title.as_deref(),
            description: &note.text,
            note_type: note.note_type,
            publish: note.publish,
            create_date_time: &note.date_created,
        }
    }
}

fn page<T: Serialize>(items: Vec<T>) -> Response {
    let count = items.len();
    json_response(
        StatusCode::OK,
        json!({
            "items": items,
            "pageDetails": {"count": count, "requestCount": 500, "prevPageUrl": null, "nextPageUrl": null},
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTicket {
    #[serde(rename = "companyID")]
    company_id: Option<u32>,
    title: Option<String>,
    description: Option<String>,
    status: Option<u64>,
    priority: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Rejected> {
    serde_json::from_slice(body).map_err(|e| Rejected(format!("The request body is invalid: {e}")))
}

async fn create_ticket(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: NewTicket = match parse(&body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let title = request.title.unwrap_or_default();
    let missing = [
        ("companyID", request.company_id.is_none()),
        ("title", title.trim().is_empty()),
        ("status", request.status.is_none()),
        ("priority", request.priority.is_none()),
    ];
    if let Some((field, _)) = missing.iter().find(|(_, missing)| *missing) {
        return rejected(format!("Missing Required Field: {field}"));
    }
    if title.chars().count() > TITLE_MAX {
        return rejected(format!(
            "title: the value exceeds the maximum length of {TITLE_MAX}."
        ));
    }
    let Some(company) = request
        .company_id
        .and_then(|id| sim.psa.companies().iter().find(|c| c.id == id))
    else {
        return rejected(
            "Reference value on field: companyID of type: Company does not exist or is invalid.",
        );
    };
    let mut state = sim.state();
    let id = state.tickets.keys().max().map_or(1, |max| max + 1);
    state.tickets.insert(
        id,
        Ticket {
            id,
            summary: title,
            board: sim.psa.own_board().clone(),
            company: company.clone(),
            initial_description: request.description,
            notes: Vec::new(),
        },
    );
    json_response(StatusCode::OK, json!({"itemId": id}))
}

fn ticket_id(text: &str) -> Result<u64, Rejected> {
    text.parse()
        .map_err(|_| Rejected(format!("'{text}' is not a valid id.")))
}

async fn get_ticket(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let id = match ticket_id(&id) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let state = sim.state();
    let item = state.tickets.get(&id).map(TicketOut::from);
    json_response(StatusCode::OK, json!({ "item": item }))
}

/// One `{"op","field","value"}` filter of a query's `search`.
#[derive(Deserialize)]
struct Filter {
    op: String,
    field: String,
    value: Value,
}

#[derive(Deserialize)]
struct Search {
    filter: Vec<Filter>,
}

fn search(query: &HashMap<String, String>) -> Result<Vec<Filter>, Rejected> {
    let text = query
        .get("search")
        .ok_or_else(|| Rejected("A search parameter is required.".into()))?;
    let search: Search = serde_json::from_str(text)
        .map_err(|e| Rejected(format!("The search parameter is invalid: {e}")))?;
    Ok(search.filter)
}

/// Whether `text` passes the filter (`eq` any case, `contains` any case).
fn passes(filter: &Filter, text: &str) -> Result<bool, Rejected> {
    let value = match &filter.value {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string(),
    };
    let text = text.to_lowercase();
    match filter.op.to_ascii_lowercase().as_str() {
        "eq" => Ok(text == value),
        "contains" => Ok(text.contains(&value)),
        op => Err(Rejected(format!("Unsupported operator '{op}'."))),
    }
}

async fn query_tickets(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filters = match search(&query) {
        Ok(filters) => filters,
        Err(rejected) => return rejected.into_response(),
    };
    let state = sim.state();
    let mut found = Vec::new();
    for ticket in state.tickets.values() {
        let mut all = true;
        for filter in &filters {
            let text = match filter.field.to_ascii_lowercase().as_str() {
                "title" => ticket.summary.clone(),
                "id" => ticket.id.to_string(),
                "companyid" => ticket.company.id.to_string(),
                field => return rejected(format!("Unknown field '{field}'.")),
            };
            match passes(filter, &text) {
                Ok(ok) => all &= ok,
                Err(rejected) => return rejected.into_response(),
            }
        }
        if all {
            found.push(TicketOut::from(ticket));
        }
    }
    page(found)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewNote {
    title: Option<String>,
    description: Option<String>,
    note_type: Option<u64>,
    publish: Option<u64>,
}

async fn create_note(State(sim): State<Arc<Sim>>, Path(id): Path<String>, body: Bytes) -> Response {
    let id = match ticket_id(&id) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let request: NewNote = match parse(&body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let title = request.title.filter(|t| !t.trim().is_empty());
    let description = request.description.unwrap_or_default();
    let missing = [
        (
            "title",
            title.is_none() && sim.settings.autotask_note_title_required,
        ),
        ("description", description.trim().is_empty()),
        ("noteType", request.note_type.is_none()),
        ("publish", request.publish.is_none()),
    ];
    if let Some((field, _)) = missing.iter().find(|(_, missing)| *missing) {
        return rejected(format!("Missing Required Field: {field}"));
    }
    let mut state = sim.state();
    let next_id = state.next_note_id();
    let Some(ticket) = state.tickets.get_mut(&id) else {
        return rejected(format!(
            "Reference value on field: ticketID of type: Ticket does not exist or is invalid ({id})."
        ));
    };
    ticket.notes.push(Note {
        id: next_id,
        ticket_id: id,
        text: description,
        date_created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        title,
        note_type: request.note_type,
        publish: request.publish,
        ..Note::default()
    });
    json_response(StatusCode::OK, json!({"itemId": next_id}))
}

async fn list_notes(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let id = match ticket_id(&id) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let state = sim.state();
    let notes: Vec<NoteOut> = state
        .tickets
        .get(&id)
        .map(|t| t.notes.iter().map(NoteOut::from).collect())
        .unwrap_or_default();
    page(notes)
}

async fn get_company(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let item = id
        .parse::<u32>()
        .ok()
        .and_then(|id| sim.psa.companies().iter().find(|c| c.id == id))
        .map(CompanyOut::from);
    json_response(StatusCode::OK, json!({ "item": item }))
}

async fn query_companies(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filters = match search(&query) {
        Ok(filters) => filters,
        Err(rejected) => return rejected.into_response(),
    };
    let mut found = Vec::new();
    for company in sim.psa.companies() {
        let mut all = true;
        for filter in &filters {
            let text = match filter.field.to_ascii_lowercase().as_str() {
                "companyname" => company.identifier.clone(),
                "id" => company.id.to_string(),
                field => return rejected(format!("Unknown field '{field}'.")),
            };
            match passes(filter, &text) {
                Ok(ok) => all &= ok,
                Err(rejected) => return rejected.into_response(),
            }
        }
        if all {
            found.push(CompanyOut::from(company));
        }
    }
    page(found)
}
