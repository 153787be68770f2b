//! Which folders of each mailbox a run reads for folder permissions: the well-known ones
//! (found by `FolderType`: their names are localized), every folder with `all_folders`, and
//! those the newest permission-index snapshot lists for the user (the sweep read every
//! folder). The default calendar and the calendars under it are never read here: their
//! permissions are calendar permissions (Graph reads every calendar), the `calendar` type's,
//! so a run of `folder` alone never touches a calendar.

use crate::model::{
    FolderSnapshot, Grant, OrgSettings, ResolvedUser, RevocationRequest, SnapshotRef,
};
use crate::ports::{FolderInfo, PermissionIndex};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Which folders of each mailbox a run reads for folder permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FolderReach {
    /// Every folder, not only the well-known ones (`all_folders`).
    pub all: bool,
    /// Further folders per mailbox (lowercase address → lowercase paths): those a snapshot
    /// lists for the user.
    pub extra: BTreeMap<String, BTreeSet<String>>,
}

impl FolderReach {
    /// The reach a request asks for.
    pub fn of(request: &RevocationRequest) -> FolderReach {
        FolderReach {
            all: request.all_folders,
            extra: BTreeMap::new(),
        }
    }

    /// Adds `paths` (as the permission cmdlets name them) of `mailbox`.
    pub fn with_paths(mut self, mailbox: &str, paths: &[String]) -> FolderReach {
        if !paths.is_empty() {
            self.extra
                .entry(mailbox.to_ascii_lowercase())
                .or_default()
                .extend(paths.iter().map(|p| p.to_lowercase()));
        }
        self
    }

    /// Adds the folders a snapshot lists for the user.
    pub fn with_extra<'g>(mut self, grants: impl IntoIterator<Item = &'g Grant>) -> FolderReach {
        for g in grants {
            if let Some(f) = &g.folder {
                self.extra
                    .entry(g.mailbox.to_ascii_lowercase())
                    .or_default()
                    .insert(f.path.to_lowercase());
            }
        }
        self
    }

    /// The folders of `mailbox` (as listed) whose entries are read.
    pub fn chosen<'f>(&self, mailbox: &str, folders: &'f [FolderInfo]) -> Vec<&'f FolderInfo> {
        let extra = self.extra.get(&mailbox.to_ascii_lowercase());
        let calendar_paths: Vec<String> = folders
            .iter()
            .filter(|f| f.folder_type.eq_ignore_ascii_case("Calendar"))
            .map(|f| f.folder_path.clone())
            .collect();
        let in_calendar = |f: &FolderInfo| {
            calendar_paths.iter().any(|c| {
                f.folder_path.eq_ignore_ascii_case(c)
                    || f.folder_path
                        .to_lowercase()
                        .starts_with(&format!("{}/", c.to_lowercase()))
            })
        };
        folders
            .iter()
            .filter(|f| f.holds_permissions())
            .filter(|f| !in_calendar(f))
            .filter(|f| {
                self.all
                    || f.is_well_known()
                    || extra.is_some_and(|paths| paths.contains(&f.path().to_lowercase()))
            })
            .collect()
    }
}

/// The folders the newest permission-index snapshot lists for a user: each mailbox's folders
/// (as the permission cmdlets name them) the user held rights on when the sweep read every
/// folder. A run reads them live beside the well-known ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SnapshotFolders {
    pub snapshot: Option<FolderSnapshot>,
    /// Lowercase address → paths.
    pub by_mailbox: BTreeMap<String, Vec<String>>,
}

/// [`SnapshotFolders`] of `user` from the company's newest snapshot of this tenant, no older
/// than the index's `max_index_age_days`; none when there is no such snapshot or it cannot be
/// read (the snapshot only adds folders to read, never decides anything).
pub(crate) async fn snapshot_folders(
    index: &dyn PermissionIndex,
    org: &OrgSettings,
    user: &ResolvedUser,
    run_started: DateTime<Utc>,
) -> SnapshotFolders {
    let found = async {
        let Some(summary) = index
            .find_snapshot(&org.company_id, &SnapshotRef::Newest)
            .await?
        else {
            return Ok(None);
        };
        let max_age = chrono::Duration::days(i64::from(org.index.max_index_age_days));
        if Utc::now() - summary.taken_at > max_age
            || !summary.tenant_id.eq_ignore_ascii_case(&org.tenant_id)
        {
            return Ok(None);
        }
        let mut keys: Vec<String> = [&user.upn, &user.id]
            .into_iter()
            .chain(&user.addresses)
            .map(|k| k.trim().to_ascii_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys.dedup();
        let hits = index.held_by(&summary.snapshot_id, &keys).await?;
        Ok::<_, crate::error::StoreError>(Some((summary, hits)))
    };
    let (summary, hits) = match found.await {
        Ok(Some(found)) => found,
        Ok(None) => return SnapshotFolders::default(),
        Err(e) => {
            tracing::warn!(error = %e, "the permission index could not be read; its folders are not read");
            return SnapshotFolders::default();
        }
    };
    // The user's own trustee entries only: never a group's, never a twin's.
    let own: BTreeSet<&str> = hits
        .trustees
        .iter()
        .filter(|t| {
            t.kind == crate::model::TrusteeKind::User
                && t.upn.as_deref().is_some_and(|u| user.is_user(u))
        })
        .map(|t| t.trustee_id.as_str())
        .collect();
    let mut by_mailbox: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in hits
        .grants
        .iter()
        .filter(|g| own.contains(g.trustee_id.as_str()))
    {
        if let Some(f) = &g.folder {
            let paths = by_mailbox
                .entry(g.mailbox.to_ascii_lowercase())
                .or_default();
            if !paths.iter().any(|p| p.eq_ignore_ascii_case(&f.path)) {
                paths.push(f.path.clone());
            }
        }
    }
    SnapshotFolders {
        snapshot: Some(FolderSnapshot {
            snapshot_id: summary.snapshot_id.clone(),
            taken_at: summary.taken_at,
            age_hours: (run_started - summary.taken_at).num_hours().max(0),
        }),
        by_mailbox,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str, folder_type: &str) -> FolderInfo {
        FolderInfo {
            name: path.rsplit('/').next().unwrap_or_default().to_string(),
            folder_path: path.into(),
            folder_id: None,
            folder_type: folder_type.into(),
        }
    }

    fn german_mailbox() -> Vec<FolderInfo> {
        vec![
            folder("/", "Root"),
            folder("/Posteingang", "Inbox"),
            folder("/Posteingang/Q1\u{F8FF}Q2 Berichte", "User Created"),
            folder("/Kalender", "Calendar"),
            folder("/Kalender/Vorstand", "User Created"),
            folder("/Aufgaben", "Tasks"),
            folder("/Recoverable Items", "RecoverableItemsRoot"),
        ]
    }

    fn paths(reach: &FolderReach, folders: &[FolderInfo]) -> Vec<String> {
        reach
            .chosen("klaus@x.com", folders)
            .iter()
            .map(|f| f.path())
            .collect()
    }

    #[test]
    fn well_known_by_type_every_folder_or_the_snapshots_and_never_a_calendar() {
        let folders = german_mailbox();
        assert_eq!(
            paths(&FolderReach::default(), &folders),
            ["\\", "\\Posteingang", "\\Aufgaben"]
        );
        let all = FolderReach {
            all: true,
            ..FolderReach::default()
        };
        assert_eq!(
            paths(&all, &folders),
            [
                "\\",
                "\\Posteingang",
                "\\Posteingang\\Q1/Q2 Berichte",
                "\\Aufgaben"
            ]
        );
        let snapshot = FolderReach::default().with_paths(
            "Klaus@X.com",
            &[
                "\\posteingang\\Q1/Q2 BERICHTE".into(),
                "\\Kalender\\Vorstand".into(),
            ],
        );
        assert_eq!(
            paths(&snapshot, &folders),
            [
                "\\",
                "\\Posteingang",
                "\\Posteingang\\Q1/Q2 Berichte",
                "\\Aufgaben"
            ]
        );
    }
}
