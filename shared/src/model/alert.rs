//! Security alerts from Microsoft Defender XDR (Graph `security/alerts_v2`), Entra ID
//! Protection (`identityProtection/riskyUsers`) and Microsoft Sentinel (a playbook's incident
//! entities), and the users they name as compromised: each becomes one contain run.

use super::{validate_email, InvalidRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Which alert system raised an alert (the request's `alert_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum AlertSourceKind {
    Defender,
    Sentinel,
    EntraIdProtection,
}

impl AlertSourceKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How long the same alert (and user) returns the run it started instead of starting another.
pub const ALERT_DEDUPE_WINDOW: chrono::Duration = chrono::Duration::days(30);

/// One piece of an alert's `evidence` that names a user: `userEvidence` (its `userAccount`) or
/// `mailboxEvidence` (`primaryAddress`, `upn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvidence {
    /// The UPN or mailbox address; `None` when the evidence names the user by object id only.
    pub address: Option<String>,
    pub azure_ad_user_id: Option<String>,
    /// `compromised`, `attacker`, `suspicious`, ... as Graph's `roles` list them.
    pub roles: Vec<String>,
}

impl UserEvidence {
    pub fn is_compromised(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("compromised"))
    }
}

/// A Graph `alerts_v2` alert, with what the poller reads of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAlert {
    pub id: String,
    pub incident_id: Option<String>,
    pub title: String,
    /// `informational`, `low`, `medium`, `high`, `unknown`.
    pub severity: String,
    /// `new`, `inProgress`, `resolved`.
    pub status: String,
    /// `compromisedAccount`, `notMalicious`, ... (`None`: not determined yet).
    pub determination: Option<String>,
    /// `truePositive`, `falsePositive`, `informationalExpectedActivity`.
    pub classification: Option<String>,
    pub service_source: Option<String>,
    pub last_update: Option<DateTime<Utc>>,
    pub users: Vec<UserEvidence>,
}

/// An Entra ID Protection risky user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskyUser {
    pub id: String,
    pub user_principal_name: Option<String>,
    /// `low`, `medium`, `high`, `hidden`, `none`.
    pub risk_level: String,
    /// `atRisk`, `confirmedCompromised`, `remediated`, `dismissed`, `confirmedSafe`, `none`.
    pub risk_state: String,
    pub risk_last_updated: Option<DateTime<Utc>>,
}

/// A user an alert names as compromised: one contain run is started for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertedUser {
    pub source: AlertSourceKind,
    /// What makes this alert the same alert when it comes again: the alert id (Defender), the
    /// risky user's id and risk state (Entra), the incident (Sentinel).
    pub alert_id: String,
    pub incident_id: String,
    pub severity: Option<String>,
    pub user_email: String,
    /// What the run's `reason` says.
    pub reason: String,
}

impl AlertedUser {
    /// The key under which this alert and user is remembered for [`ALERT_DEDUPE_WINDOW`].
    pub fn dedupe_key(&self, company_id: &str) -> String {
        format!(
            "{}:{}:{}:{}",
            company_id,
            self.source.as_str(),
            self.alert_id,
            self.user_email
        )
    }

    /// The request intake validates like any other: contain the user and their own mailbox.
    pub fn request_body(&self, company_id: &str) -> Value {
        let mut body = json!({
            "user_email": self.user_email,
            "company_id": company_id,
            "mode": "contain",
            "victim_mailbox": true,
            "incident_id": self.incident_id,
            "alert_source": self.source.as_str(),
            "requested_by": format!("{} alert", self.source.as_str()),
            "reason": self.reason,
        });
        if let Some(severity) = &self.severity {
            body["severity"] = json!(severity);
        }
        body
    }
}

/// What a Sentinel payload asks for: the company and the incident's users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelIncident {
    pub company_id: String,
    pub incident_id: String,
    /// `informational`, `low`, `medium` or `high`.
    pub severity: String,
    /// The incident's `status` (`new`, `active`, `closed`), when the playbook sends it.
    pub status: Option<String>,
    /// The incident's `classification` (`benignpositive`, `falsepositive`, `truepositive`,
    /// `undetermined`), when the playbook sends it.
    pub classification: Option<String>,
    /// The incident's users, in the order of its entities.
    pub users: Vec<AlertedUser>,
    /// Entities left out, and why (another tenant, no address).
    pub skipped: Vec<String>,
}

/// The most entities a Sentinel payload may carry: an incident naming more is no single
/// compromise to contain automatically, and the body stays small.
pub const MAX_SENTINEL_ENTITIES: usize = 1000;
/// The longest `incident_id` (Sentinel's are numbers or GUIDs).
pub const MAX_INCIDENT_ID_CHARS: usize = 128;
/// The longest `title` (Sentinel's own limit is 256).
pub const MAX_TITLE_CHARS: usize = 512;
/// The longest value of an entity field that names a user (an address is at most 320).
pub const MAX_ENTITY_VALUE_CHARS: usize = 320;

/// The severities Sentinel gives an incident.
const SENTINEL_SEVERITIES: &[&str] = &["informational", "low", "medium", "high"];
const SENTINEL_STATUSES: &[&str] = &["new", "active", "closed"];
const SENTINEL_CLASSIFICATIONS: &[&str] = &[
    "benignpositive",
    "falsepositive",
    "truepositive",
    "undetermined",
];

/// The entity fields a user is read from, checked for length.
const USER_FIELDS: &[&str] = &[
    "Upn",
    "UserPrincipalName",
    "Name",
    "accountName",
    "UPNSuffix",
    "MailboxPrimaryAddress",
    "AadUserId",
    "AadTenantId",
];

/// Reads a Sentinel playbook's HTTP body: `company_id`, `incident_id` (or `incidentNumber`),
/// optional `severity`, `title`, `tenant_id`, and `entities` — the incident's entities as the
/// playbook has them: `{"Type":"account","Name","UPNSuffix","AadUserId","AadTenantId","Upn"}`,
/// `{"Type":"mailbox","MailboxPrimaryAddress","Upn"}`, or `{"kind","properties":{..}}` as the
/// incident trigger's `relatedEntities` (keys in any case). Other entity types are ignored.
/// `tenant_id`: the company's tenant; an Account entity of another tenant is skipped.
pub fn sentinel_incident(
    body: &Value,
    tenant_id: Option<&str>,
) -> Result<SentinelIncident, InvalidRequest> {
    let obj = body.as_object().ok_or_else(|| {
        InvalidRequest::new(
            "body",
            "expected a JSON object with company_id, incident_id and entities",
        )
    })?;
    let company_id = text(obj, "company_id").ok_or_else(|| {
        InvalidRequest::new(
            "company_id",
            "is required (the Revoke365 company the incident's tenant belongs to)",
        )
    })?;
    let incident_id = text(obj, "incident_id")
        .or_else(|| text(obj, "incidentNumber"))
        .ok_or_else(|| {
            InvalidRequest::new(
                "incident_id",
                "is required (the Sentinel incident number or id): it names the runs and makes a re-sent payload start nothing new",
            )
        })?;
    bounded("incident_id", &incident_id, MAX_INCIDENT_ID_CHARS)?;
    let entities = match obj.get("entities") {
        Some(Value::Array(entities)) if !entities.is_empty() => entities,
        _ => {
            return Err(InvalidRequest::new(
                "entities",
                "must be a non-empty array of the incident's entities (Account: Name + UPNSuffix, Upn or AadUserId; Mailbox: MailboxPrimaryAddress)",
            ))
        }
    };
    if entities.len() > MAX_SENTINEL_ENTITIES {
        return Err(InvalidRequest::new(
            "entities",
            format!(
                "{} entities; at most {MAX_SENTINEL_ENTITIES} are accepted (an incident naming more is no compromise to contain automatically: contain its users by hand)",
                entities.len()
            ),
        ));
    }
    let severity = one_of(
        obj,
        "severity",
        SENTINEL_SEVERITIES,
        "Informational, Low, Medium, High",
    )?
    .ok_or_else(|| {
        InvalidRequest::new(
            "severity",
            "is required (the incident's severity: Informational, Low, Medium, High); the company's min_severity applies to it",
        )
    })?;
    let status = one_of(obj, "status", SENTINEL_STATUSES, "New, Active, Closed")?;
    let classification = one_of(
        obj,
        "classification",
        SENTINEL_CLASSIFICATIONS,
        "BenignPositive, FalsePositive, TruePositive, Undetermined",
    )?;
    let title = text(obj, "title").unwrap_or_else(|| "Sentinel incident".into());
    bounded("title", &title, MAX_TITLE_CHARS)?;
    for (i, entity) in entities.iter().enumerate() {
        let Some(entity) = flat_entity(entity) else {
            continue;
        };
        for name in USER_FIELDS {
            if let Some(value) = field(&entity, &[name]) {
                if value.chars().count() > MAX_ENTITY_VALUE_CHARS {
                    return Err(InvalidRequest::new(
                        format!("entities[{i}].{name}"),
                        format!("must be at most {MAX_ENTITY_VALUE_CHARS} characters"),
                    ));
                }
            }
        }
    }
    let mut users: Vec<AlertedUser> = Vec::new();
    let mut skipped = Vec::new();
    for entity in entities {
        let Some(entity) = flat_entity(entity) else {
            skipped.push("an entity that is not an object".to_string());
            continue;
        };
        let kind = field(&entity, &["Type", "kind"]).unwrap_or_default();
        let address = match kind.to_ascii_lowercase().as_str() {
            "account" => {
                if let (Some(theirs), Some(ours)) = (field(&entity, &["AadTenantId"]), tenant_id) {
                    if !theirs.eq_ignore_ascii_case(ours) {
                        skipped.push(format!("an Account entity of another tenant ({theirs})"));
                        continue;
                    }
                }
                field(&entity, &["Upn", "UserPrincipalName"]).or_else(|| {
                    let name = field(&entity, &["Name", "accountName"])?;
                    let suffix = field(&entity, &["UPNSuffix"])?;
                    Some(format!("{name}@{suffix}"))
                })
            }
            "mailbox" => field(&entity, &["MailboxPrimaryAddress", "Upn"]),
            _ => continue,
        };
        let Some(address) = address else {
            skipped.push(format!(
                "a {kind} entity without an address (Name + UPNSuffix, Upn or MailboxPrimaryAddress){}",
                field(&entity, &["AadUserId"]).map(|id| format!(", object id {id}")).unwrap_or_default()
            ));
            continue;
        };
        let user_email = match validate_email("entities", &address) {
            Ok(a) => a,
            Err(e) => {
                skipped.push(format!("a {kind} entity: {}", e.message));
                continue;
            }
        };
        if users.iter().any(|u| u.user_email == user_email) {
            continue;
        }
        users.push(AlertedUser {
            source: AlertSourceKind::Sentinel,
            alert_id: incident_id.clone(),
            incident_id: incident_id.clone(),
            severity: Some(severity.clone()),
            user_email,
            reason: format!("Microsoft Sentinel incident {incident_id}: {title}"),
        });
    }
    Ok(SentinelIncident {
        company_id,
        incident_id,
        severity,
        status,
        classification,
        users,
        skipped,
    })
}

/// A text field of at most `max` characters, none of them a control character (it names runs
/// and goes into notes and logs).
fn bounded(key: &str, value: &str, max: usize) -> Result<(), InvalidRequest> {
    if value.chars().count() > max {
        return Err(InvalidRequest::new(
            key,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidRequest::new(
            key,
            "must be printable (no control characters)",
        ));
    }
    Ok(())
}

/// An optional field that must be one of `allowed` (compared in lower case), lower-cased.
fn one_of(
    obj: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    shown: &str,
) -> Result<Option<String>, InvalidRequest> {
    let Some(value) = text(obj, key) else {
        return Ok(None);
    };
    let lower = value.to_ascii_lowercase();
    if allowed.contains(&lower.as_str()) {
        return Ok(Some(lower));
    }
    let mut shown_value: String = value.chars().take(40).collect();
    if shown_value.len() < value.len() {
        shown_value.push('…');
    }
    Err(InvalidRequest::new(
        key,
        format!("'{}' is not one of {shown}", shown_value.escape_default()),
    ))
}

/// A string or number field, trimmed, non-empty.
fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An entity's fields in one map: its own, and those under `properties` (the incident
/// trigger's shape).
fn flat_entity(entity: &Value) -> Option<Map<String, Value>> {
    let mut map = entity.as_object()?.clone();
    if let Some(Value::Object(properties)) = map.remove("properties") {
        map.extend(properties);
    }
    Some(map)
}

/// The first of `names` (case-insensitive) that holds a non-empty string.
fn field(entity: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        entity
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_entities_name_users_by_upn_parts_or_mailbox_address() {
        let body = json!({
            "company_id": "acme", "incidentNumber": 42, "severity": "High", "title": "Mail forwarding",
            "entities": [
                {"Type": "account", "Name": "John.Smith", "UPNSuffix": "acmecorp.com", "AadTenantId": "t1"},
                {"kind": "Mailbox", "properties": {"mailboxPrimaryAddress": "ceo@acmecorp.com"}},
                {"Type": "account", "Name": "eve", "UPNSuffix": "other.example", "AadTenantId": "t2"},
                {"Type": "account", "AadUserId": "0000-1111"},
                {"Type": "ip", "Address": "10.0.0.1"},
                {"Type": "mailbox", "MailboxPrimaryAddress": "john.smith@acmecorp.com"}
            ]
        });
        let incident = sentinel_incident(&body, Some("t1")).unwrap();
        let users: Vec<&str> = incident
            .users
            .iter()
            .map(|u| u.user_email.as_str())
            .collect();
        assert_eq!(users, ["john.smith@acmecorp.com", "ceo@acmecorp.com"]);
        assert_eq!(incident.users[0].incident_id, "42");
        assert_eq!(incident.users[0].severity.as_deref(), Some("high"));
        assert_eq!(incident.skipped.len(), 2, "{:?}", incident.skipped);
        assert!(incident.skipped[1].contains("0000-1111"));
        let request = incident.users[0].request_body("acme");
        assert_eq!(request["mode"], "contain");
        assert_eq!(request["victim_mailbox"], true);
        assert_eq!(request["alert_source"], "sentinel");
    }

    #[test]
    fn a_sentinel_payload_out_of_bounds_names_the_field() {
        let body = |change: Value| {
            let mut body = json!({"company_id": "acme", "incident_id": "7", "severity": "High",
                "entities": [{"Type": "mailbox", "MailboxPrimaryAddress": "a@acme.example"}]});
            body.as_object_mut()
                .unwrap()
                .extend(change.as_object().unwrap().clone());
            body
        };
        let many: Vec<Value> = (0..=MAX_SENTINEL_ENTITIES)
            .map(|n| json!({"Type": "mailbox", "MailboxPrimaryAddress": format!("u{n}@acme.example")}))
            .collect();
        for (change, field) in [
            (json!({"entities": many}), "entities"),
            (json!({"incident_id": "9".repeat(129)}), "incident_id"),
            (json!({"incident_id": "INC\u{7}1"}), "incident_id"),
            (json!({"severity": "Critical"}), "severity"),
            (json!({"severity": null}), "severity"),
            (json!({"status": "Resolved"}), "status"),
            (json!({"classification": "Benign"}), "classification"),
            (json!({"title": "t".repeat(513)}), "title"),
            (
                json!({"entities": [{"Type": "account", "Name": "n".repeat(321), "UPNSuffix": "acme.example"}]}),
                "entities[0].Name",
            ),
        ] {
            let e = sentinel_incident(&body(change), None).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let incident = sentinel_incident(
            &body(json!({"status": "Closed", "classification": "TruePositive"})),
            None,
        )
        .unwrap();
        let settings = super::super::AlertSettings::default();
        assert!(incident.ignored_by(&settings).unwrap().contains("Closed"));
        let low = sentinel_incident(&body(json!({"severity": "low"})), None).unwrap();
        assert!(low.ignored_by(&settings).unwrap().contains("min_severity"));
        let high = sentinel_incident(&body(json!({"status": "Active"})), None).unwrap();
        assert_eq!(high.ignored_by(&settings), None);
    }

    #[test]
    fn a_sentinel_payload_without_incident_or_entities_names_the_field() {
        let e =
            sentinel_incident(&json!({"company_id": "acme", "entities": [{}]}), None).unwrap_err();
        assert_eq!(e.field, "incident_id");
        let e = sentinel_incident(&json!({"company_id": "acme", "incident_id": "1"}), None)
            .unwrap_err();
        assert_eq!(e.field, "entities");
        let e =
            sentinel_incident(&json!({"incident_id": "1", "entities": [{}]}), None).unwrap_err();
        assert_eq!(e.field, "company_id");
    }
}
