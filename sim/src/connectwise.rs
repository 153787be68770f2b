//! ConnectWise Manage (`/v4_6_release/apis/3.0`): tickets, ticket notes and the company
//! lookup.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::counted;
use crate::fixture::Fixture;
use crate::state::{Board, Company, Note, Ticket};
use crate::wire::json_response;
use crate::Sim;

const TICKETS: &str = "/v4_6_release/apis/3.0/service/tickets";
const TICKET: &str = "/v4_6_release/apis/3.0/service/tickets/{id}";
const NOTES: &str = "/v4_6_release/apis/3.0/service/tickets/{id}/notes";
const COMPANIES: &str = "/v4_6_release/apis/3.0/company/companies";
const MAX_SUMMARY: usize = 100;

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    Router::new()
        .route(
            TICKETS,
            counted(sim, "cw POST tickets", post(create_ticket)),
        )
        .route(TICKETS, counted(sim, "cw GET tickets", get(search_tickets)))
        .route(TICKET, counted(sim, "cw GET ticket", get(get_ticket)))
        .route(NOTES, counted(sim, "cw POST notes", post(create_note)))
        .route(NOTES, counted(sim, "cw GET notes", get(list_notes)))
        .route(
            COMPANIES,
            counted(sim, "cw GET companies", get(search_companies)),
        )
        .route_layer(from_fn_with_state(sim.clone(), require_member))
}

/// Boards and companies the PSA knows: the organization's board and company
/// first, then any other named by fixture tickets.
pub(crate) struct Catalog {
    boards: Vec<Board>,
    companies: Vec<Company>,
    own_company_id: String,
}

impl Catalog {
    pub fn new(fixture: &Fixture) -> Catalog {
        let org = &fixture.organization;
        let mut boards = vec![org.m365_permission_ticket_board.clone()];
        let mut companies = vec![(org.psa_company().to_string(), org.company_name.clone())];
        for ticket in &fixture.psa_tickets {
            if let Some(board) = ticket.board.as_ref().filter(|b| !boards.contains(b)) {
                boards.push(board.clone());
            }
            let known = ticket.company_id == org.company_id
                || companies.iter().any(|(id, _)| *id == ticket.company_id);
            if !known {
                companies.push((ticket.company_id.clone(), ticket.company_id.clone()));
            }
        }
        Catalog {
            boards: (1..)
                .zip(boards)
                .map(|(id, name)| Board { id, name })
                .collect(),
            companies: (250..)
                .zip(companies)
                .map(|(id, (identifier, name))| Company {
                    id,
                    identifier,
                    name,
                })
                .collect(),
            own_company_id: org.company_id.clone(),
        }
    }

    /// The fixture's tickets (ids validated numeric by the fixture loader).
    pub fn initial_tickets(&self, fixture: &Fixture) -> BTreeMap<u64, Ticket> {
        fixture
            .psa_tickets
            .iter()
            .filter_map(|t| {
                let id = t.id.parse().ok()?;
                let board = t
                    .board
                    .as_deref()
                    .and_then(|b| self.board(&Reference::named(b)));
                let company = if t.company_id == self.own_company_id {
                    self.companies.first()
                } else {
                    self.company(&Reference::identifier(&t.company_id))
                };
                let ticket = Ticket {
                    id,
                    summary: t.summary.clone(),
                    board: board.or(self.boards.first())?.clone(),
                    company: company?.clone(),
                    initial_description: None,
                    notes: Vec::new(),
                };
                Some((id, ticket))
            })
            .collect()
    }

    /// Every company the PSA knows, the organization's first (ids from 250).
    pub fn companies(&self) -> &[Company] {
        &self.companies
    }

    /// The organization's board, where new tickets of the other PSAs go.
    pub fn own_board(&self) -> &Board {
        &self.boards[0]
    }

    fn board(&self, reference: &Reference) -> Option<&Board> {
        self.boards
            .iter()
            .find(|b| match (reference.id, &reference.name) {
                (Some(id), _) => b.id == id,
                (None, Some(name)) => b.name.eq_ignore_ascii_case(name),
                (None, None) => false,
            })
    }

    fn company(&self, reference: &Reference) -> Option<&Company> {
        self.companies
            .iter()
            .find(|c| match (reference.id, &reference.identifier) {
                (Some(id), _) => c.id == id,
                (None, Some(identifier)) => c.identifier.eq_ignore_ascii_case(identifier),
                (None, None) => false,
            })
    }
}

/// A ConnectWise error answer: `{"code","message"}` (plus `errors` for invalid objects).
enum CwError {
    Plain(StatusCode, &'static str, String),
    InvalidObject(&'static str, Vec<FieldError>),
}

impl CwError {
    fn bad_request(message: String) -> CwError {
        CwError::Plain(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    fn ticket_not_found(id: u64) -> CwError {
        CwError::Plain(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("Ticket with id {id} not found"),
        )
    }
}

impl IntoResponse for CwError {
    fn into_response(self) -> Response {
        match self {
            CwError::Plain(status, code, message) => {
                json_response(status, json!({"code": code, "message": message}))
            }
            CwError::InvalidObject(resource, errors) => {
                let message = format!("{resource} object is invalid");
                let body = json!({"code": "InvalidObject", "message": message, "errors": errors});
                json_response(StatusCode::BAD_REQUEST, body)
            }
        }
    }
}

#[derive(Serialize)]
struct FieldError {
    code: &'static str,
    message: String,
    resource: &'static str,
    field: &'static str,
}

async fn require_member(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    if let Err(message) = check_credentials(&sim, request.headers()) {
        return CwError::Plain(StatusCode::UNAUTHORIZED, "Unauthorized", message.into())
            .into_response();
    }
    if sim.settings.psa_credentials_rejected {
        let message = "Invalid credentials (the API member's keys were rejected).";
        return CwError::Plain(StatusCode::UNAUTHORIZED, "Unauthorized", message.into())
            .into_response();
    }
    if sim.settings.psa_fail {
        let message = "An unexpected error occurred (simulated).".to_string();
        return CwError::Plain(StatusCode::INTERNAL_SERVER_ERROR, "Unexpected", message)
            .into_response();
    }
    next.run(request).await
}

/// `Authorization: Basic base64("{company}+{publicKey}:{privateKey}")` and a `clientId`.
fn check_credentials(sim: &Sim, headers: &HeaderMap) -> Result<(), &'static str> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .ok_or("Basic authorization with company+publicKey:privateKey is required.")?;
    let (login, private_key) = credentials
        .split_once(':')
        .ok_or("Credentials must be company+publicKey:privateKey.")?;
    let (company, public_key) = login
        .split_once('+')
        .ok_or("Credentials must be company+publicKey:privateKey.")?;
    if company.is_empty() || public_key.is_empty() || private_key.is_empty() {
        return Err("Credentials must be company+publicKey:privateKey.");
    }
    if sim
        .options
        .cw_private_key
        .as_deref()
        .is_some_and(|expected| expected != private_key)
    {
        return Err("Invalid credentials.");
    }
    let client_id = headers
        .get("clientId")
        .and_then(|h| h.to_str().ok())
        .map(str::trim);
    if client_id.unwrap_or_default().is_empty() {
        return Err("A clientId header is required.");
    }
    Ok(())
}

/// A `{"id"}` / `{"name"}` / `{"identifier"}` reference to a board or company.
#[derive(Deserialize, Default)]
struct Reference {
    id: Option<u32>,
    name: Option<String>,
    identifier: Option<String>,
}

impl Reference {
    fn named(name: &str) -> Reference {
        Reference {
            name: Some(name.to_string()),
            ..Reference::default()
        }
    }
    fn identifier(identifier: &str) -> Reference {
        Reference {
            identifier: Some(identifier.to_string()),
            ..Reference::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTicket {
    summary: Option<String>,
    board: Option<Reference>,
    company: Option<Reference>,
    initial_description: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketOut<'a> {
    id: u64,
    summary: &'a str,
    board: &'a Board,
    company: &'a Company,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_description: Option<&'a str>,
}

#[derive(Serialize)]
struct Status {
    id: u32,
    name: &'static str,
}

impl<'a> From<&'a Ticket> for TicketOut<'a> {
    fn from(ticket: &'a Ticket) -> Self {
        TicketOut {
            id: ticket.id,
            summary: &ticket.summary,
            board: &ticket.board,
            company: &ticket.company,
            status: Status { id: 1, name: "New" },
            initial_description: ticket.initial_description.as_deref(),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CwError> {
    serde_json::from_slice(body)
        .map_err(|e| CwError::bad_request(format!("The request body is invalid: {e}")))
}

fn ticket_id(text: &str) -> Result<u64, CwError> {
    text.parse()
        .map_err(|_| CwError::bad_request(format!("'{text}' is not a valid ticket id.")))
}

type CwResult = Result<Response, CwError>;

async fn create_ticket(State(sim): State<Arc<Sim>>, body: Bytes) -> CwResult {
    let request: NewTicket = parse(&body)?;
    let mut errors = Vec::new();
    let mut error = |code, field, message: String| {
        errors.push(FieldError {
            code,
            message,
            resource: "ticket",
            field,
        })
    };
    let summary = request.summary.unwrap_or_default();
    if summary.trim().is_empty() {
        error(
            "MissingRequiredField",
            "summary",
            "summary is required".into(),
        );
    } else if summary.chars().count() > MAX_SUMMARY {
        let message =
            format!("The field summary must be a string with a maximum length of {MAX_SUMMARY}.");
        error("InvalidField", "summary", message);
    }
    let board = match &request.board {
        Some(reference) => sim.psa.board(reference),
        None => sim.psa.boards.first(),
    };
    if board.is_none() {
        error("InvalidField", "board", "Board not found".into());
    }
    let company = request
        .company
        .as_ref()
        .and_then(|reference| sim.psa.company(reference));
    if company.is_none() {
        error("InvalidField", "company", "Company not found".into());
    }
    let (Some(board), Some(company), true) = (board, company, errors.is_empty()) else {
        return Err(CwError::InvalidObject("ticket", errors));
    };
    let mut state = sim.state();
    let id = state.tickets.keys().max().map_or(1, |max| max + 1);
    let ticket = Ticket {
        id,
        summary,
        board: board.clone(),
        company: company.clone(),
        initial_description: request.initial_description,
        notes: Vec::new(),
    };
    let response = json_response(StatusCode::CREATED, TicketOut::from(&ticket));
    state.tickets.insert(id, ticket);
    Ok(response)
}

async fn get_ticket(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> CwResult {
    let id = ticket_id(&id)?;
    let state = sim.state();
    let ticket = state
        .tickets
        .get(&id)
        .ok_or(CwError::ticket_not_found(id))?;
    Ok(json_response(StatusCode::OK, TicketOut::from(ticket)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewNote {
    text: Option<String>,
    #[serde(default)]
    detail_description_flag: bool,
    #[serde(default)]
    internal_analysis_flag: bool,
    #[serde(default)]
    resolution_flag: bool,
}

async fn create_note(State(sim): State<Arc<Sim>>, Path(id): Path<String>, body: Bytes) -> CwResult {
    let id = ticket_id(&id)?;
    let request: NewNote = parse(&body)?;
    let mut state = sim.state();
    let next_note_id = state.next_note_id();
    let ticket = state
        .tickets
        .get_mut(&id)
        .ok_or(CwError::ticket_not_found(id))?;
    let mut errors = Vec::new();
    let text = request.text.unwrap_or_default();
    if text.trim().is_empty() {
        let message = "text is required".to_string();
        errors.push(FieldError {
            code: "MissingRequiredField",
            message,
            resource: "ticketNote",
            field: "text",
        });
    }
    if !(request.detail_description_flag
        || request.internal_analysis_flag
        || request.resolution_flag)
    {
        let message =
            "At least one of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true".to_string();
        errors.push(FieldError {
            code: "InvalidField",
            message,
            resource: "ticketNote",
            field: "detailDescriptionFlag",
        });
    }
    if !errors.is_empty() {
        return Err(CwError::InvalidObject("ticketNote", errors));
    }
    let note = Note {
        id: next_note_id,
        ticket_id: id,
        text,
        detail_description_flag: request.detail_description_flag,
        internal_analysis_flag: request.internal_analysis_flag,
        resolution_flag: request.resolution_flag,
        date_created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ..Note::default()
    };
    ticket.notes.push(note.clone());
    Ok(json_response(StatusCode::CREATED, note))
}

async fn list_notes(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> CwResult {
    let id = ticket_id(&id)?;
    let state = sim.state();
    let ticket = state
        .tickets
        .get(&id)
        .ok_or(CwError::ticket_not_found(id))?;
    Ok(json_response(StatusCode::OK, &ticket.notes))
}

/// `GET service/tickets?conditions=...`: the conditions the simulator understands are
/// `summary like "<pattern>"` (`%` and `*` match any text, case-insensitive) and `id = <n>`,
/// joined by `and`. Anything else is ConnectWise's 400 for an invalid condition.
async fn search_tickets(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> CwResult {
    let conditions = query.get("conditions").map(String::as_str).unwrap_or("");
    let mut tests: Vec<TicketTest> = Vec::new();
    for condition in conditions
        .split(" and ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        tests.push(parse_condition(condition)?);
    }
    let state = sim.state();
    let found: Vec<TicketOut> = state
        .tickets
        .values()
        .filter(|t| tests.iter().all(|test| test(t)))
        .map(TicketOut::from)
        .collect();
    Ok(json_response(StatusCode::OK, found))
}

/// One condition of a ticket search.
type TicketTest = Box<dyn Fn(&Ticket) -> bool>;

fn parse_condition(condition: &str) -> Result<TicketTest, CwError> {
    let invalid = || CwError::bad_request(format!("The condition '{condition}' is not valid."));
    let quoted = |value: &str| -> Option<String> {
        let v = value.trim();
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map(str::to_string)
    };
    let lower = condition.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("summary like ") {
        let offset = condition.len() - rest.len();
        let pattern = quoted(&condition[offset..]).ok_or_else(invalid)?;
        let parts: Vec<String> = pattern.split(['%', '*']).map(str::to_lowercase).collect();
        return Ok(Box::new(move |t: &Ticket| {
            like(&t.summary.to_lowercase(), &parts)
        }));
    }
    if let Some(rest) = lower.strip_prefix("id = ") {
        let id: u64 = rest.trim().parse().map_err(|_| invalid())?;
        return Ok(Box::new(move |t: &Ticket| t.id == id));
    }
    Err(invalid())
}

/// `GET company/companies?conditions=...`: `identifier = "<id>"` (case-insensitive) or
/// `id = <n>`, optionally joined by `and`; no conditions lists every company. Anything else
/// is ConnectWise's 400 for an invalid condition.
async fn search_companies(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> CwResult {
    let conditions = query.get("conditions").map(String::as_str).unwrap_or("");
    let mut tests: Vec<CompanyTest> = Vec::new();
    for condition in conditions
        .split(" and ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        tests.push(parse_company_condition(condition)?);
    }
    let found: Vec<&Company> = sim
        .psa
        .companies
        .iter()
        .filter(|c| tests.iter().all(|test| test(c)))
        .collect();
    Ok(json_response(StatusCode::OK, found))
}

/// One condition of a company search.
type CompanyTest = Box<dyn Fn(&Company) -> bool>;

fn parse_company_condition(condition: &str) -> Result<CompanyTest, CwError> {
    let invalid = || CwError::bad_request(format!("The condition '{condition}' is not valid."));
    let (field, value) = condition.split_once('=').ok_or_else(invalid)?;
    let value = value.trim();
    match field.trim().to_ascii_lowercase().as_str() {
        "identifier" => {
            let identifier = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(invalid)?
                .to_string();
            Ok(Box::new(move |c: &Company| {
                c.identifier.eq_ignore_ascii_case(&identifier)
            }))
        }
        "id" => {
            let id: u32 = value.parse().map_err(|_| invalid())?;
            Ok(Box::new(move |c: &Company| c.id == id))
        }
        _ => Err(invalid()),
    }
}

/// SQL `LIKE` with `%` wildcards, the pattern already split at them.
fn like(text: &str, parts: &[String]) -> bool {
    match parts {
        [] => true,
        [only] => text == only,
        [first, middle @ .., last] => {
            if text.len() < first.len() + last.len()
                || !text.starts_with(first.as_str())
                || !text.ends_with(last.as_str())
            {
                return false;
            }
            let mut rest = &text[first.len()..text.len() - last.len()];
            for part in middle {
                match rest.find(part.as_str()) {
                    Some(i) => rest = &rest[i + part.len()..],
                    None => return false,
                }
            }
            true
        }
    }
}
