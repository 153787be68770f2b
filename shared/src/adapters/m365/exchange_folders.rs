//! Folder permissions through the Exchange admin API: `Get-MailboxFolderStatistics` lists a
//! mailbox's folders, `*-MailboxFolderPermission` reads and changes one folder's entries.
//!
//! Exchange names a folder `<mailbox>:\Inbox\Projects` (the names as shown, localized, a `/`
//! in a name written as is) and shows each entry's holder by display name; `-User` matches by
//! identity on the server, so one user's entry is always asked for by `-User`, never picked by
//! name. "No entry for this user" and "an entry exists" come as exceptions
//! ([`RemoteError::is_entry_not_found`], [`RemoteError::is_entry_exists`]).

use super::exchange::{Cmdlet, ExchangeClient};
use crate::error::RemoteError;
use crate::ports::{FolderInfo, FolderPermissionEntry, MailboxFolders, RemovalOutcome};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

const FOLDER_SELECT: &str = "Name,FolderPath,FolderId,FolderType";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FolderRow {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    folder_path: Option<String>,
    #[serde(default, deserialize_with = "loose_id")]
    folder_id: Option<String>,
    #[serde(default)]
    folder_type: Option<String>,
}

/// `FolderId` is a string, or an object carrying one (older shapes).
fn loose_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.values().find_map(|v| v.as_str().map(str::to_string)),
        _ => None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FolderPermissionRow {
    #[serde(default)]
    folder_name: Option<String>,
    #[serde(default)]
    user: Value,
    #[serde(default)]
    access_rights: Value,
    #[serde(default)]
    sharing_permission_flags: Value,
}

/// A list that may come as a list, one string, or a comma-separated string.
fn list_of(value: &Value) -> Vec<String> {
    let items: Vec<&str> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => Vec::new(),
    };
    items
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("None"))
        .map(str::to_string)
        .collect()
}

/// `User` is a display name string, or an object with one (`DisplayName`).
fn shown_user(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(o) => ["DisplayName", "displayName", "UserPrincipalName"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl From<FolderPermissionRow> for FolderPermissionEntry {
    fn from(r: FolderPermissionRow) -> FolderPermissionEntry {
        FolderPermissionEntry {
            folder_name: r.folder_name,
            user: shown_user(&r.user),
            access_rights: list_of(&r.access_rights),
            sharing_permission_flags: list_of(&r.sharing_permission_flags),
        }
    }
}

fn folder_identity(mailbox: &str, folder: &str) -> String {
    format!("{mailbox}:{folder}")
}

/// Rights and flags as the cmdlets take them.
fn put_parameters(identity: &str, user: &str, rights: &[String], flags: &[String]) -> Value {
    let mut parameters = json!({"Identity": identity, "User": user, "AccessRights": rights});
    if !flags.is_empty() {
        parameters["SharingPermissionFlags"] = json!(flags.join(","));
    }
    parameters
}

#[async_trait]
impl MailboxFolders for ExchangeClient {
    async fn folders(&self, mailbox: &str) -> Result<Vec<FolderInfo>, RemoteError> {
        let cmdlet = Cmdlet::new(
            "Get-MailboxFolderStatistics",
            json!({"Identity": mailbox, "FolderScope": "All"}),
        )
        .on_mailbox(mailbox)
        .select(FOLDER_SELECT);
        let rows: Vec<FolderRow> = self.query(cmdlet).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(FolderInfo {
                    name: r.name.unwrap_or_default(),
                    folder_path: r.folder_path?,
                    folder_id: r.folder_id,
                    folder_type: r.folder_type.unwrap_or_else(|| "User Created".into()),
                })
            })
            .collect())
    }

    async fn folder_permissions(
        &self,
        mailbox: &str,
        folder: &str,
        user: Option<&str>,
    ) -> Result<Vec<FolderPermissionEntry>, RemoteError> {
        let identity = folder_identity(mailbox, folder);
        let mut parameters = json!({"Identity": identity});
        if let Some(user) = user {
            parameters["User"] = json!(user);
        }
        let cmdlet = Cmdlet::new("Get-MailboxFolderPermission", parameters).on_mailbox(mailbox);
        match self.query::<FolderPermissionRow>(cmdlet).await {
            Ok(rows) => Ok(rows.into_iter().map(FolderPermissionEntry::from).collect()),
            Err(e) if e.is_entry_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn remove_folder_permission(
        &self,
        mailbox: &str,
        folder: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        let identity = folder_identity(mailbox, folder);
        let cmdlet = Cmdlet::new(
            "Remove-MailboxFolderPermission",
            json!({"Identity": identity, "User": user, "Confirm": false}),
        )
        .on_mailbox(mailbox);
        self.remove(cmdlet).await
    }

    async fn put_folder_permission(
        &self,
        mailbox: &str,
        folder: &str,
        user: &str,
        access_rights: &[String],
        sharing_permission_flags: &[String],
    ) -> Result<(), RemoteError> {
        let identity = folder_identity(mailbox, folder);
        let parameters = put_parameters(&identity, user, access_rights, sharing_permission_flags);
        let add =
            Cmdlet::new("Add-MailboxFolderPermission", parameters.clone()).on_mailbox(mailbox);
        match self.invoke::<Value>(add).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_entry_exists() => {
                let set =
                    Cmdlet::new("Set-MailboxFolderPermission", parameters).on_mailbox(mailbox);
                self.invoke::<Value>(set).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_in_every_shape_exchange_uses() {
        let row: FolderPermissionRow = serde_json::from_value(json!({
            "FolderName": "Kalender",
            "User": {"DisplayName": "Anna Berg", "UserType": "Internal"},
            "AccessRights": ["Editor"],
            "SharingPermissionFlags": "Delegate, CanViewPrivateItems"
        }))
        .unwrap();
        let entry = FolderPermissionEntry::from(row);
        assert_eq!(entry.user, "Anna Berg");
        assert_eq!(
            entry.sharing_permission_flags,
            ["Delegate", "CanViewPrivateItems"]
        );
        let none: FolderPermissionRow = serde_json::from_value(json!({
            "User": "Default", "AccessRights": "None", "SharingPermissionFlags": null
        }))
        .unwrap();
        let entry = FolderPermissionEntry::from(none);
        assert!(entry.is_special() && entry.access_rights.is_empty());
        assert_eq!(
            put_parameters("m:\\Tasks", "u", &["Editor".into()], &[]),
            json!({"Identity": "m:\\Tasks", "User": "u", "AccessRights": ["Editor"]})
        );
    }
}
