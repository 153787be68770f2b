//! Entra ID identity actions on Graph (`/v1.0`), as a contain run uses them:
//! `POST /users/{id}/revokeSignInSessions`, `PATCH /users/{id}` (`accountEnabled`), the delegated
//! permission grants (`GET /users/{id}/oauth2PermissionGrants`, `GET /oauth2PermissionGrants`
//! with `$filter`, `POST`, `DELETE /oauth2PermissionGrants/{id}`), `GET /servicePrincipals/{id}`
//! and `POST /identityProtection/riskyUsers/confirmCompromised`. Their state (sessions revoked,
//! `accountEnabled`, consents, users confirmed compromised) is in the snapshot's `identity`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::directory::{Directory, Person};
use crate::faults::{guarded, Key};
use crate::fixture::{derived_guid, fnv1a, Fixture};
use crate::graph::{parse_body, respond, GraphError, GraphResult};
use crate::wire::{base_url, json_response, link, select, skip_offset};
use crate::Sim;

/// Microsoft Graph's and Exchange Online's first-party app ids: the resources of delegated grants.
const GRAPH_APP: (&str, &str) = ("00000003-0000-0000-c000-000000000000", "Microsoft Graph");
const EXCHANGE_APP: (&str, &str) = (
    "00000002-0000-0ff1-ce00-000000000000",
    "Office 365 Exchange Online",
);

/// The request counters of these routes (scripted faults may name them).
pub(crate) const ENDPOINTS: &[&str] = &[
    "graph POST revokeSignInSessions",
    "graph PATCH /users/{id}",
    "graph GET oauth2PermissionGrants",
    "graph POST oauth2PermissionGrants",
    "graph DELETE oauth2PermissionGrants",
    "graph GET servicePrincipals",
    "graph POST confirmCompromised",
];

/// The application roles these routes need (Microsoft's least privileged ones).
pub(crate) const ROLES: &[&str] = &[
    "User.RevokeSessions.All",
    "User.EnableDisableAccount.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Application.Read.All",
    "IdentityRiskyUser.ReadWrite.All",
];

/// The role a request of these routes needs; `None` for any other route.
pub(crate) fn role_needed(method: &Method, path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    if path.ends_with("/revokeSignInSessions") {
        Some("User.RevokeSessions.All")
    } else if path.ends_with("/riskyUsers/confirmCompromised") {
        Some("IdentityRiskyUser.ReadWrite.All")
    } else if path.contains("/oauth2PermissionGrants") {
        Some("DelegatedPermissionGrant.ReadWrite.All")
    } else if path.contains("/servicePrincipals") {
        Some("Application.Read.All")
    } else if method == Method::PATCH && path.matches('/').count() == 3 && path.contains("/users/")
    {
        Some("User.EnableDisableAccount.All")
    } else {
        None
    }
}

/// A consent of the fixture (`consents[]`): `user` consented `app` to `scope` on `resource`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentFixture {
    /// The consenting user (UPN); absent with `consent_type` `AllPrincipals` (an admin's
    /// consent for everyone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The client app's display name (its service principal is made from it).
    pub app: String,
    pub scope: String,
    /// `Microsoft Graph` (default) or `Office 365 Exchange Online`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `Principal` (default with a user) or `AllPrincipals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_type: Option<String>,
}

/// Loading checks the fixture's `consents`: each names a user of the fixture (or is an
/// `AllPrincipals` consent without one), a known resource, and no two name the same app,
/// user and resource.
pub(crate) fn validate(
    fixture: &Fixture,
    people: &std::collections::HashSet<String>,
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (n, c) in fixture.consents.iter().enumerate() {
        let resource = c.resource.as_deref().unwrap_or(GRAPH_APP.1);
        if ![GRAPH_APP.1, EXCHANGE_APP.1]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(resource))
        {
            return Err(format!("consents[{n}].resource: '{resource}' is neither 'Microsoft Graph' nor 'Office 365 Exchange Online'"));
        }
        match (c.user.as_deref(), c.consent_type.as_deref()) {
            (Some(upn), None | Some("Principal")) if people.contains(&upn.to_lowercase()) => {}
            (Some(upn), None | Some("Principal")) => {
                return Err(format!("consents[{n}].user: '{upn}' is not a user of the fixture"))
            }
            (None, Some("AllPrincipals")) => {}
            _ => {
                return Err(format!(
                    "consents[{n}]: a 'Principal' consent names its user, an 'AllPrincipals' one (consent_type) none"
                ))
            }
        }
        let key = (
            c.app.to_lowercase(),
            c.user.as_deref().map(str::to_lowercase),
            resource.to_lowercase(),
        );
        if !seen.insert(key) {
            return Err(format!(
                "consents[{n}]: '{}' has this user's consent on this resource twice",
                c.app
            ));
        }
    }
    Ok(())
}

/// A service principal: a client app or a resource API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
}

/// A delegated permission grant as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentSnapshot {
    pub id: String,
    /// The consenting user's UPN (none for `AllPrincipals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    pub client_id: String,
    /// The client app's service principal `displayName`.
    pub app: String,
    pub resource_id: String,
    pub resource: String,
    pub consent_type: String,
    pub scope: String,
}

/// A user's sign-in state, for users whose state is not the fixture's plain one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityUserSnapshot {
    pub upn: String,
    pub account_enabled: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_premises_sync_enabled: bool,
    /// The last `revokeSignInSessions` (Graph's `signInSessionsValidFromDateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions_revoked: u32,
    /// `PATCH accountEnabled` requests that changed it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub account_enabled_changes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_compromised_at: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The snapshot's `identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySnapshot {
    pub users: Vec<IdentityUserSnapshot>,
    pub consents: Vec<ConsentSnapshot>,
    pub service_principals: Vec<ServicePrincipal>,
}

impl IdentitySnapshot {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.consents.is_empty()
    }

    /// The user with this UPN (case-insensitive), if his state is listed.
    pub fn user(&self, upn: &str) -> Option<&IdentityUserSnapshot> {
        self.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn))
    }

    /// The consents of `upn` (case-insensitive).
    pub fn consents_of(&self, upn: &str) -> Vec<&ConsentSnapshot> {
        self.consents
            .iter()
            .filter(|c| {
                c.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(upn))
            })
            .collect()
    }
}

/// The mutable identity state (saved with the tenant's state).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IdentityState {
    users: BTreeMap<String, IdentityUserSnapshot>,
    consents: Vec<ConsentSnapshot>,
    service_principals: Vec<ServicePrincipal>,
    created: u64,
}

fn sp_for(name: &str, app_id: Option<&str>) -> ServicePrincipal {
    ServicePrincipal {
        id: derived_guid(&format!("sp:{name}")),
        app_id: app_id.map_or_else(|| derived_guid(&format!("app:{name}")), str::to_string),
        display_name: name.to_string(),
    }
}

/// A grant id shaped like Graph's (URL-safe base64, no padding).
fn grant_id(key: &str) -> String {
    let bytes: Vec<u8> = (0..4u8)
        .flat_map(|i| fnv1a(format!("{key}#{i}").as_bytes()).to_le_bytes())
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

impl IdentityState {
    pub fn new(fixture: &Fixture, directory: &Directory) -> IdentityState {
        let mut state = IdentityState {
            service_principals: vec![
                sp_for(GRAPH_APP.1, Some(GRAPH_APP.0)),
                sp_for(EXCHANGE_APP.1, Some(EXCHANGE_APP.0)),
            ],
            ..IdentityState::default()
        };
        for user in fixture
            .users
            .iter()
            .filter(|u| u.on_premises_sync_enabled == Some(true))
        {
            if let Some(person) = directory.graph_user(&user.upn) {
                state.entry(person).on_premises_sync_enabled = true;
            }
        }
        for c in &fixture.consents {
            let Some(resource) = state
                .sp_named(c.resource.as_deref().unwrap_or(GRAPH_APP.1))
                .cloned()
            else {
                continue;
            };
            if state.sp_named(&c.app).is_none() {
                state.service_principals.push(sp_for(&c.app, None));
            }
            let client = state
                .sp_named(&c.app)
                .cloned()
                .unwrap_or_else(|| sp_for(&c.app, None));
            let person = c.user.as_deref().and_then(|u| directory.graph_user(u));
            let consent_type = c.consent_type.clone().unwrap_or_else(|| {
                if person.is_some() {
                    "Principal"
                } else {
                    "AllPrincipals"
                }
                .to_string()
            });
            if let Some(p) = person {
                state.entry(p);
            }
            let principal_id = person.map(|p| p.id.clone());
            state.consents.push(ConsentSnapshot {
                id: grant_id(&format!(
                    "{}|{}|{}",
                    client.id,
                    principal_id.as_deref().unwrap_or("all"),
                    resource.id
                )),
                user: person.map(|p| p.upn.clone()),
                principal_id,
                client_id: client.id.clone(),
                app: client.display_name.clone(),
                resource_id: resource.id.clone(),
                resource: resource.display_name.clone(),
                consent_type,
                scope: c.scope.trim().to_string(),
            });
        }
        state
    }

    fn sp_named(&self, name: &str) -> Option<&ServicePrincipal> {
        self.service_principals
            .iter()
            .find(|s| s.display_name.eq_ignore_ascii_case(name))
    }

    fn entry(&mut self, person: &Person) -> &mut IdentityUserSnapshot {
        self.users
            .entry(person.upn.clone())
            .or_insert_with(|| IdentityUserSnapshot {
                upn: person.upn.clone(),
                account_enabled: person.account_enabled,
                on_premises_sync_enabled: false,
                sessions_revoked_at: None,
                sessions_revoked: 0,
                account_enabled_changes: 0,
                confirmed_compromised_at: None,
            })
    }

    /// `accountEnabled` as it stands now.
    pub fn account_enabled(&self, person: &Person) -> bool {
        self.users
            .get(&person.upn)
            .map_or(person.account_enabled, |u| u.account_enabled)
    }

    fn synced(&self, person: &Person) -> bool {
        self.users
            .get(&person.upn)
            .is_some_and(|u| u.on_premises_sync_enabled)
    }

    pub fn snapshot(&self) -> IdentitySnapshot {
        if self.users.is_empty() && self.consents.is_empty() {
            // Nothing to say (the snapshot leaves it out, so it reads back the same).
            return IdentitySnapshot::default();
        }
        IdentitySnapshot {
            users: self.users.values().cloned().collect(),
            consents: self.consents.clone(),
            service_principals: self.service_principals.clone(),
        }
    }
}

/// What `GET /users/{id}` shows of the identity state: the current `accountEnabled`, and
/// `onPremisesSyncEnabled` (`true` for a synced user, `null` for a cloud-only one).
pub(crate) fn overlay_user(sim: &Sim, person: &Person, user: &mut Value) {
    let state = sim.identity();
    user["accountEnabled"] = json!(state.account_enabled(person));
    user["onPremisesSyncEnabled"] = if state.synced(person) {
        json!(true)
    } else {
        Value::Null
    };
}

pub(crate) fn routes(sim: &Arc<Sim>, router: Router<Arc<Sim>>) -> Router<Arc<Sim>> {
    let key = Key::Fixed;
    router
        .route(
            "/v1.0/users/{user}/revokeSignInSessions",
            guarded(
                sim,
                key("graph POST revokeSignInSessions"),
                post(revoke_sessions),
            ),
        )
        .route(
            "/v1.0/users/{user}",
            guarded(sim, key("graph PATCH /users/{id}"), patch(patch_user)),
        )
        .route(
            "/v1.0/users/{user}/oauth2PermissionGrants",
            guarded(
                sim,
                key("graph GET oauth2PermissionGrants"),
                get(grants_of_user),
            ),
        )
        .route(
            "/v1.0/oauth2PermissionGrants",
            guarded(
                sim,
                key("graph GET oauth2PermissionGrants"),
                get(list_grants),
            )
            .merge(guarded(
                sim,
                key("graph POST oauth2PermissionGrants"),
                post(create_grant),
            )),
        )
        .route(
            "/v1.0/oauth2PermissionGrants/{id}",
            guarded(
                sim,
                key("graph DELETE oauth2PermissionGrants"),
                delete(delete_grant),
            ),
        )
        .route(
            "/v1.0/servicePrincipals/{id}",
            guarded(
                sim,
                key("graph GET servicePrincipals"),
                get(service_principal),
            ),
        )
        .route(
            "/v1.0/identityProtection/riskyUsers/confirmCompromised",
            guarded(
                sim,
                key("graph POST confirmCompromised"),
                post(confirm_compromised),
            ),
        )
}

type Params = Query<HashMap<String, String>>;

fn not_found(key: &str) -> GraphError {
    GraphError(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError(
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        message.into(),
    )
}

fn user<'a>(sim: &'a Sim, key: &str) -> Result<&'a Person, GraphError> {
    sim.directory.graph_user(key).ok_or_else(|| not_found(key))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn revoke_sessions(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(user(&sim, &key).map(|person| {
        let mut state = sim.identity();
        let entry = state.entry(person);
        entry.sessions_revoked_at = Some(now());
        entry.sessions_revoked += 1;
        let context = format!("{}/v1.0/$metadata#Edm.Boolean", base_url(&headers, &sim));
        json_response(
            StatusCode::OK,
            json!({"@odata.context": context, "value": true}),
        )
    }))
}

async fn patch_user(State(sim): State<Arc<Sim>>, Path(key): Path<String>, body: Bytes) -> Response {
    respond(apply_patch(&sim, &key, &body))
}

fn apply_patch(sim: &Sim, key: &str, body: &[u8]) -> GraphResult {
    let person = user(sim, key)?;
    let changes: Map<String, Value> = parse_body(body)?;
    let mut enabled = None;
    for (property, value) in &changes {
        match (property.as_str(), value) {
            ("accountEnabled", Value::Bool(b)) => enabled = Some(*b),
            ("accountEnabled", _) => {
                return Err(bad("Invalid value specified for property 'accountEnabled' of resource 'User'."))
            }
            (other, _) => {
                return Err(bad(format!(
                    "Property '{other}' cannot be updated through the simulator (it supports accountEnabled)."
                )))
            }
        }
    }
    if let Some(enabled) = enabled {
        let mut state = sim.identity();
        let entry = state.entry(person);
        if entry.account_enabled != enabled {
            entry.account_enabled = enabled;
            entry.account_enabled_changes += 1;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A grant as Graph lists it.
fn grant_value(c: &ConsentSnapshot) -> Value {
    json!({
        "clientId": c.client_id,
        "consentType": c.consent_type,
        "id": c.id,
        "principalId": c.principal_id,
        "resourceId": c.resource_id,
        "scope": c.scope,
    })
}

/// A page of grants (`page_size` a page, `$skiptoken` the offset).
fn grant_page(
    sim: &Sim,
    headers: &HeaderMap,
    path: &str,
    filter: Option<&str>,
    grants: Vec<Value>,
    skiptoken: Option<&String>,
) -> GraphResult {
    let offset = skip_offset(skiptoken).map_err(GraphError::bad_request)?;
    let size = sim.settings.page_size;
    let base = base_url(headers, sim);
    let next = offset + size;
    let next_link = (next < grants.len()).then(|| {
        link(
            &base,
            path,
            &[("$filter", filter), ("$skiptoken", Some(&next.to_string()))],
        )
    });
    let mut page = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#oauth2PermissionGrants"),
        "value": grants.into_iter().skip(offset).take(size).collect::<Vec<_>>(),
    });
    if let Some(next_link) = next_link {
        page["@odata.nextLink"] = json!(next_link);
    }
    Ok(json_response(StatusCode::OK, page))
}

/// `GET /users/{id}/oauth2PermissionGrants`: the user's own grants (`Principal`), not the
/// tenant-wide ones, as Graph documents.
async fn grants_of_user(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(user(&sim, &key).and_then(|person| {
        let grants: Vec<Value> = sim
            .identity()
            .consents
            .iter()
            .filter(|c| c.principal_id.as_deref() == Some(person.id.as_str()))
            .map(grant_value)
            .collect();
        let path = format!("/v1.0/users/{key}/oauth2PermissionGrants");
        grant_page(
            &sim,
            &headers,
            &path,
            None,
            grants,
            params.get("$skiptoken"),
        )
    }))
}

/// `GET /oauth2PermissionGrants[?$filter=principalId eq '…' | clientId eq '…']`.
async fn list_grants(
    State(sim): State<Arc<Sim>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    respond(filtered_grants(&sim, &params, &headers))
}

fn filtered_grants(
    sim: &Sim,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> GraphResult {
    let filter = params.get("$filter").map(String::as_str);
    let wanted = match filter {
        None => None,
        Some(f) => Some(parse_filter(f).ok_or_else(|| {
            GraphError(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                format!("Unsupported or invalid query filter clause specified: '{f}'. The simulator supports principalId eq '<id>' and clientId eq '<id>'."),
            )
        })?),
    };
    let grants: Vec<Value> = sim
        .identity()
        .consents
        .iter()
        .filter(|c| match &wanted {
            None => true,
            Some(("principalId", v)) => c
                .principal_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(v)),
            Some((_, v)) => c.client_id.eq_ignore_ascii_case(v),
        })
        .map(grant_value)
        .collect();
    grant_page(
        sim,
        headers,
        "/v1.0/oauth2PermissionGrants",
        filter,
        grants,
        params.get("$skiptoken"),
    )
}

/// `principalId eq '<x>'` or `clientId eq '<x>'`: the property and the value.
fn parse_filter(filter: &str) -> Option<(&'static str, String)> {
    let mut words = filter.trim().splitn(3, char::is_whitespace);
    let property = match words.next()? {
        p if p.eq_ignore_ascii_case("principalId") => "principalId",
        p if p.eq_ignore_ascii_case("clientId") => "clientId",
        _ => return None,
    };
    if !words.next()?.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value = words.next()?.trim();
    let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some((property, value.replace("''", "'")))
}

async fn delete_grant(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let mut state = sim.identity();
    let before = state.consents.len();
    state.consents.retain(|c| c.id != id);
    if state.consents.len() == before {
        return not_found(&id).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewGrant {
    client_id: String,
    consent_type: String,
    #[serde(default)]
    principal_id: Option<String>,
    resource_id: String,
    #[serde(default)]
    scope: String,
}

async fn create_grant(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(create(&sim, &headers, &body))
}

fn create(sim: &Sim, headers: &HeaderMap, body: &[u8]) -> GraphResult {
    let new: NewGrant = parse_body(body)?;
    let mut state = sim.identity();
    let sp = |id: &str| {
        state
            .service_principals
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
            .cloned()
    };
    let client = sp(&new.client_id).ok_or_else(|| {
        bad(format!(
            "clientId '{}' is no service principal of the tenant.",
            new.client_id
        ))
    })?;
    let resource = sp(&new.resource_id).ok_or_else(|| {
        bad(format!(
            "resourceId '{}' is no service principal of the tenant.",
            new.resource_id
        ))
    })?;
    let person = match (new.consent_type.as_str(), new.principal_id.as_deref()) {
        ("Principal", Some(id)) => Some(
            sim.directory
                .graph_user(id)
                .ok_or_else(|| bad(format!("principalId '{id}' is no user of the tenant.")))?,
        ),
        ("AllPrincipals", None) => None,
        _ => return Err(bad(
            "consentType must be 'Principal' with a principalId, or 'AllPrincipals' without one.",
        )),
    };
    let principal_id = person.map(|p| p.id.clone());
    if state.consents.iter().any(|c| {
        c.client_id == client.id
            && c.resource_id == resource.id
            && c.principal_id == principal_id
            && c.consent_type == new.consent_type
    }) {
        return Err(GraphError(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            "Permission entry already exists.".into(),
        ));
    }
    state.created += 1;
    let consent = ConsentSnapshot {
        id: grant_id(&format!(
            "{}|{}|{}|{}",
            client.id,
            principal_id.as_deref().unwrap_or("all"),
            resource.id,
            state.created
        )),
        user: person.map(|p| p.upn.clone()),
        principal_id,
        client_id: client.id,
        app: client.display_name,
        resource_id: resource.id,
        resource: resource.display_name,
        consent_type: new.consent_type,
        scope: new.scope.trim().to_string(),
    };
    let mut value = grant_value(&consent);
    value["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#oauth2PermissionGrants/$entity",
        base_url(headers, sim)
    ));
    if let Some(p) = person {
        state.entry(p);
    }
    state.consents.push(consent);
    Ok(json_response(StatusCode::CREATED, value))
}

async fn service_principal(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let state = sim.identity();
    let Some(sp) = state
        .service_principals
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
    else {
        return not_found(&id).into_response();
    };
    let value = json!({
        "@odata.context": format!("{}/v1.0/$metadata#servicePrincipals/$entity", base_url(&headers, &sim)),
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "servicePrincipalType": "Application",
        "accountEnabled": true,
    });
    json_response(
        StatusCode::OK,
        select(value, params.get("$select").map(String::as_str)),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmBody {
    #[serde(default)]
    user_ids: Vec<String>,
}

async fn confirm_compromised(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    respond(confirm(&sim, &body))
}

fn confirm(sim: &Sim, body: &[u8]) -> GraphResult {
    if sim.settings.unlicensed.iter().any(|f| f == "riskyUsers") {
        return Err(GraphError(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The tenant is not licensed for this feature.".into(),
        ));
    }
    let confirm: ConfirmBody = parse_body(body)?;
    if confirm.user_ids.is_empty() {
        return Err(bad("userIds must list at least one user id."));
    }
    let people = confirm
        .user_ids
        .iter()
        .map(|id| user(sim, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut state = sim.identity();
    for person in people {
        state.entry(person).confirmed_compromised_at = Some(now());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
