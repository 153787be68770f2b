//! A request to put back what an earlier run removed (`revoke365 restore RUN_ID`,
//! `POST /revocations/{run_id}/restore`).

use super::request::{
    json_type, limited_string, optional_bool, permission_types, target_mailboxes,
};
use super::{InvalidRequest, PermissionType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// Only grants of these types (none: every type the run removed).
    pub permission_types: Option<Vec<PermissionType>>,
    /// Only grants on these mailboxes (none: every mailbox).
    pub target_mailboxes: Vec<String>,
    /// Say what would be put back; change nothing.
    pub dry_run: bool,
    /// Also put back grants whose user a later run revoked again.
    pub include_revoked: bool,
    /// Also put back what the run changed on the user's own mailbox (`victim_mailbox`: its
    /// forwarding, the inbox rules it disabled, recent delegates it removed). Never implied:
    /// those are what an attacker set up, so a restore brings them back only when named.
    pub include_victim_mailbox: bool,
    pub requested_by: Option<String>,
    pub reason: Option<String>,
}

const KNOWN_FIELDS: &[&str] = &[
    "permission_types",
    "target_mailboxes",
    "dry_run",
    "include_revoked",
    "include_victim_mailbox",
    "requested_by",
    "reason",
];

impl RestoreRequest {
    /// Parses and validates a restore body (`{}` or no body: restore everything). Unknown
    /// fields are refused, like a revocation's.
    pub fn from_json(body: &Value) -> Result<RestoreRequest, InvalidRequest> {
        let empty = serde_json::Map::new();
        let obj = match body {
            Value::Null => &empty,
            Value::Object(obj) => obj,
            other => {
                return Err(InvalidRequest::new(
                    "body",
                    format!("expected a JSON object, got {}", json_type(other)),
                ))
            }
        };
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(InvalidRequest::new(
                unknown.clone(),
                format!(
                    "unknown field for a restore; allowed fields: {}",
                    KNOWN_FIELDS.join(", ")
                ),
            ));
        }
        Ok(RestoreRequest {
            permission_types: permission_types(obj)?,
            target_mailboxes: target_mailboxes(obj)?,
            dry_run: optional_bool(obj, "dry_run")?.unwrap_or(false),
            include_revoked: optional_bool(obj, "include_revoked")?.unwrap_or(false),
            include_victim_mailbox: optional_bool(obj, "include_victim_mailbox")?.unwrap_or(false),
            requested_by: limited_string(obj, "requested_by", 256)?,
            reason: limited_string(obj, "reason", 2000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_body_restores_everything_and_typos_are_refused() {
        assert_eq!(
            RestoreRequest::from_json(&Value::Null).unwrap(),
            RestoreRequest::default()
        );
        let r = RestoreRequest::from_json(
            &json!({"permission_types": ["send_as"], "target_mailboxes": ["A@x.example"], "dry_run": true}),
        )
        .unwrap();
        assert_eq!(r.permission_types, Some(vec![PermissionType::SendAs]));
        assert_eq!(r.target_mailboxes, ["a@x.example"]);
        assert!(r.dry_run && !r.include_revoked && !r.include_victim_mailbox);
        let e = RestoreRequest::from_json(&json!({"include_victim_mailbox": "yes"})).unwrap_err();
        assert_eq!(e.field, "include_victim_mailbox");
        let e = RestoreRequest::from_json(&json!({"include_revoke": true})).unwrap_err();
        assert_eq!(e.field, "include_revoke");
        let e = RestoreRequest::from_json(&json!({"permission_types": ["mail"]})).unwrap_err();
        assert_eq!(e.field, "permission_types");
        assert!(e.to_string().contains("full_access"), "{e}");
    }
}
