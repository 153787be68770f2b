//! Exchange Online admin API: `POST /adminapi/beta/{tenant}/InvokeCommand`
//! (envelope, paging, warnings, errors) and `$batch`. The cmdlets themselves
//! live in `cmdlets.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{protect, Audience};
use crate::batch;
use crate::cmdlets::{self, Window};
use crate::faults::{counted, guarded, Key};
use crate::fixture::fnv1a;
use crate::wire::{base_url, json_response, link, select, skip_offset};
use crate::Sim;

const MAX_BATCH: usize = 10;
/// The server named in "couldn't be found on '...'" messages.
const SERVER: &str = "NAMPR01DC001.NAMPR01A001.PROD.OUTLOOK.COM";

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    let router = Router::new()
        .route(
            "/adminapi/beta/{tenant}/InvokeCommand",
            guarded(sim, Key::Cmdlet, post(invoke)),
        )
        .route(
            "/adminapi/beta/{tenant}/$batch",
            counted(sim, "exo POST $batch", post(exo_batch)),
        );
    protect(router, sim, Audience::Exchange)
}

#[derive(Deserialize)]
struct InvokeBody {
    #[serde(rename = "CmdletInput")]
    cmdlet_input: CmdletInput,
}

#[derive(Deserialize)]
pub(crate) struct CmdletInput {
    #[serde(rename = "CmdletName")]
    pub name: String,
    #[serde(rename = "Parameters", default)]
    pub parameters: Map<String, Value>,
}

/// The cmdlet name of an InvokeCommand body (for request counters) and its
/// `Identity` parameter, if it is a string.
pub(crate) fn cmdlet_label(body: &[u8]) -> (String, Option<String>) {
    match serde_json::from_slice::<InvokeBody>(body) {
        Ok(body) => {
            let input = body.cmdlet_input;
            let identity = input
                .parameters
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Identity"))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string);
            let name = cmdlets::canonical_name(&input.name).map_or(input.name, str::to_string);
            (name, identity)
        }
        Err(_) => ("InvokeCommand".to_string(), None),
    }
}

/// Exception types the simulator answers with.
pub(crate) mod exception {
    pub const NOT_FOUND: &str =
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException";
    pub const AMBIGUOUS: &str =
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException";
    pub const ACCESS_DENIED: &str =
        "Microsoft.Exchange.Configuration.Tasks.TaskAccessDeniedException";
    pub const STORAGE_PERMANENT: &str = "Microsoft.Exchange.Data.StoragePermanentException";
    pub const STORAGE_TRANSIENT: &str = "Microsoft.Exchange.Data.StorageTransientException";
    pub const BINDING: &str = "System.Management.Automation.ParameterBindingException";
    pub const COMMAND_NOT_FOUND: &str = "System.Management.Automation.CommandNotFoundException";
    pub const ODATA: &str = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException";
    pub const NO_PERMISSION_ENTRY: &str =
        "Microsoft.Exchange.Management.StoreTasks.UserNotFoundInPermissionEntryException";
    pub const PERMISSION_ENTRY_EXISTS: &str =
        "Microsoft.Exchange.Management.StoreTasks.UserAlreadyExistsInPermissionEntryException";
    pub const FOLDER_REFUSES: &str =
        "Microsoft.Exchange.Management.StoreTasks.CannotChangePermissionsOnFolderException";
    pub const SPECIAL_USER: &str =
        "Microsoft.Exchange.Management.StoreTasks.CannotRemoveSpecialUserException";
}

/// An Exchange error answer:
/// `{"error":{"code","message","details":[{"message":"<code>|<type>|<text>"}],"innererror":{..}}}`.
/// Cmdlet failures (object not found, ambiguous, access denied) are HTTP 500;
/// parameter binding, unknown cmdlets and malformed requests are HTTP 400.
#[derive(Debug)]
pub(crate) struct ExoError {
    status: StatusCode,
    exception: &'static str,
    message: String,
    /// The top-level `message`: "Error executing cmdlet" or "Error executing request".
    outer: &'static str,
}

impl ExoError {
    fn cmdlet(status: StatusCode, exception: &'static str, message: impl Into<String>) -> ExoError {
        ExoError {
            status,
            exception,
            message: message.into(),
            outer: "Error executing cmdlet",
        }
    }

    /// A request the admin API rejects before any cmdlet runs (HTTP 400, or
    /// 401 for another tenant).
    pub fn request(status: StatusCode, message: impl Into<String>) -> ExoError {
        ExoError {
            status,
            exception: exception::ODATA,
            message: message.into(),
            outer: "Error executing request",
        }
    }

    pub fn not_found(identity: &str) -> ExoError {
        let message =
            format!("The operation couldn't be performed because object '{identity}' couldn't be found on '{SERVER}'.");
        ExoError::cmdlet(
            StatusCode::INTERNAL_SERVER_ERROR,
            exception::NOT_FOUND,
            message,
        )
    }

    pub fn ambiguous(identity: &str) -> ExoError {
        let message = format!(
            "The operation couldn't be performed because '{identity}' matches multiple entries."
        );
        ExoError::cmdlet(
            StatusCode::INTERNAL_SERVER_ERROR,
            exception::AMBIGUOUS,
            message,
        )
    }

    /// A write on a `sim.fail_mailboxes` mailbox.
    pub fn access_denied(upn: &str) -> ExoError {
        let message = format!("Access to mailbox '{upn}' is denied.");
        ExoError::cmdlet(
            StatusCode::INTERNAL_SERVER_ERROR,
            exception::ACCESS_DENIED,
            message,
        )
    }

    /// A permission read of a `sim.unreadable_mailboxes` mailbox.
    pub fn unreadable(upn: &str) -> ExoError {
        let message = format!("Access to mailbox '{upn}' is denied.");
        ExoError::cmdlet(
            StatusCode::INTERNAL_SERVER_ERROR,
            exception::STORAGE_PERMANENT,
            message,
        )
    }

    /// A scripted `transient_500`: the mailbox store did not answer in time.
    pub fn transient(identity: &str) -> ExoError {
        let message = format!(
            "The mailbox database for '{identity}' is temporarily unavailable. Please try again."
        );
        ExoError::cmdlet(
            StatusCode::INTERNAL_SERVER_ERROR,
            exception::STORAGE_TRANSIENT,
            message,
        )
    }

    /// A folder-permission cmdlet's failure (HTTP 500, like every cmdlet failure).
    pub fn folder(exception: &'static str, message: impl Into<String>) -> ExoError {
        ExoError::cmdlet(StatusCode::INTERNAL_SERVER_ERROR, exception, message)
    }

    pub fn binding(message: impl Into<String>) -> ExoError {
        ExoError::cmdlet(StatusCode::BAD_REQUEST, exception::BINDING, message)
    }

    pub fn command_not_found(name: &str) -> ExoError {
        let message = format!(
            "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program."
        );
        ExoError::cmdlet(
            StatusCode::BAD_REQUEST,
            exception::COMMAND_NOT_FOUND,
            message,
        )
    }
}

/// The `Ex` + 6 hex digits code Exchange puts before the exception type; stable
/// per type (the real code where known, else derived from the type name).
pub(crate) fn error_code(exception: &str) -> String {
    match exception {
        exception::NOT_FOUND => "Ex6F9304".to_string(),
        other => format!("Ex{:06X}", fnv1a(other.as_bytes()) & 0xff_ffff),
    }
}

impl IntoResponse for ExoError {
    fn into_response(self) -> Response {
        let code = match self.status {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            _ => "InternalServerError",
        };
        let message = self.message;
        let detail = format!(
            "{}|{}|{message}",
            error_code(self.exception),
            self.exception
        );
        let body = json!({"error": {
            "code": code,
            "message": self.outer,
            "details": [{"code": "Context", "target": "", "message": detail}],
            "innererror": {
                "message": self.outer,
                "type": exception::ODATA,
                "internalException": {"message": message, "type": self.exception},
            },
        }});
        json_response(self.status, body)
    }
}

#[derive(Serialize)]
struct InvokeResponse {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

async fn invoke(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    invoke_command(&sim, &tenant, &query, &headers, &body)
        .unwrap_or_else(IntoResponse::into_response)
}

fn invoke_command(
    sim: &Sim,
    tenant: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ExoError> {
    if !sim.directory.is_tenant(tenant) {
        return Err(ExoError::request(
            StatusCode::UNAUTHORIZED,
            format!("The token's tenant does not match tenant '{tenant}'."),
        ));
    }
    let anchored = headers
        .get("X-AnchorMailbox")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !anchored {
        return Err(ExoError::request(
            StatusCode::BAD_REQUEST,
            "The X-AnchorMailbox header is required.",
        ));
    }
    let input: InvokeBody = serde_json::from_slice(body).map_err(|e| {
        ExoError::request(
            StatusCode::BAD_REQUEST,
            format!("The request body is not a valid CmdletInput: {e}"),
        )
    })?;
    let name = cmdlets::canonical_name(&input.cmdlet_input.name);
    if let Some(name) = name.filter(|n| sim.forbids(n)) {
        return Ok(forbidden(name));
    }
    let offset = skip_offset(query.get("$skiptoken")).map_err(ExoError::binding)?;
    let size = sim.settings.page_size;
    let output = cmdlets::invoke(sim, &input.cmdlet_input, Window { offset, size })?;
    let writes = name.is_some_and(|n| {
        ["Add-", "Remove-", "Set-", "Disable-", "Enable-"]
            .iter()
            .any(|p| n.starts_with(p))
    });
    if sim.settings.empty_write_answers
        && writes
        && output.items.is_empty()
        && output.warnings.is_empty()
    {
        return Ok(StatusCode::OK.into_response());
    }

    let selection = query.get("$select").map(String::as_str);
    // A listing built only this page; any other result is paged here.
    let (total, skip) = match output.listed {
        Some(listed) => (listed, 0),
        None => (output.items.len(), offset),
    };
    let value = output
        .items
        .into_iter()
        .skip(skip)
        .take(size)
        .map(|item| select(item, selection))
        .collect();
    let base = base_url(headers, sim);
    let path = format!("/adminapi/beta/{tenant}/InvokeCommand");
    let next_offset = offset + size;
    let next_link = (next_offset < total).then(|| {
        link(
            &base,
            &path,
            &[
                ("$skiptoken", Some(&next_offset.to_string())),
                ("$select", selection),
            ],
        )
    });
    let context =
        format!("{base}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)");
    Ok(json_response(
        StatusCode::OK,
        InvokeResponse {
            context,
            value,
            next_link,
            warnings: output.warnings,
        },
    ))
}

/// Exchange's answer to a cmdlet outside the app's RBAC roles: 403, a body
/// of NUL bytes, the reason only in `x-ms-diagnostics`.
fn forbidden(name: &str) -> Response {
    let mut response = (StatusCode::FORBIDDEN, vec![0u8; 32]).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    let diagnostics = format!(
        "2000003;reason=\"The app is not allowed to run cmdlet '{name}' (missing RBAC role)\";error_category=\"insufficient_privileges\""
    );
    if let Ok(value) = HeaderValue::from_str(&diagnostics) {
        headers.insert("x-ms-diagnostics", value);
    }
    response
}

async fn exo_batch(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: batch::BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return ExoError::request(
                StatusCode::BAD_REQUEST,
                format!("The batch request body is invalid: {e}"),
            )
            .into_response()
        }
    };
    if request.requests.len() > MAX_BATCH {
        let message = format!("A batch may hold at most {MAX_BATCH} requests.");
        return ExoError::request(StatusCode::BAD_REQUEST, message).into_response();
    }
    let path_of = |url: &str| match url.find("/adminapi/") {
        Some(start) => url[start..].to_string(),
        None => format!("/adminapi/beta/{tenant}/{}", url.trim_start_matches('/')),
    };
    batch::run(sim, &headers, request, path_of).await
}
