//! Microsoft Graph (`/v1.0`): users, transitive group membership, calendars and their
//! permissions (served by `calendars.rs`), mailboxSettings, sendMail, `$batch`, and the security alert feeds
//! (`security/alerts_v2`, `identityProtection/riskyUsers`, served by `alerts.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{protect, Audience};
use crate::batch;
use crate::calendars::EmailAddress;
use crate::directory::Person;
use crate::faults::{counted, guarded, Key};
use crate::state::{SentAttachment, SentMail};
use crate::wire::{base_url, json_response, link, odata_error, select, skip_offset};
use crate::Sim;

const USER_LIST: &str = "/v1.0/users";
const USERS: &str = "/v1.0/users/{user}";
const MEMBER_OF: &str = "/v1.0/users/{user}/transitiveMemberOf/microsoft.graph.group";
const SEND_MAIL: &str = "/v1.0/users/{user}/sendMail";
const MAILBOX_SETTINGS: &str = "/v1.0/users/{user}/mailboxSettings";
const MAX_BATCH: usize = 20;

pub(crate) fn routes(sim: &Arc<Sim>) -> Router<Arc<Sim>> {
    let key = Key::Fixed;
    let router = crate::calendars::routes(sim, crate::identity::routes(sim, Router::new()))
        .route(
            USER_LIST,
            guarded(sim, key("graph GET /users?$filter"), get(list_users)),
        )
        .route(
            USERS,
            guarded(sim, key("graph GET /users/{id}"), get(get_user)),
        )
        .route(
            MEMBER_OF,
            guarded(sim, key("graph GET transitiveMemberOf"), get(member_of)),
        )
        .route(
            SEND_MAIL,
            // Graph takes at most 4 MB in one sendMail request, attachments included.
            guarded(sim, key("graph POST sendMail"), post(send_mail))
                .layer(DefaultBodyLimit::max(4 * 1024 * 1024)),
        )
        .route(
            MAILBOX_SETTINGS,
            guarded(sim, key("graph GET mailboxSettings"), get(mailbox_settings)),
        )
        .route(
            "/v1.0/security/alerts_v2",
            guarded(
                sim,
                key("graph GET alerts_v2"),
                get(crate::alerts::list_alerts),
            ),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers",
            guarded(
                sim,
                key("graph GET riskyUsers"),
                get(crate::alerts::list_risky_users),
            ),
        )
        .route(
            "/v1.0/$batch",
            counted(sim, "graph POST $batch", post(graph_batch)),
        );
    protect(router, sim, Audience::Graph)
}

type Params = Query<HashMap<String, String>>;

/// A Graph error answer.
pub(crate) struct GraphError(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        odata_error(self.0, self.1, self.2)
    }
}

impl GraphError {
    pub(crate) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            message.into(),
        )
    }
}

pub(crate) type GraphResult = Result<Response, GraphError>;

/// `/users/{x}` for directory lookups: unknown → `Request_ResourceNotFound`.
fn directory_user<'a>(sim: &'a Sim, key: &str) -> Result<&'a Person, GraphError> {
    sim.directory.graph_user(key).ok_or_else(|| {
        let message = format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        );
        GraphError(StatusCode::NOT_FOUND, "Request_ResourceNotFound", message)
    })
}

/// `/users/{x}` for mailbox operations: unknown → `ErrorInvalidUser`; a user
/// without an Exchange Online mailbox → `MailboxNotEnabledForRESTAPI`.
pub(crate) fn mailbox_user<'a>(sim: &'a Sim, key: &str) -> Result<&'a Person, GraphError> {
    let person = sim.directory.graph_user(key).ok_or_else(|| {
        GraphError(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{key}' is invalid."),
        )
    })?;
    if !person.kind.has_mailbox() || sim.rest_disabled(&person.upn) {
        return Err(rest_disabled());
    }
    Ok(person)
}

/// Graph's answer for a mailbox it cannot reach through REST (on premises,
/// inactive, soft-deleted, or no mailbox at all).
fn rest_disabled() -> GraphError {
    GraphError(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.".to_string(),
    )
}

/// Mutations on a `sim.fail_mailboxes` mailbox are denied.
pub(crate) fn ensure_writable(sim: &Sim, mailbox: &Person) -> Result<(), GraphError> {
    if sim.fails(&mailbox.upn) {
        return Err(access_denied());
    }
    Ok(())
}

/// Graph's answer for a mailbox the app may not touch.
pub(crate) fn access_denied() -> GraphError {
    let message = "Access is denied. Check credentials and try again.".to_string();
    GraphError(StatusCode::FORBIDDEN, "ErrorAccessDenied", message)
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(body).map_err(|e| {
        GraphError(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Unable to read JSON request payload: {e}"),
        )
    })
}

pub(crate) fn respond(result: GraphResult) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

// ---- users -------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct User<'a> {
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    id: &'a str,
    display_name: &'a str,
    user_principal_name: &'a str,
    mail: &'a str,
    account_enabled: bool,
    proxy_addresses: &'a [String],
}

impl<'a> User<'a> {
    fn new(context: Option<String>, person: &'a Person) -> Self {
        User {
            context,
            id: &person.id,
            display_name: &person.display_name,
            user_principal_name: &person.upn,
            mail: &person.mail,
            account_enabled: person.account_enabled,
            proxy_addresses: &person.proxy_addresses,
        }
    }
}

async fn get_user(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(directory_user(&sim, &key).map(|person| {
        let context = format!("{}/v1.0/$metadata#users/$entity", base_url(&headers, &sim));
        let mut user = serde_json::to_value(User::new(Some(context), person)).unwrap_or_default();
        crate::identity::overlay_user(&sim, person, &mut user);
        json_response(
            StatusCode::OK,
            select(user, params.get("$select").map(String::as_str)),
        )
    }))
}

/// `GET /v1.0/users?$filter=`: exactly `mail eq '<addr>'` or
/// `proxyAddresses/any(p:p eq 'smtp:<addr>')`; values compare case-insensitively.
async fn list_users(
    State(sim): State<Arc<Sim>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(filter_users(&sim, &params, &headers))
}

fn filter_users(sim: &Sim, params: &HashMap<String, String>, headers: &HeaderMap) -> GraphResult {
    let Some(filter) = params.get("$filter").map(String::as_str) else {
        return all_users(sim, params, headers);
    };
    let filter = UserFilter::parse(filter).ok_or_else(|| {
        GraphError(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            format!(
                "Unsupported or invalid query filter clause specified: '{filter}'. The simulator supports \
                 mail eq '<address>' and proxyAddresses/any(p:p eq 'smtp:<address>')."
            ),
        )
    })?;
    let selection = params.get("$select").map(String::as_str);
    let value: Vec<Value> = sim
        .directory
        .people
        .iter()
        .filter(|p| filter.matches(p))
        .map(|p| {
            select(
                serde_json::to_value(User::new(None, p)).unwrap_or_default(),
                selection,
            )
        })
        .collect();
    let context = format!("{}/v1.0/$metadata#users", base_url(headers, sim));
    Ok(json_response(
        StatusCode::OK,
        Collection {
            context,
            value,
            next_link: None,
        },
    ))
}

/// `signInActivity` as Graph shows it: the last sign-in, interactive and not (the simulator
/// keeps one time for both); null for a user who never signed in.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignInActivity {
    last_sign_in_date_time: String,
    last_non_interactive_sign_in_date_time: String,
}

/// `GET /v1.0/users` without a filter: every user, a page at a time (`$skiptoken`).
/// `signInActivity` is there only when `$select` asks for it, and then only on a tenant
/// licensed for it (Entra ID P1: else 403, as Graph answers).
fn all_users(sim: &Sim, params: &HashMap<String, String>, headers: &HeaderMap) -> GraphResult {
    let selection = params.get("$select").map(String::as_str);
    let sign_ins = selection.is_some_and(|s| {
        s.split(',')
            .any(|f| f.trim().eq_ignore_ascii_case("signInActivity"))
    });
    if sign_ins
        && sim
            .settings
            .unlicensed
            .iter()
            .any(|f| f == "signInActivity")
    {
        return Err(GraphError(
            StatusCode::FORBIDDEN,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license".into(),
        ));
    }
    let offset = skip_offset(params.get("$skiptoken")).map_err(GraphError::bad_request)?;
    // Graph serves at most 999 users a page, 120 with signInActivity selected.
    let most = if sign_ins { 120 } else { 999 };
    let size = params
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, most)
        .min(sim.settings.page_size);
    let people = &sim.directory.people;
    let value = people
        .iter()
        .skip(offset)
        .take(size)
        .map(|p| {
            let mut user = serde_json::to_value(User::new(None, p)).unwrap_or_default();
            if sign_ins {
                user["signInActivity"] = match p.last_sign_in {
                    Some(t) => {
                        let t = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                        serde_json::to_value(SignInActivity {
                            last_sign_in_date_time: t.clone(),
                            last_non_interactive_sign_in_date_time: t,
                        })
                        .unwrap_or_default()
                    }
                    None => Value::Null,
                };
            }
            select(user, selection)
        })
        .collect();
    let base = base_url(headers, sim);
    let next_offset = offset + size;
    let top = size.to_string();
    let next_link = (next_offset < people.len()).then(|| {
        link(
            &base,
            USER_LIST,
            &[
                ("$select", selection),
                ("$top", Some(&top)),
                ("$skiptoken", Some(&next_offset.to_string())),
            ],
        )
    });
    Ok(json_response(
        StatusCode::OK,
        Collection {
            context: format!("{base}/v1.0/$metadata#users"),
            value,
            next_link,
        },
    ))
}

#[derive(Debug, PartialEq, Eq)]
enum UserFilter {
    Mail(String),
    ProxyAddress(String),
}

impl UserFilter {
    fn parse(filter: &str) -> Option<UserFilter> {
        let text = filter.trim();
        if let Some(rest) = strip_word(text, "mail") {
            let value = string_literal(strip_word(rest, "eq")?)?;
            return (value.1.trim().is_empty()).then_some(UserFilter::Mail(value.0));
        }
        let rest = text
            .get(..18)
            .filter(|p| p.eq_ignore_ascii_case("proxyAddresses/any"))?;
        let rest = text[rest.len()..].trim_start().strip_prefix('(')?;
        let (variable, rest) = rest.split_once(':')?;
        let variable = variable.trim();
        if variable.is_empty() || !variable.chars().all(char::is_alphanumeric) {
            return None;
        }
        let rest = strip_word(rest.trim_start(), variable)?;
        let (value, rest) = string_literal(strip_word(rest, "eq")?)?;
        let rest = rest.trim_start().strip_prefix(')')?;
        rest.trim()
            .is_empty()
            .then_some(UserFilter::ProxyAddress(value))
    }

    fn matches(&self, person: &Person) -> bool {
        match self {
            UserFilter::Mail(address) => person.mail.eq_ignore_ascii_case(address),
            UserFilter::ProxyAddress(proxy) => person
                .proxy_addresses
                .iter()
                .any(|p| p.eq_ignore_ascii_case(proxy)),
        }
    }
}

/// `word` (case-insensitive) followed by whitespace; the rest, trimmed.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// An OData string literal `'...'` (`''` is a quote) at the start of `text`:
/// its value and the rest.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Some((value, &body[index + 1..]));
        }
        value.push(c);
    }
    None
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupItem<'a> {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    id: &'a str,
    display_name: &'a str,
    mail: Option<&'a str>,
}

#[derive(Serialize)]
struct Collection {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

async fn member_of(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(member_of_page(&sim, &key, &params, &headers))
}

fn member_of_page(
    sim: &Sim,
    key: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> GraphResult {
    let person = directory_user(sim, key)?;
    let offset = skip_offset(params.get("$skiptoken")).map_err(GraphError::bad_request)?;
    let selection = params.get("$select").map(String::as_str);
    let groups = sim.directory.groups_of(&person.upn);
    let size = sim.settings.page_size;
    let value = groups
        .iter()
        .skip(offset)
        .take(size)
        .map(|g| {
            let item = GroupItem {
                odata_type: "#microsoft.graph.group",
                id: &g.id,
                display_name: &g.name,
                mail: g.mail.as_deref(),
            };
            select(serde_json::to_value(item).unwrap_or_default(), selection)
        })
        .collect();
    let base = base_url(headers, sim);
    let next_offset = offset + size;
    let next_link = (next_offset < groups.len()).then(|| {
        let path = format!(
            "/v1.0/users/{}/transitiveMemberOf/microsoft.graph.group",
            person.id
        );
        link(
            &base,
            &path,
            &[
                ("$select", selection),
                ("$skiptoken", Some(&next_offset.to_string())),
            ],
        )
    });
    let context = format!("{base}/v1.0/$metadata#directoryObjects");
    Ok(json_response(
        StatusCode::OK,
        Collection {
            context,
            value,
            next_link,
        },
    ))
}

// ---- mailboxSettings -----------------------------------------------------

/// `GET /users/{x}/mailboxSettings`: a user without a mailbox Graph can reach answers like
/// the calendar routes (`ErrorInvalidUser`, `MailboxNotEnabledForRESTAPI`).
async fn mailbox_settings(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(mailbox_user(&sim, &key).map(|person| {
        let purpose = match person.kind {
            crate::directory::PersonKind::SharedMailbox => "shared",
            _ => "user",
        };
        let settings = serde_json::json!({
            "@odata.context": format!(
                "{}/v1.0/$metadata#users('{}')/mailboxSettings",
                base_url(&headers, &sim),
                person.id
            ),
            "archiveFolder": URL_SAFE.encode(format!("archive:{}", person.upn)),
            "timeZone": "UTC",
            "dateFormat": "yyyy-MM-dd",
            "timeFormat": "HH:mm",
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "userPurpose": purpose,
            "language": {"locale": "en-US", "displayName": "English (United States)"},
        });
        json_response(
            StatusCode::OK,
            select(settings, params.get("$select").map(String::as_str)),
        )
    }))
}

// ---- sendMail ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMailRequest {
    message: Option<Message>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    subject: Option<String>,
    body: Option<ItemBody>,
    #[serde(default)]
    to_recipients: Vec<Recipient>,
    #[serde(default)]
    cc_recipients: Vec<Recipient>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    content_type: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: Option<EmailAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    name: Option<String>,
    content_type: Option<String>,
    content_bytes: Option<String>,
}

async fn send_mail(State(sim): State<Arc<Sim>>, Path(key): Path<String>, body: Bytes) -> Response {
    respond(send(&sim, &key, &body))
}

fn send(sim: &Sim, key: &str, body: &[u8]) -> GraphResult {
    let sender = mailbox_user(sim, key)?;
    let request: SendMailRequest = parse_body(body)?;
    let mail = validate_message(sender, request)?;
    sim.state().sent_mail.push(mail);
    Ok(StatusCode::ACCEPTED.into_response())
}

fn validate_message(sender: &Person, request: SendMailRequest) -> Result<SentMail, GraphError> {
    let message = request
        .message
        .ok_or_else(|| GraphError::bad_request("message is required."))?;
    let subject = message
        .subject
        .ok_or_else(|| GraphError::bad_request("message.subject is required."))?;
    let body = message
        .body
        .ok_or_else(|| GraphError::bad_request("message.body is required."))?;
    let content_type = body.content_type.unwrap_or_default();
    let content_type = ["HTML", "Text"]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(&content_type))
        .ok_or_else(|| {
            GraphError::bad_request(format!(
                "message.body.contentType '{content_type}' is not HTML or Text."
            ))
        })?;
    if message.to_recipients.is_empty() {
        return Err(GraphError::bad_request(
            "message.toRecipients must not be empty.",
        ));
    }
    let addresses = |recipients: Vec<Recipient>, field: &str| -> Result<Vec<String>, GraphError> {
        recipients
            .into_iter()
            .map(|r| {
                let address = r
                    .email_address
                    .and_then(|e| e.address)
                    .filter(|a| a.contains('@'));
                address.ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "message.{field}: every recipient needs emailAddress.address."
                    ))
                })
            })
            .collect()
    };
    let to = addresses(message.to_recipients, "toRecipients")?;
    let cc = addresses(message.cc_recipients, "ccRecipients")?;
    let attachments = message
        .attachments
        .into_iter()
        .map(|a| {
            if a.odata_type.as_deref() != Some("#microsoft.graph.fileAttachment") {
                return Err(GraphError::bad_request(
                    "attachments: @odata.type must be #microsoft.graph.fileAttachment.",
                ));
            }
            let name = a
                .name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| GraphError::bad_request("attachments: name is required."))?;
            let bytes = a
                .content_bytes
                .ok_or_else(|| GraphError::bad_request("attachments: contentBytes is required."))?;
            let bytes = STANDARD.decode(bytes.trim()).map_err(|e| {
                GraphError::bad_request(format!(
                    "attachments: contentBytes of '{name}' is not valid base64: {e}"
                ))
            })?;
            let content = String::from_utf8_lossy(&bytes).into_owned();
            Ok(SentAttachment {
                name,
                content_type: a.content_type,
                content,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SentMail {
        from: sender.upn.clone(),
        subject,
        content_type: content_type.to_string(),
        body: body.content.unwrap_or_default(),
        to,
        cc,
        attachments,
    })
}

// ---- $batch ---------------------------------------------------------------

async fn graph_batch(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: batch::BatchRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if request.requests.len() > MAX_BATCH {
        let message = format!("Number of batch request steps exceeds the maximum of {MAX_BATCH}.");
        return GraphError::bad_request(message).into_response();
    }
    let relative = |url: &str| format!("/v1.0/{}", url.trim_start_matches('/'));
    batch::run(sim, &headers, request, relative).await
}

#[cfg(test)]
mod tests {
    use super::UserFilter;

    #[test]
    fn user_filters() {
        assert_eq!(
            UserFilter::parse("mail eq 'Peter@Initech.com'"),
            Some(UserFilter::Mail("Peter@Initech.com".into()))
        );
        assert_eq!(
            UserFilter::parse("mail eq 'o''brien@x.com'"),
            Some(UserFilter::Mail("o'brien@x.com".into()))
        );
        assert_eq!(
            UserFilter::parse("proxyAddresses/any(p:p eq 'smtp:a@x.com')"),
            Some(UserFilter::ProxyAddress("smtp:a@x.com".into()))
        );
        assert_eq!(
            UserFilter::parse("proxyaddresses/any (x: x eq 'SMTP:a@x.com' )"),
            Some(UserFilter::ProxyAddress("SMTP:a@x.com".into()))
        );
        for bad in [
            "",
            "mail eq 'a@x.com' or mail eq 'b@x.com'",
            "startswith(mail,'a')",
            "displayName eq 'A'",
            "mail eq 'unterminated",
            "proxyAddresses/any(p:q eq 'smtp:a@x.com')",
            "mail ne 'a@x.com'",
        ] {
            assert_eq!(UserFilter::parse(bad), None, "{bad}");
        }
    }
}
