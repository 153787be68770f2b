//! The revocation request (docs/cli.md and docs/aws.md) and its validation.
//!
//! Parsing works on a `serde_json::Value` rather than `#[derive(Deserialize)]` so that every
//! rejection names the offending field and the values it accepts.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The permission types a request can scope to (`permission_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionType {
    FullAccess,
    SendAs,
    SendOnBehalf,
    Calendar,
    /// Folder permissions (`Get-MailboxFolderPermission`): Outlook delegates' Tasks and Inbox
    /// rights, shared folders, a shared mailbox's per-folder rights.
    Folder,
}

impl PermissionType {
    pub const ALL: [PermissionType; 5] = [
        PermissionType::FullAccess,
        PermissionType::SendAs,
        PermissionType::SendOnBehalf,
        PermissionType::Calendar,
        PermissionType::Folder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionType::FullAccess => "full_access",
            PermissionType::SendAs => "send_as",
            PermissionType::SendOnBehalf => "send_on_behalf",
            PermissionType::Calendar => "calendar",
            PermissionType::Folder => "folder",
        }
    }

    /// Read mailbox by mailbox (Full Access, calendars, folders); the others are read
    /// tenant-wide (Send As from the recipient listing, Send on Behalf from the mailbox list).
    pub fn is_per_mailbox(self) -> bool {
        matches!(
            self,
            PermissionType::FullAccess | PermissionType::Calendar | PermissionType::Folder
        )
    }

    /// The name the report uses in `permission` (Exchange's vocabulary).
    pub fn report_name(self) -> &'static str {
        match self {
            PermissionType::FullAccess => "FullAccess",
            PermissionType::SendAs => "SendAs",
            PermissionType::SendOnBehalf => "SendOnBehalf",
            PermissionType::Calendar => "CalendarDelegate",
            PermissionType::Folder => "FolderPermission",
        }
    }

    pub fn parse(s: &str) -> Option<PermissionType> {
        PermissionType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn allowed_values() -> String {
        PermissionType::ALL.map(|t| t.as_str()).join(", ")
    }
}

impl fmt::Display for PermissionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run goes about it (`mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RunMode {
    /// Discover live, remove, verify.
    #[default]
    Revoke,
    /// First remove what the newest permission index lists for the user, at once; then the
    /// live discovery and verification of a revoke run.
    Contain,
    /// Remove the grants of a trustee that no longer exists (a deleted user's orphaned SID, a
    /// name nothing resolves to, an external calendar share), named by the value Exchange or
    /// Graph shows (`trustee`): no user is looked up, and the value must name no one now.
    Cleanup,
}

impl RunMode {
    pub const ALL: [RunMode; 3] = [RunMode::Revoke, RunMode::Contain, RunMode::Cleanup];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_default(&self) -> bool {
        *self == RunMode::Revoke
    }
}

/// A rejected request: which field, and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct InvalidRequest {
    pub field: String,
    pub message: String,
}

impl InvalidRequest {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The §2 error body: `{"error":{"code","message","field"}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"error": {"code": "invalid_request", "message": self.to_string(), "field": self.field}})
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRequest {
    /// The user; for a cleanup run, the trustee value as Exchange or Graph shows it.
    pub user_email: String,
    pub company_id: String,
    /// `None`: the org's `m365_permission_removal_scope`, else all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_types: Option<Vec<PermissionType>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_mailboxes: Vec<String>,
    pub remove_from_shared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    pub dry_run: bool,
    /// A dry run updates the ticket and mails the report only when asked (a live run always
    /// does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify: bool,
    /// Reported in a digest: the run adds no note, email or post of its own; the caller that
    /// started it with others (an access review's `--revoke`) reports them all at once, with
    /// each run's id and outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set by security automation (EventBridge `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Which alert system raised it (`defender`, `sentinel`, `entra_id_protection`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_source: Option<String>,
    #[serde(default, skip_serializing_if = "RunMode::is_default")]
    pub mode: RunMode,
    /// Also contain the user's own mailbox: forwarding, forwarding/deleting inbox rules,
    /// recent delegates (alert triggers set it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub victim_mailbox: bool,
    /// With `victim_mailbox`: remove the recent delegates on it too, not only list them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_recent_delegates: bool,
    /// Read every folder of every mailbox live for folder permissions, not only the
    /// well-known folders (and those the permission index lists for the user).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_folders: bool,
    /// Who sent the request, as the trigger proved it (IAM principal ARN, SQS sender, EventBridge
    /// account and source, HMAC caller, OS user): set by intake, never taken from the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_principal: Option<String>,
}

const KNOWN_FIELDS: &[&str] = &[
    "user_email",
    "company_id",
    "permission_types",
    "target_mailboxes",
    "remove_from_shared",
    "ticket_id",
    "dry_run",
    "notify",
    "requested_by",
    "reason",
    "incident_id",
    "severity",
    "alert_source",
    "mode",
    "victim_mailbox",
    "remove_recent_delegates",
    "trustee",
    "digest",
    "all_folders",
];

/// What a cleanup run can check: Send on Behalf is a link to a recipient object, which Exchange
/// drops with the object, so there is nothing left to name by value.
pub const CLEANUP_TYPES: [PermissionType; 3] = [
    PermissionType::FullAccess,
    PermissionType::SendAs,
    PermissionType::Calendar,
];

impl RevocationRequest {
    /// Parses and validates a request body. Unknown fields are rejected so that a typo such as
    /// `permision_types` cannot silently widen the scope to "all".
    pub fn from_json(body: &Value) -> Result<RevocationRequest, InvalidRequest> {
        let obj = body.as_object().ok_or_else(|| {
            InvalidRequest::new(
                "body",
                format!("expected a JSON object, got {}", json_type(body)),
            )
        })?;
        if obj.contains_key("requested_by_principal") {
            return Err(InvalidRequest::new(
                "requested_by_principal",
                "is set by Revoke365 from the caller's proven identity and cannot be given in a request",
            ));
        }
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(InvalidRequest::new(
                unknown.clone(),
                format!("unknown field; allowed fields: {}", KNOWN_FIELDS.join(", ")),
            ));
        }
        let mode = mode(obj)?;
        let user_email = match mode {
            RunMode::Cleanup => cleanup_trustee(obj)?,
            _ if obj.contains_key("trustee") => {
                return Err(InvalidRequest::new(
                    "trustee",
                    "applies only with \"mode\": \"cleanup\" (name a user in user_email)",
                ))
            }
            _ => validate_email("user_email", &required_string(obj, "user_email")?)?,
        };
        let company_id = required_string(obj, "company_id")?;
        validate_company_id(&company_id)?;

        let mut permission_types = permission_types(obj)?;
        if mode == RunMode::Cleanup {
            permission_types = Some(cleanup_types(permission_types)?);
        }
        let target_mailboxes = target_mailboxes(obj)?;
        let ticket_id = ticket_id(obj)?;
        let requested_by = limited_string(obj, "requested_by", 256)?;
        let reason = limited_string(obj, "reason", 2000)?;
        let remove_recent_delegates =
            optional_bool(obj, "remove_recent_delegates")?.unwrap_or(false);
        if remove_recent_delegates && optional_bool(obj, "victim_mailbox")? != Some(true) {
            return Err(InvalidRequest::new(
                "remove_recent_delegates",
                "applies only with \"victim_mailbox\": true",
            ));
        }

        let all_folders = optional_bool(obj, "all_folders")?.unwrap_or(false);
        if all_folders
            && permission_types
                .as_ref()
                .is_some_and(|t| !t.contains(&PermissionType::Folder))
        {
            return Err(InvalidRequest::new(
                "all_folders",
                "applies only when permission_types includes \"folder\"",
            ));
        }

        Ok(RevocationRequest {
            user_email,
            company_id,
            permission_types,
            target_mailboxes,
            remove_from_shared: optional_bool(obj, "remove_from_shared")?.unwrap_or(true),
            ticket_id,
            dry_run: optional_bool(obj, "dry_run")?.unwrap_or(false),
            notify: optional_bool(obj, "notify")?.unwrap_or(false),
            digest: optional_bool(obj, "digest")?.unwrap_or(false),
            requested_by,
            reason,
            incident_id: printable_string(obj, "incident_id", 256)?,
            severity: printable_string(obj, "severity", 64)?,
            alert_source: alert_source(obj)?,
            mode,
            victim_mailbox: optional_bool(obj, "victim_mailbox")?.unwrap_or(false),
            remove_recent_delegates,
            all_folders,
            requested_by_principal: None,
        })
    }

    /// The permission types this run covers, given the org's default scope.
    pub fn effective_scope(&self, org_scope: &[PermissionType]) -> Vec<PermissionType> {
        match &self.permission_types {
            Some(types) => types.clone(),
            None if !org_scope.is_empty() => org_scope.to_vec(),
            None => PermissionType::ALL.to_vec(),
        }
    }

    /// Whether the run may create a ticket, add a note or send an email: a dry run changes
    /// nothing anywhere unless `notify` asks for it.
    pub fn notifies(&self) -> bool {
        !self.digest && (!self.dry_run || self.notify)
    }

    /// The requestor's address, when `requested_by` is one.
    pub fn requestor_email(&self) -> Option<String> {
        self.requested_by
            .as_deref()
            .and_then(|r| validate_email("requested_by", r).ok())
    }
}

/// `permission_types`: absent for the default scope, else a non-empty list of known types.
pub(super) fn permission_types(
    obj: &Map<String, Value>,
) -> Result<Option<Vec<PermissionType>>, InvalidRequest> {
    Ok(match obj.get("permission_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(InvalidRequest::new(
                    "permission_types",
                    format!(
                        "must not be empty; omit it for the default scope; allowed: {}",
                        PermissionType::allowed_values()
                    ),
                ));
            }
            let mut types = Vec::new();
            for item in items {
                let t = item
                    .as_str()
                    .and_then(PermissionType::parse)
                    .ok_or_else(|| {
                        InvalidRequest::new(
                            "permission_types",
                            format!(
                                "unknown permission type {item}; allowed: {}",
                                PermissionType::allowed_values()
                            ),
                        )
                    })?;
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            types.sort();
            Some(types)
        }
        Some(other) => {
            return Err(InvalidRequest::new(
                "permission_types",
                format!(
                    "expected an array of strings, got {}; allowed values: {}",
                    json_type(other),
                    PermissionType::allowed_values()
                ),
            ))
        }
    })
}

/// `mode`: `revoke` (the default) or `contain`.
/// A cleanup run's `trustee`: the value as shown (a SID, a name, an address), at most 256
/// characters; `user_email` and `victim_mailbox` do not apply.
fn cleanup_trustee(obj: &Map<String, Value>) -> Result<String, InvalidRequest> {
    for field in ["user_email", "victim_mailbox"] {
        if obj.contains_key(field) {
            return Err(InvalidRequest::new(
                field,
                "does not apply to a cleanup run, which names the trustee as Exchange shows it in trustee",
            ));
        }
    }
    let value = required_string(obj, "trustee")?;
    if value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(InvalidRequest::new(
            "trustee",
            "must be the value Exchange shows (a SID, a name or an address) of at most 256 characters, without control characters",
        ));
    }
    Ok(value)
}

/// The types a cleanup run covers: those asked for (none: all it can check).
fn cleanup_types(
    asked: Option<Vec<PermissionType>>,
) -> Result<Vec<PermissionType>, InvalidRequest> {
    match asked {
        None => Ok(CLEANUP_TYPES.to_vec()),
        Some(types) if types.contains(&PermissionType::SendOnBehalf) => Err(InvalidRequest::new(
            "permission_types",
            "a cleanup run cannot remove send_on_behalf (Exchange keeps it as a link to the recipient, dropped with it); allowed: full_access, send_as, calendar",
        )),
        Some(types) => Ok(types),
    }
}

fn mode(obj: &Map<String, Value>) -> Result<RunMode, InvalidRequest> {
    let allowed = || RunMode::ALL.map(|m| m.as_str()).join(", ");
    match obj.get("mode") {
        None | Some(Value::Null) => Ok(RunMode::Revoke),
        Some(Value::String(s)) => RunMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                InvalidRequest::new(
                    "mode",
                    format!("unknown mode {s:?}; allowed: {}", allowed()),
                )
            }),
        Some(other) => Err(InvalidRequest::new(
            "mode",
            format!(
                "expected a string, got {}; allowed: {}",
                json_type(other),
                allowed()
            ),
        )),
    }
}

/// `alert_source`: a short name of letters, digits, `_` and `-`.
fn alert_source(obj: &Map<String, Value>) -> Result<Option<String>, InvalidRequest> {
    let value = limited_string(obj, "alert_source", 64)?;
    if let Some(v) = &value {
        if !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(InvalidRequest::new(
                "alert_source",
                "must be a name of letters, digits, '_' and '-' (e.g. defender, sentinel)",
            ));
        }
    }
    Ok(value)
}

/// The most mailboxes a request may name: more is a request for every mailbox, or a mistake.
pub const MAX_TARGET_MAILBOXES: usize = 1000;

/// `target_mailboxes`: addresses, without duplicates (none: every mailbox), at most
/// [`MAX_TARGET_MAILBOXES`] (counted before anything else is looked at).
pub(super) fn target_mailboxes(obj: &Map<String, Value>) -> Result<Vec<String>, InvalidRequest> {
    Ok(match obj.get("target_mailboxes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_TARGET_MAILBOXES => {
            return Err(InvalidRequest::new(
                "target_mailboxes",
                format!(
                    "{} mailboxes named; at most {MAX_TARGET_MAILBOXES} (leave it out for every mailbox)",
                    items.len()
                ),
            ))
        }
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for item in items {
                let s = item.as_str().ok_or_else(|| {
                    InvalidRequest::new(
                        "target_mailboxes",
                        format!(
                            "expected an array of email addresses, found {}",
                            json_type(item)
                        ),
                    )
                })?;
                let mailbox = validate_email("target_mailboxes", s)?;
                if seen.insert(mailbox.clone()) {
                    out.push(mailbox);
                }
            }
            out
        }
        Some(other) => {
            return Err(InvalidRequest::new(
                "target_mailboxes",
                format!(
                    "expected an array of email addresses, got {}",
                    json_type(other)
                ),
            ))
        }
    })
}

/// The most characters a ticket id has, in any PSA (ConnectWise and Autotask number theirs,
/// HaloPSA's are numbers too; the bound leaves room for a prefix).
pub const MAX_TICKET_ID: usize = 64;

/// `ticket_id`: a string or a number, of at most [`MAX_TICKET_ID`] printable characters. Which
/// ticket ids the company's PSA takes is checked once its settings are read
/// ([`PsaKind::ticket_id_error`](super::PsaKind::ticket_id_error)); this bound comes first,
/// before any I/O.
pub(super) fn ticket_id(obj: &Map<String, Value>) -> Result<Option<String>, InvalidRequest> {
    printable_string(obj, "ticket_id", MAX_TICKET_ID).map_err(|_| {
        InvalidRequest::new(
            "ticket_id",
            format!(
                "must be a ticket id of 1 to {MAX_TICKET_ID} printable characters (e.g. 48213)"
            ),
        )
    })
}

/// An optional string of at most `max` characters, none of them a control character.
pub(super) fn printable_string(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, InvalidRequest> {
    let value = optional_string(obj, field)?;
    if let Some(v) = &value {
        if let Some(why) = unprintable(v, max) {
            return Err(InvalidRequest::new(field, why));
        }
    }
    Ok(value)
}

/// Why `value` is not a string of at most `max` printable characters (None: it is).
pub fn unprintable(value: &str, max: usize) -> Option<String> {
    if value.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// An optional string of at most `max` bytes.
pub(super) fn limited_string(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, InvalidRequest> {
    let value = optional_string(obj, field)?;
    if value.as_ref().is_some_and(|v| v.len() > max) {
        return Err(InvalidRequest::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value)
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn required_string(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<String, InvalidRequest> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(InvalidRequest::new(field, "is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(InvalidRequest::new(field, "must not be empty"))
        }
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(other) => Err(InvalidRequest::new(
            field,
            format!("expected a string, got {}", json_type(other)),
        )),
    }
}

pub(super) fn optional_string(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, InvalidRequest> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        // ConnectWise ticket ids are integers; accept them and keep them as strings end to end.
        Some(Value::Number(n)) if field == "ticket_id" && n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(InvalidRequest::new(
            field,
            format!("expected a string, got {}", json_type(other)),
        )),
    }
}

pub(super) fn optional_bool(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<bool>, InvalidRequest> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(InvalidRequest::new(
            field,
            format!("expected true or false, got {}", json_type(other)),
        )),
    }
}

/// Validates an SMTP address and returns it lowercased. Deliberately strict: this address
/// decides whose access is removed.
pub fn validate_email(field: &str, raw: &str) -> Result<String, InvalidRequest> {
    let value = raw.trim();
    let bad = |why: &str| {
        InvalidRequest::new(
            field,
            format!("'{value}' is not a valid email address ({why}); expected user@domain.tld"),
        )
    };
    if value.is_empty() {
        return Err(InvalidRequest::new(field, "must not be empty"));
    }
    if value.len() > 254 {
        // Not given back: a flood is not worth echoing.
        return Err(InvalidRequest::new(
            field,
            "is not a valid email address (longer than 254 characters); expected user@domain.tld",
        ));
    }
    let (local, domain) = value.split_once('@').ok_or_else(|| bad("missing '@'"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before '@' must be 1 to 64 characters"));
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(bad("invalid characters before '@'"));
    }
    if !is_domain_name(domain) {
        return Err(bad("invalid domain"));
    }
    Ok(value.to_ascii_lowercase())
}

/// A DNS name of two labels or more (`acme.com`): letters, digits and inner hyphens, no
/// wildcard.
pub(crate) fn is_domain_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub(crate) fn validate_company_id(id: &str) -> Result<(), InvalidRequest> {
    let ok = id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::new(
            "company_id",
            "must be 1 to 64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<RevocationRequest, InvalidRequest> {
        RevocationRequest::from_json(&v)
    }

    #[test]
    fn a_flood_of_target_mailboxes_is_refused_at_once_and_duplicates_fold() {
        let many: Vec<String> = (0..150_000).map(|i| format!("m{i}@acme.com")).collect();
        let e =
            parse(json!({"user_email": "a@b.com", "company_id": "acme", "target_mailboxes": many}))
                .unwrap_err();
        assert_eq!(e.field, "target_mailboxes");
        // Refused by its count, before any of the 150,000 addresses is looked at.
        assert!(
            e.message.contains("150000 mailboxes named; at most 1000"),
            "{e}"
        );
        let twice: Vec<String> = (0..1000).map(|i| format!("M{}@acme.com", i % 10)).collect();
        let r = parse(
            json!({"user_email": "a@b.com", "company_id": "acme", "target_mailboxes": twice}),
        )
        .unwrap();
        assert_eq!(r.target_mailboxes.len(), 10);
    }

    #[test]
    fn mode_and_victim_fields_are_checked() {
        let base = json!({"user_email": "a@b.com", "company_id": "acme"});
        let r = parse(base.clone()).unwrap();
        assert_eq!(
            (r.mode, r.victim_mailbox, r.alert_source),
            (RunMode::Revoke, false, None)
        );
        let mut v = base.clone();
        v["mode"] = json!("contain");
        v["victim_mailbox"] = json!(true);
        v["remove_recent_delegates"] = json!(true);
        v["alert_source"] = json!("defender");
        let r = parse(v).unwrap();
        assert_eq!(r.mode, RunMode::Contain);
        assert!(r.victim_mailbox && r.remove_recent_delegates);
        assert_eq!(r.alert_source.as_deref(), Some("defender"));
        let mut v = base.clone();
        v["mode"] = json!("nuke");
        let e = parse(v).unwrap_err();
        assert_eq!(e.field, "mode");
        assert!(e.message.contains("revoke, contain"), "{}", e.message);
        let mut v = base.clone();
        v["remove_recent_delegates"] = json!(true);
        assert_eq!(parse(v).unwrap_err().field, "remove_recent_delegates");
        let mut v = base;
        v["alert_source"] = json!("a b");
        assert_eq!(parse(v).unwrap_err().field, "alert_source");
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let r =
            parse(json!({"user_email": "John.Smith@AcmeCorp.com", "company_id": "acme"})).unwrap();
        assert_eq!(r.user_email, "john.smith@acmecorp.com");
        assert!(r.remove_from_shared);
        assert!(!r.dry_run);
        assert_eq!(r.effective_scope(&[]), PermissionType::ALL.to_vec());
        assert_eq!(
            r.effective_scope(&[PermissionType::SendAs]),
            vec![PermissionType::SendAs]
        );
    }

    #[test]
    fn each_bad_input_names_its_field() {
        let cases = [
            (
                json!({"user_email": "not-an-email", "company_id": "acme"}),
                "user_email",
                "not a valid email",
            ),
            (
                json!({"user_email": "", "company_id": "acme"}),
                "user_email",
                "must not be empty",
            ),
            (json!({"company_id": "acme"}), "user_email", "is required"),
            (
                json!({"user_email": 5, "company_id": "acme"}),
                "user_email",
                "expected a string",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "permission_types": ["full_access", "read"]}),
                "permission_types",
                "full_access, send_as, send_on_behalf, calendar",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "permission_types": "full_access"}),
                "permission_types",
                "expected an array",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "target_mailboxes": ["ceo@"]}),
                "target_mailboxes",
                "not a valid email",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "dry_run": "yes"}),
                "dry_run",
                "expected true or false",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "dry_run": true, "notify": "please"}),
                "notify",
                "expected true or false",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "ac me"}),
                "company_id",
                "letters, digits",
            ),
            (
                json!({"user_email": "a@b.com", "company_id": "acme", "permision_types": []}),
                "permision_types",
                "unknown field",
            ),
            (json!(["a@b.com"]), "body", "expected a JSON object"),
        ];
        for (body, field, needle) in cases {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(err.field, field, "{body}");
            assert!(err.message.contains(needle), "{body}: {}", err.message);
            assert_eq!(err.to_json()["error"]["field"], field);
        }
    }

    #[test]
    fn a_dry_run_notifies_only_when_asked() {
        let dry =
            parse(json!({"user_email": "a@b.com", "company_id": "acme", "dry_run": true})).unwrap();
        assert!(!dry.notifies());
        let asked = parse(
            json!({"user_email": "a@b.com", "company_id": "acme", "dry_run": true, "notify": true}),
        )
        .unwrap();
        assert!(asked.notifies());
        let live = parse(json!({"user_email": "a@b.com", "company_id": "acme"})).unwrap();
        assert!(live.notifies());
        // Runs stored before the field existed read as not asking.
        let mut stored = serde_json::to_value(&dry).unwrap();
        assert!(stored.get("notify").is_none());
        stored["dry_run"] = json!(true);
        let back: RevocationRequest = serde_json::from_value(stored).unwrap();
        assert!(!back.notify);
    }

    #[test]
    fn ticket_and_incident_ids_are_bounded_and_printable() {
        let base = json!({"user_email": "a@b.com", "company_id": "acme"});
        for (field, value) in [
            ("ticket_id", json!("1".repeat(MAX_TICKET_ID + 1))),
            ("ticket_id", json!("482\n13")),
            ("incident_id", json!("i".repeat(257))),
            ("severity", json!("high\u{7}")),
        ] {
            let mut v = base.clone();
            v[field] = value;
            let e = parse(v).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let mut v = base;
        v["ticket_id"] = json!("T20260115.0042");
        assert_eq!(
            parse(v).unwrap().ticket_id.as_deref(),
            Some("T20260115.0042")
        );
    }

    #[test]
    fn numeric_ticket_ids_are_kept_as_strings() {
        let r = parse(json!({"user_email": "a@b.com", "company_id": "acme", "ticket_id": 48213}))
            .unwrap();
        assert_eq!(r.ticket_id.as_deref(), Some("48213"));
    }

    #[test]
    fn a_cleanup_names_its_trustee_as_shown_and_cannot_reach_send_on_behalf() {
        let sid = "S-1-5-21-1004336348-1177238915-682003330-5001";
        let r = parse(json!({"mode": "cleanup", "trustee": sid, "company_id": "acme"})).unwrap();
        assert_eq!(r.mode, RunMode::Cleanup);
        assert_eq!(r.user_email, sid);
        assert_eq!(r.permission_types, Some(CLEANUP_TYPES.to_vec()));
        let r = parse(json!({"mode": "cleanup", "trustee": "Old Temp Account", "company_id": "acme", "digest": true}))
            .unwrap();
        assert!(r.digest && !r.notifies());
        for (body, field) in [
            (json!({"mode": "cleanup", "company_id": "acme"}), "trustee"),
            (
                json!({"mode": "cleanup", "trustee": sid, "user_email": "a@b.com", "company_id": "acme"}),
                "user_email",
            ),
            (
                json!({"mode": "cleanup", "trustee": sid, "company_id": "acme", "victim_mailbox": true}),
                "victim_mailbox",
            ),
            (
                json!({"mode": "cleanup", "trustee": sid, "company_id": "acme", "permission_types": ["send_on_behalf"]}),
                "permission_types",
            ),
            (
                json!({"mode": "cleanup", "trustee": "a\u{7}b", "company_id": "acme"}),
                "trustee",
            ),
            (
                json!({"user_email": "a@b.com", "trustee": sid, "company_id": "acme"}),
                "trustee",
            ),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        }
    }
}
