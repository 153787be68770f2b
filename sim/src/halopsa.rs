//! HaloPSA (`/halo/auth`, `/halo/api`): the client-credentials token, tickets, actions (the
//! notes) and clients, over the same tickets and companies as the other PSAs.
//!
//! Halo's awkward ways, as the real service has them: `POST Tickets` and `POST Actions` take
//! a JSON array, and one posted item is answered with the object itself (an array only for
//! several items or `?returnall=true`); an action without an outcome is refused with "An
//! Outcome must be entered for this Action".

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
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

const TOKEN: &str = "/halo/auth/token";
const TICKETS: &str = "/halo/api/Tickets";
const TICKET: &str = "/halo/api/Tickets/{id}";
const ACTIONS: &str = "/halo/api/Actions";
const CLIENTS: &str = "/halo/api/Client";
const CLIENT: &str = "/halo/api/Client/{id}";
/// Halo's answer to an action without an outcome.
pub const OUTCOME_REQUIRED: &str = "An Outcome must be entered for this Action";

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    let api = Router::new()
        .route(
            TICKETS,
            counted(sim, "halo POST tickets", post(create_tickets)),
        )
        .route(
            TICKETS,
            counted(sim, "halo GET tickets", get(search_tickets)),
        )
        .route(TICKET, counted(sim, "halo GET ticket", get(get_ticket)))
        .route(
            ACTIONS,
            counted(sim, "halo POST actions", post(create_actions)),
        )
        .route(ACTIONS, counted(sim, "halo GET actions", get(list_actions)))
        .route(
            CLIENTS,
            counted(sim, "halo GET clients", get(search_clients)),
        )
        .route(CLIENT, counted(sim, "halo GET client", get(get_client)))
        .route_layer(from_fn_with_state(sim.clone(), require_token));
    Router::new()
        .route(TOKEN, counted(sim, "halo POST token", post(token)))
        .merge(api)
}

/// Halo answers errors as a JSON string.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, Value::String(message.into()))
}

fn token_refused(description: &str) -> Response {
    let body = json!({"error": "invalid_client", "error_description": description});
    json_response(StatusCode::UNAUTHORIZED, body)
}

/// `POST /auth/token[?tenant=]`, form `grant_type=client_credentials&client_id&client_secret&scope`.
async fn token(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = crate::auth::parse_form(&body);
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    if let Some(tenant) = &sim.settings.halo_tenant {
        if query.get("tenant") != Some(tenant) {
            return token_refused("Unknown tenant: a hosted instance needs ?tenant=<its tenant>.");
        }
    }
    let client_id = field("client_id");
    let secret = field("client_secret");
    let expected = sim.options.halo_client_secret.as_deref();
    if client_id.trim().is_empty()
        || secret.is_empty()
        || expected.is_some_and(|e| e != secret)
        || sim.settings.psa_credentials_rejected
    {
        return token_refused("The client credentials are invalid.");
    }
    if field("scope").is_empty() {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_scope"}));
    }
    let token = format!("halo-{}", sim.psa_tokens.issue());
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "access_token": token, "expires_in": 3600, "scope": "all"}),
    )
}

async fn require_token(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    if !bearer_ok(&sim, request.headers()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if sim.settings.psa_fail {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred (simulated).",
        );
    }
    next.run(request).await
}

fn bearer_ok(sim: &Sim, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .is_some_and(|token| sim.psa_tokens.valid(token.trim()))
}

#[derive(Serialize)]
struct TicketOut<'a> {
    id: u64,
    summary: &'a str,
    details_html: &'a str,
    client_id: u32,
    client_name: &'a str,
    team: &'a str,
}

impl<'a> From<&'a Ticket> for TicketOut<'a> {
    fn from(ticket: &'a Ticket) -> Self {
        TicketOut {
            id: ticket.id,
            summary: &ticket.summary,
            details_html: ticket.initial_description.as_deref().unwrap_or(""),
            client_id: ticket.company.id,
            client_name: &ticket.company.identifier,
            team: &ticket.board.name,
        }
    }
}

#[derive(Serialize)]
struct ClientOut<'a> {
    id: u32,
    name: &'a str,
}

impl<'a> From<&'a Company> for ClientOut<'a> {
    fn from(company: &'a Company) -> Self {
        ClientOut {
            id: company.id,
            name: &company.identifier,
        }
    }
}

#[derive(Deserialize)]
struct NewTicket {
    summary: Option<String>,
    details_html: Option<String>,
    client_id: Option<u32>,
}

/// A refused request before it is answered (small, unlike a `Response`): 400 with the text.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0)
    }
}

/// The body as an array of items: Halo's POST routes take nothing else.
fn items<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, BadRequest> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|item| {
                serde_json::from_value(item).map_err(|e| BadRequest(format!("Invalid item: {e}")))
            })
            .collect(),
        Ok(_) => Err(BadRequest(
            "The request body must be an array of objects.".into(),
        )),
        Err(e) => Err(BadRequest(format!("Invalid JSON: {e}"))),
    }
}

/// One item answers with the object, several (or `?returnall=true`) with an array.
fn created(objects: Vec<Value>, query: &HashMap<String, String>) -> Response {
    let return_all = query
        .get("returnall")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match <[Value; 1]>::try_from(objects) {
        Ok([one]) if !return_all => json_response(StatusCode::CREATED, one),
        Ok([one]) => json_response(StatusCode::CREATED, vec![one]),
        Err(many) => json_response(StatusCode::CREATED, many),
    }
}

async fn create_tickets(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let requested: Vec<NewTicket> = match items(&body) {
        Ok(items) => items,
        Err(refused) => return refused.into_response(),
    };
    let mut state = sim.state();
    let mut answers = Vec::new();
    for item in requested {
        let summary = item.summary.unwrap_or_default();
        if summary.trim().is_empty() {
            return error(StatusCode::BAD_REQUEST, "Please enter a Summary.");
        }
        let Some(company) = item
            .client_id
            .and_then(|id| sim.psa.companies().iter().find(|c| c.id == id))
        else {
            return error(StatusCode::BAD_REQUEST, "Please select a valid Client.");
        };
        let id = state.tickets.keys().max().map_or(1, |max| max + 1);
        let ticket = Ticket {
            id,
            summary,
            board: sim.psa.own_board().clone(),
            company: company.clone(),
            initial_description: item.details_html,
            notes: Vec::new(),
        };
        answers.push(json!(TicketOut::from(&ticket)));
        state.tickets.insert(id, ticket);
    }
    created(answers, &query)
}

fn ticket_id(text: &str) -> Result<u64, BadRequest> {
    text.parse()
        .map_err(|_| BadRequest(format!("'{text}' is not a ticket id.")))
}

async fn get_ticket(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let id = match ticket_id(&id) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let state = sim.state();
    match state.tickets.get(&id) {
        Some(ticket) => json_response(StatusCode::OK, TicketOut::from(ticket)),
        None => error(StatusCode::NOT_FOUND, format!("Ticket {id} not found.")),
    }
}

/// `GET Tickets?search=`: tickets whose summary or details contain the text (any case).
async fn search_tickets(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let search = query.get("search").map(|s| s.to_lowercase());
    let state = sim.state();
    let found: Vec<TicketOut> = state
        .tickets
        .values()
        .filter(|t| {
            search.as_deref().is_none_or(|s| {
                t.summary.to_lowercase().contains(s)
                    || t.initial_description
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(s))
            })
        })
        .map(TicketOut::from)
        .collect();
    json_response(
        StatusCode::OK,
        json!({"record_count": found.len(), "tickets": found}),
    )
}

#[derive(Deserialize)]
struct NewAction {
    ticket_id: Option<u64>,
    outcome_id: Option<u64>,
    note_html: Option<String>,
    #[serde(default)]
    hiddenfromuser: bool,
}

#[derive(Serialize)]
struct ActionOut<'a> {
    id: u64,
    ticket_id: u64,
    outcome_id: Option<u64>,
    note_html: &'a str,
    hiddenfromuser: bool,
    datetime: &'a str,
}

impl<'a> From<&'a Note> for ActionOut<'a> {
    fn from(note: &'a Note) -> Self {
        ActionOut {
            id: note.id,
            ticket_id: note.ticket_id,
            outcome_id: note.outcome_id,
            note_html: &note.text,
            hiddenfromuser: note.hidden_from_user.unwrap_or(false),
            datetime: &note.date_created,
        }
    }
}

async fn create_actions(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let requested: Vec<NewAction> = match items(&body) {
        Ok(items) => items,
        Err(refused) => return refused.into_response(),
    };
    let mut state = sim.state();
    let mut answers = Vec::new();
    for action in requested {
        if action.outcome_id.unwrap_or(0) == 0 {
            return error(StatusCode::BAD_REQUEST, OUTCOME_REQUIRED);
        }
        let next_id = state.next_note_id();
        let Some(ticket) = action.ticket_id.and_then(|id| state.tickets.get_mut(&id)) else {
            return error(StatusCode::BAD_REQUEST, "Please select a valid Ticket.");
        };
        let note = Note {
            id: next_id,
            ticket_id: ticket.id,
            text: action.note_html.unwrap_or_default(),
            detail_description_flag: false,
            internal_analysis_flag: action.hiddenfromuser,
            resolution_flag: false,
            date_created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            outcome_id: action.outcome_id,
            hidden_from_user: Some(action.hiddenfromuser),
            ..Note::default()
        };
        answers.push(json!(ActionOut::from(&note)));
        ticket.notes.push(note);
    }
    created(answers, &query)
}

/// `GET Actions?ticket_id=`.
async fn list_actions(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = query.get("ticket_id").and_then(|t| t.parse::<u64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "ticket_id is required.");
    };
    let state = sim.state();
    let actions: Vec<ActionOut> = state
        .tickets
        .get(&id)
        .map(|t| t.notes.iter().map(ActionOut::from).collect())
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        json!({"record_count": actions.len(), "actions": actions}),
    )
}

async fn get_client(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let found = id
        .parse::<u32>()
        .ok()
        .and_then(|id| sim.psa.companies().iter().find(|c| c.id == id));
    match found {
        Some(company) => json_response(StatusCode::OK, ClientOut::from(company)),
        None => error(StatusCode::NOT_FOUND, format!("Client {id} not found.")),
    }
}

/// `GET Client?search=`: clients whose name contains the text (any case).
async fn search_clients(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let search = query.get("search").map(|s| s.to_lowercase());
    let found: Vec<ClientOut> = sim
        .psa
        .companies()
        .iter()
        .filter(|c| {
            search
                .as_deref()
                .is_none_or(|s| c.identifier.to_lowercase().contains(s))
        })
        .map(ClientOut::from)
        .collect();
    json_response(
        StatusCode::OK,
        json!({"record_count": found.len(), "clients": found}),
    )
}
