//! A request to put a mailbox's grants back as a snapshot of the permission index held them
//! (`revoke365 restore --company-id C --mailbox M --as-of SNAPSHOT_ID|DATE`,
//! `POST /backups/restore`): the "someone wiped the shared mailbox's permissions" case.

use super::request::{json_type, required_string, ticket_id, validate_company_id, validate_email};
use super::{InvalidRequest, RestoreRequest, SnapshotRef};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRestoreRequest {
    pub company_id: String,
    /// The mailbox whose grants are put back (primary SMTP address, lowercase).
    pub mailbox: String,
    /// The snapshot to put back from: by id, or the newest taken at or before a time.
    pub as_of: SnapshotRef,
    /// The ticket the note goes on (none: the PSA adapter opens one, as for a run).
    pub ticket_id: Option<String>,
    /// Types, dry run, include_revoked, requested_by and reason, as for a restore of a run
    /// (`target_mailboxes` is not allowed: the mailbox is `mailbox`).
    pub restore: RestoreRequest,
}

const OWN_FIELDS: &[&str] = &["company_id", "mailbox", "as_of", "ticket_id"];

impl BackupRestoreRequest {
    pub fn from_json(body: &Value) -> Result<BackupRestoreRequest, InvalidRequest> {
        let Value::Object(obj) = body else {
            return Err(InvalidRequest::new(
                "body",
                format!("expected a JSON object, got {}", json_type(body)),
            ));
        };
        if obj.contains_key("target_mailboxes") {
            return Err(InvalidRequest::new(
                "target_mailboxes",
                "a backup restore puts back one mailbox's grants: name it in mailbox",
            ));
        }
        let company_id = required_string(obj, "company_id")?;
        validate_company_id(&company_id)?;
        let mailbox = validate_email("mailbox", &required_string(obj, "mailbox")?)?;
        let as_of = parse_as_of(&required_string(obj, "as_of")?)?;
        let ticket_id = ticket_id(obj)?;
        let rest: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let restore = RestoreRequest::from_json(&Value::Object(rest)).map_err(|mut e| {
            if e.message.starts_with("unknown field") {
                e.message = format!("{}, {}", e.message, OWN_FIELDS.join(", "));
            }
            e
        })?;
        if restore.include_victim_mailbox {
            return Err(InvalidRequest::new(
                "include_victim_mailbox",
                "a backup restore puts back grants from a snapshot, not what a run changed on its user's own mailbox: restore that run (restore RUN_ID) to include it",
            ));
        }
        Ok(BackupRestoreRequest {
            company_id,
            mailbox,
            as_of,
            ticket_id,
            restore,
        })
    }
}

/// A snapshot id (`20261201T223831Z-1a2b3c4d`), a date (`2026-11-30`: the newest snapshot
/// taken that day or before) or an RFC 3339 time.
pub fn parse_as_of(raw: &str) -> Result<SnapshotRef, InvalidRequest> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(SnapshotRef::AsOf(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let end = d.and_hms_opt(23, 59, 59).expect("a valid time of day");
        return Ok(SnapshotRef::AsOf(end.and_utc()));
    }
    let is_id = raw.len() >= 17
        && raw.is_ascii()
        && raw[..8].bytes().all(|b| b.is_ascii_digit())
        && raw.as_bytes()[8] == b'T'
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match is_id {
        true => Ok(SnapshotRef::Id(raw.to_string())),
        false => Err(InvalidRequest::new(
            "as_of",
            format!("'{raw}' is neither a snapshot id (as `revoke365 sweep` prints it, e.g. 20261201T223831Z-1a2b3c4d), a date (YYYY-MM-DD) nor an RFC 3339 time"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_backup_restore_names_company_mailbox_and_snapshot_and_refuses_anything_else() {
        let r = BackupRestoreRequest::from_json(&json!({
            "company_id": "acme", "mailbox": "Billing@AcmeCorp.com", "as_of": "2026-11-30",
            "permission_types": ["send_as"], "include_revoked": true
        }))
        .unwrap();
        assert_eq!(r.mailbox, "billing@acmecorp.com");
        assert_eq!(
            r.as_of,
            SnapshotRef::AsOf("2026-11-30T23:59:59Z".parse().unwrap())
        );
        assert!(r.restore.include_revoked);
        assert_eq!(
            r.restore.permission_types,
            Some(vec![super::super::PermissionType::SendAs])
        );
        let id = json!({"company_id": "acme", "mailbox": "a@b.com", "as_of": "20261201T223831Z-1a2b3c4d"});
        assert_eq!(
            BackupRestoreRequest::from_json(&id).unwrap().as_of,
            SnapshotRef::Id("20261201T223831Z-1a2b3c4d".into())
        );
        for (body, field) in [
            (
                json!({"mailbox": "a@b.com", "as_of": "2026-11-30"}),
                "company_id",
            ),
            (
                json!({"company_id": "acme", "as_of": "2026-11-30"}),
                "mailbox",
            ),
            (
                json!({"company_id": "acme", "mailbox": "a@", "as_of": "2026-11-30"}),
                "mailbox",
            ),
            (json!({"company_id": "acme", "mailbox": "a@b.com"}), "as_of"),
            (
                json!({"company_id": "acme", "mailbox": "a@b.com", "as_of": "last week"}),
                "as_of",
            ),
            (
                json!({"company_id": "acme", "mailbox": "a@b.com", "as_of": "2026-11-30", "target_mailboxes": ["c@b.com"]}),
                "target_mailboxes",
            ),
            (
                json!({"company_id": "acme", "mailbox": "a@b.com", "as_of": "2026-11-30", "include_victim_mailbox": true}),
                "include_victim_mailbox",
            ),
            (
                json!({"company_id": "acme", "mailbox": "a@b.com", "as_of": "2026-11-30", "asof": 1}),
                "asof",
            ),
        ] {
            let e = BackupRestoreRequest::from_json(&body).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        }
    }
}
