//! Graph's security alert feeds: Defender XDR `GET /v1.0/security/alerts_v2` and Entra ID
//! Protection `GET /v1.0/identityProtection/riskyUsers`, from the fixture's `security_alerts`
//! and `risky_users`, with `$filter` on the time of the last change, `$top`, and paging by
//! `@odata.nextLink`. A feed in `sim.unlicensed` answers 403.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::directory::Directory;
use crate::fixture::{AlertEvidence, Fixture};
use crate::wire::{base_url, json_response, link, odata_error, skip_offset};
use crate::Sim;

/// The feeds as Graph answers them, each item with the time its `$filter` compares.
pub(crate) struct AlertFeeds {
    alerts: Vec<(DateTime<Utc>, Value)>,
    risky_users: Vec<(DateTime<Utc>, Value)>,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl AlertFeeds {
    /// The fixture's alerts and risky users, their times counted back from `now`.
    pub fn new(fixture: &Fixture, directory: &Directory, now: DateTime<Utc>) -> AlertFeeds {
        let tenant = &fixture.tenant_id;
        let mut alerts: Vec<(DateTime<Utc>, Value)> = fixture
            .security_alerts
            .iter()
            .enumerate()
            .map(|(position, a)| {
                let changed = now - chrono::Duration::minutes(a.minutes_ago);
                let created = changed - chrono::Duration::minutes(1);
                let evidence: Vec<Value> = a
                    .evidence
                    .iter()
                    .filter_map(|e| evidence(e, directory, created))
                    .collect();
                // Without one, each alert is an incident of its own, numbered from 1.
                let incident = a
                    .incident_id
                    .clone()
                    .unwrap_or_else(|| (position + 1).to_string());
                let alert = json!({
                    "@odata.type": "#microsoft.graph.security.alert",
                    "id": a.id,
                    "providerAlertId": a.id,
                    "incidentId": incident,
                    "status": a.status,
                    "severity": a.severity,
                    "classification": a.classification.as_deref().unwrap_or("unknown"),
                    "determination": a.determination.as_deref().unwrap_or("unknown"),
                    "serviceSource": a.service_source,
                    "detectionSource": a.service_source,
                    "title": a.title,
                    "category": "InitialAccess",
                    "tenantId": tenant,
                    "createdDateTime": time(created),
                    "lastUpdateDateTime": time(changed),
                    "firstActivityDateTime": time(created),
                    "lastActivityDateTime": time(created),
                    "alertWebUrl": format!("https://security.microsoft.com/alerts/{}?tid={tenant}", a.id),
                    "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident}?tid={tenant}"),
                    "evidence": evidence,
                });
                (changed, alert)
            })
            .collect();
        alerts.sort_by_key(|a| a.0);
        let mut risky_users: Vec<(DateTime<Utc>, Value)> = fixture
            .risky_users
            .iter()
            .map(|r| {
                let changed = now - chrono::Duration::minutes(r.minutes_ago);
                let person = directory.graph_user(&r.user);
                let user = json!({
                    "id": person.map(|p| p.id.clone()).unwrap_or_else(|| r.user.clone()),
                    "isDeleted": false,
                    "isProcessing": false,
                    "riskLastUpdatedDateTime": time(changed),
                    "riskLevel": r.risk_level,
                    "riskState": r.risk_state,
                    "riskDetail": "none",
                    "userDisplayName": person.map(|p| p.display_name.clone()).unwrap_or_default(),
                    "userPrincipalName": person.map(|p| p.upn.clone()).unwrap_or_else(|| r.user.clone()),
                });
                (changed, user)
            })
            .collect();
        risky_users.sort_by_key(|a| a.0);
        AlertFeeds {
            alerts,
            risky_users,
        }
    }
}

/// A `userEvidence` or `mailboxEvidence`, its account filled from the directory.
fn evidence(e: &AlertEvidence, directory: &Directory, created: DateTime<Utc>) -> Option<Value> {
    let address = e.user.as_deref().or(e.mailbox.as_deref())?;
    let person = directory.graph_user(address);
    let (account, domain) = address.split_once('@').unwrap_or((address, ""));
    let user_account = json!({
        "accountName": account,
        "domainName": domain,
        "userSid": person.map(|p| p.sid.clone()),
        "azureAdUserId": person.map(|p| p.id.clone()),
        "userPrincipalName": person.map(|p| p.upn.clone()).unwrap_or_else(|| address.to_string()),
        "displayName": person.map(|p| p.display_name.clone()),
    });
    let mut value = json!({
        "createdDateTime": time(created),
        "verdict": "suspicious",
        "remediationStatus": "none",
        "remediationStatusDetails": null,
        "roles": e.roles,
        "detailedRoles": [],
        "tags": [],
    });
    if e.user.is_some() {
        value["@odata.type"] = json!("#microsoft.graph.security.userEvidence");
        value["userAccount"] = user_account;
    } else {
        value["@odata.type"] = json!("#microsoft.graph.security.mailboxEvidence");
        value["displayName"] = json!(person.map(|p| p.display_name.clone()));
        value["primaryAddress"] = json!(person
            .map(|p| p.mail.clone())
            .unwrap_or_else(|| address.to_string()));
        value["upn"] = json!(person
            .map(|p| p.upn.clone())
            .unwrap_or_else(|| address.to_string()));
        value["userAccount"] = user_account;
    }
    Some(value)
}

type Params = Query<HashMap<String, String>>;

pub(crate) async fn list_alerts(
    State(sim): State<Arc<Sim>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    feed_page(
        &sim,
        Feed {
            name: "alerts_v2",
            path: "/v1.0/security/alerts_v2",
            time_field: "lastUpdateDateTime",
            context: "security/alerts_v2",
            items: &sim.alerts.alerts,
        },
        &params,
        &headers,
    )
}

pub(crate) async fn list_risky_users(
    State(sim): State<Arc<Sim>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    feed_page(
        &sim,
        Feed {
            name: "riskyUsers",
            path: "/v1.0/identityProtection/riskyUsers",
            time_field: "riskLastUpdatedDateTime",
            context: "identityProtection/riskyUsers",
            items: &sim.alerts.risky_users,
        },
        &params,
        &headers,
    )
}

struct Feed<'a> {
    name: &'static str,
    path: &'static str,
    time_field: &'static str,
    context: &'static str,
    items: &'a [(DateTime<Utc>, Value)],
}

/// `<time_field> gt|ge <DateTimeOffset>`, or no filter at all.
fn time_filter(filter: &str, field: &str) -> Option<(bool, DateTime<Utc>)> {
    let mut words = filter.split_whitespace();
    let (name, op, value) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !name.eq_ignore_ascii_case(field) {
        return None;
    }
    let strict = match op.to_ascii_lowercase().as_str() {
        "gt" => true,
        "ge" => false,
        _ => return None,
    };
    let at = DateTime::parse_from_rfc3339(value)
        .ok()?
        .with_timezone(&Utc);
    Some((strict, at))
}

fn feed_page(
    sim: &Sim,
    feed: Feed<'_>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if sim.settings.unlicensed.iter().any(|f| f == feed.name) {
        return odata_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The tenant is not licensed for this feature.",
        );
    }
    let filter = params
        .get("$filter")
        .map(String::as_str)
        .unwrap_or("")
        .trim();
    let bound = if filter.is_empty() {
        None
    } else {
        match time_filter(filter, feed.time_field) {
            Some(bound) => Some(bound),
            None => {
                return odata_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!(
                        "Invalid filter clause: '{filter}'. The simulator supports {} gt|ge <DateTimeOffset>.",
                        feed.time_field
                    ),
                )
            }
        }
    };
    let offset = match skip_offset(params.get("$skiptoken")) {
        Ok(offset) => offset,
        Err(e) => return odata_error(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let size = match params.get("$top").map(|t| t.parse::<usize>()) {
        None => sim.settings.page_size.max(1),
        Some(Ok(top)) if top >= 1 => top,
        Some(_) => {
            return odata_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "$top must be a positive integer.",
            )
        }
    };
    let matching: Vec<&Value> = feed
        .items
        .iter()
        .filter(|(at, _)| match bound {
            None => true,
            Some((true, since)) => *at > since,
            Some((false, since)) => *at >= since,
        })
        .map(|(_, item)| item)
        .collect();
    let value: Vec<&Value> = matching.iter().skip(offset).take(size).copied().collect();
    let base = base_url(headers, sim);
    let next = offset + size;
    let top = params.get("$top").map(String::as_str);
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#{}", feed.context),
        "value": value,
    });
    if next < matching.len() {
        body["@odata.nextLink"] = json!(link(
            &base,
            feed.path,
            &[
                ("$filter", (!filter.is_empty()).then_some(filter)),
                ("$top", top),
                ("$skiptoken", Some(&next.to_string())),
            ],
        ));
    }
    json_response(StatusCode::OK, body)
}
