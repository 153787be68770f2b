//! Graph's calendars and their permissions: `GET /users/{id}/calendars`, and
//! `calendarPermissions` of the default calendar (`/calendar/…`) and of each calendar
//! (`/calendars/{id}/…`).
//!
//! A secondary calendar is a folder under the default calendar; its permissions are the
//! folder's entries that `Get-MailboxFolderPermission` shows, so both APIs see one state.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::directory::Person;
use crate::faults::{guarded, Key};
use crate::folder_cmdlets::{entries, write_entries};
use crate::folders::Folder;
use crate::graph::{
    access_denied, ensure_writable, mailbox_user, parse_body, respond, GraphError, GraphResult,
};
use crate::state::{CalendarGrant, FolderGrant};
use crate::wire::json_response;
use crate::Sim;

const CALENDARS: &str = "/v1.0/users/{user}/calendars";
const DEFAULT_PERMISSIONS: &str = "/v1.0/users/{user}/calendar/calendarPermissions";
const DEFAULT_PERMISSION: &str = "/v1.0/users/{user}/calendar/calendarPermissions/{id}";
const PERMISSIONS: &str = "/v1.0/users/{user}/calendars/{calendar}/calendarPermissions";
const PERMISSION: &str = "/v1.0/users/{user}/calendars/{calendar}/calendarPermissions/{id}";

pub(crate) fn routes(sim: &Arc<Sim>, router: Router<Arc<Sim>>) -> Router<Arc<Sim>> {
    let key = Key::Fixed;
    let list = || key("graph GET calendarPermissions");
    let create = || key("graph POST calendarPermissions");
    let remove = || key("graph DELETE calendarPermissions");
    router
        .route(
            CALENDARS,
            guarded(sim, key("graph GET calendars"), get(list_calendars)),
        )
        .route(DEFAULT_PERMISSIONS, guarded(sim, list(), get(list_default)))
        .route(
            DEFAULT_PERMISSIONS,
            guarded(sim, create(), post(create_default)),
        )
        .route(
            DEFAULT_PERMISSION,
            guarded(sim, remove(), delete(delete_default)),
        )
        .route(PERMISSIONS, guarded(sim, list(), get(list_of)))
        .route(PERMISSIONS, guarded(sim, create(), post(create_of)))
        .route(PERMISSION, guarded(sim, remove(), delete(delete_of)))
}

// ---- calendars ------------------------------------------------------------------

/// A calendar's Graph id: stable per folder.
fn calendar_id(folder: &Folder) -> String {
    format!("AAMkAD{}", folder.id)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Calendar<'a> {
    id: String,
    name: &'a str,
    color: &'static str,
    is_default_calendar: bool,
    can_share: bool,
    can_view_private_items: bool,
    can_edit: bool,
    owner: EmailAddress,
}

async fn list_calendars(State(sim): State<Arc<Sim>>, Path(key): Path<String>) -> Response {
    respond(mailbox_user(&sim, &key).and_then(|mailbox| {
        if sim.unreadable(&mailbox.upn) {
            return Err(access_denied());
        }
        let value: Vec<Calendar> = mailbox
            .folders
            .iter()
            .filter(|f| f.calendar)
            .map(|f| Calendar {
                id: calendar_id(f),
                name: f.name(mailbox.root_folder_name),
                color: "auto",
                is_default_calendar: f.is_default_calendar(),
                can_share: true,
                can_view_private_items: true,
                can_edit: true,
                owner: EmailAddress {
                    name: Some(mailbox.display_name.clone()),
                    address: Some(mailbox.mail.clone()),
                },
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            serde_json::json!({ "value": value }),
        ))
    }))
}

/// The calendar a route names: the default one, or one of `/calendars`.
fn calendar<'a>(mailbox: &'a Person, id: Option<&str>) -> Result<&'a Folder, GraphError> {
    mailbox
        .folders
        .iter()
        .find(|f| match id {
            None => f.is_default_calendar(),
            Some(id) => f.calendar && calendar_id(f) == id,
        })
        .ok_or_else(not_found)
}

fn not_found() -> GraphError {
    let message = "The specified object was not found in the store.".to_string();
    GraphError(StatusCode::NOT_FOUND, "ErrorItemNotFound", message)
}

// ---- calendar permissions ----------------------------------------------------------

/// Roles a simulated calendar permission may take (the Default entry excludes delegates).
const ALLOWED_ROLES: &[&str] = &[
    "none",
    "freeBusyRead",
    "limitedRead",
    "read",
    "write",
    "delegateWithoutPrivateEventAccess",
    "delegateWithPrivateEventAccess",
];
const DEFAULT_ALLOWED_ROLES: &[&str] = &["none", "freeBusyRead", "limitedRead", "read", "write"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CalendarPermission {
    id: String,
    role: &'static str,
    is_removable: bool,
    is_inside_organization: bool,
    allowed_roles: &'static [&'static str],
    email_address: EmailAddress,
}

/// `emailAddress` of a permission or a mail recipient.
#[derive(Serialize, Deserialize)]
pub(crate) struct EmailAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Graph role of an Exchange calendar entry.
fn graph_role(grant: &CalendarGrant) -> &'static str {
    match grant.access_rights.to_ascii_lowercase().as_str() {
        "editor" if grant.delegate && grant.can_view_private_items => {
            "delegateWithPrivateEventAccess"
        }
        "editor" if grant.delegate => "delegateWithoutPrivateEventAccess",
        "editor" => "write",
        "reviewer" => "read",
        "limiteddetails" => "limitedRead",
        "availabilityonly" => "freeBusyRead",
        "none" => "none",
        _ => "custom",
    }
}

/// The Exchange entry (rights and sharing flags) of a Graph role that can be set.
fn exchange_entry(role: &str) -> Option<(&'static str, &'static [&'static str])> {
    match role {
        "delegateWithPrivateEventAccess" => Some(("Editor", &["Delegate", "CanViewPrivateItems"])),
        "delegateWithoutPrivateEventAccess" => Some(("Editor", &["Delegate"])),
        "write" => Some(("Editor", &[])),
        "read" => Some(("Reviewer", &[])),
        "limitedRead" => Some(("LimitedDetails", &[])),
        "freeBusyRead" => Some(("AvailabilityOnly", &[])),
        _ => None,
    }
}

/// Deterministic permission id: base64 (URL-safe alphabet) of the address.
fn permission_id(address: &str) -> String {
    URL_SAFE.encode(address.to_lowercase())
}

fn default_permission() -> CalendarPermission {
    CalendarPermission {
        id: "RGVmYXVsdA==".to_string(),
        role: "freeBusyRead",
        is_removable: false,
        is_inside_organization: true,
        allowed_roles: DEFAULT_ALLOWED_ROLES,
        email_address: EmailAddress {
            name: Some("My Organization".to_string()),
            address: None,
        },
    }
}

fn permission(sim: &Sim, entry: FolderGrant) -> CalendarPermission {
    let grant = CalendarGrant::from(entry);
    let holder = sim.directory.by_key(&grant.user);
    let address = holder.map_or(grant.user.as_str(), |p| p.mail());
    let name = holder.map_or(grant.user.as_str(), |p| p.display_name());
    CalendarPermission {
        id: permission_id(address),
        role: graph_role(&grant),
        is_removable: true,
        is_inside_organization: holder.is_some(),
        allowed_roles: ALLOWED_ROLES,
        email_address: EmailAddress {
            name: Some(name.to_string()),
            address: Some(address.to_string()),
        },
    }
}

async fn list_default(State(sim): State<Arc<Sim>>, Path(key): Path<String>) -> Response {
    respond(list_permissions(&sim, &key, None))
}

async fn list_of(
    State(sim): State<Arc<Sim>>,
    Path((key, calendar)): Path<(String, String)>,
) -> Response {
    respond(list_permissions(&sim, &key, Some(&calendar)))
}

fn list_permissions(sim: &Sim, key: &str, calendar_id: Option<&str>) -> GraphResult {
    let mailbox = mailbox_user(sim, key)?;
    if sim.unreadable(&mailbox.upn) {
        return Err(access_denied());
    }
    let folder = calendar(mailbox, calendar_id)?;
    let value: Vec<CalendarPermission> = std::iter::once(default_permission())
        .chain(
            entries(sim, mailbox, folder)
                .into_iter()
                .map(|e| permission(sim, e)),
        )
        .collect();
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({ "value": value }),
    ))
}

async fn delete_default(
    State(sim): State<Arc<Sim>>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    respond(delete_permission(&sim, &key, None, &id))
}

async fn delete_of(
    State(sim): State<Arc<Sim>>,
    Path((key, calendar, id)): Path<(String, String, String)>,
) -> Response {
    respond(delete_permission(&sim, &key, Some(&calendar), &id))
}

fn delete_permission(sim: &Sim, key: &str, calendar_id: Option<&str>, id: &str) -> GraphResult {
    let mailbox = mailbox_user(sim, key)?;
    let folder = calendar(mailbox, calendar_id)?;
    ensure_writable(sim, mailbox)?;
    if id == default_permission().id {
        return Err(GraphError::bad_request(
            "The default permission can't be removed.",
        ));
    }
    let ignored = sim.ignores_removals(&mailbox.upn);
    let found = write_entries(sim, mailbox, folder, |entries| {
        let position = entries
            .iter()
            .position(|e| permission(sim, e.clone()).id == id);
        if let (Some(position), false) = (position, ignored) {
            entries.remove(position);
        }
        position.is_some()
    });
    if !found {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewCalendarPermission {
    email_address: Option<EmailAddress>,
    role: Option<String>,
}

async fn create_default(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    respond(create_permission(&sim, &key, None, &body))
}

async fn create_of(
    State(sim): State<Arc<Sim>>,
    Path((key, calendar)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(create_permission(&sim, &key, Some(&calendar), &body))
}

fn create_permission(sim: &Sim, key: &str, calendar_id: Option<&str>, body: &[u8]) -> GraphResult {
    let mailbox = mailbox_user(sim, key)?;
    let folder = calendar(mailbox, calendar_id)?;
    ensure_writable(sim, mailbox)?;
    let request: NewCalendarPermission = parse_body(body)?;
    let address = request
        .email_address
        .and_then(|e| e.address)
        .filter(|a| !a.trim().is_empty());
    let address =
        address.ok_or_else(|| GraphError::bad_request("emailAddress.address is required."))?;
    let role = request
        .role
        .ok_or_else(|| GraphError::bad_request("role is required."))?;
    let (access_rights, flags) = exchange_entry(&role)
        .ok_or_else(|| GraphError::bad_request(format!("The role '{role}' can't be assigned.")))?;
    let user = sim
        .directory
        .by_address(address.trim())
        .map_or_else(|| address.trim().to_lowercase(), |p| p.key().to_string());
    let entry = FolderGrant {
        user,
        access_rights: vec![access_rights.to_string()],
        sharing_permission_flags: flags.iter().map(|f| f.to_string()).collect(),
    };
    write_entries(sim, mailbox, folder, |entries| {
        entries.retain(|e| e.user != entry.user);
        entries.push(entry.clone());
    });
    Ok(json_response(StatusCode::CREATED, permission(sim, entry)))
}
