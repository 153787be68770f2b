//! A mailbox's folders as Exchange shows them: the well-known folders named in the mailbox's
//! language, the user's own folders under them, and the non-IPM folders a folder listing also
//! returns.
//!
//! What the simulator reproduces (Exchange Online, `Get-MailboxFolderStatistics` and the
//! `*-MailboxFolderPermission` cmdlets):
//! - Names are localized (`Posteingang`, `Kalender`, `Aufgaben`); `FolderType` is not
//!   (`Inbox`, `Calendar`, `Tasks`; a user's folder is `User Created`). Find folders by type.
//! - `FolderPath` separates names with `/` and writes a `/` inside a name as U+F8FF; the root
//!   is `/`. A permission cmdlet's `Identity` is `<mailbox>:\<names joined by \>` with the
//!   name's own `/` written as is (`ceo@x.com:\Inbox\Q1/Q2`), or `<mailbox>:<FolderId>`.
//! - The recoverable-items folders are listed but are not in the IPM subtree: permission
//!   cmdlets do not find them.

use crate::fixture::{fnv1a, Mailbox};

/// U+F8FF: how `FolderPath` writes a `/` that is part of a folder's name.
pub(crate) const SLASH_IN_NAME: char = '\u{F8FF}';

/// The folder types every mailbox has, with their English and German names.
const WELL_KNOWN: &[(&str, &str, &str)] = &[
    ("Inbox", "Inbox", "Posteingang"),
    ("Calendar", "Calendar", "Kalender"),
    ("Contacts", "Contacts", "Kontakte"),
    ("Tasks", "Tasks", "Aufgaben"),
    ("Notes", "Notes", "Notizen"),
    ("Journal", "Journal", "Journal"),
    ("SentItems", "Sent Items", "Gesendete Elemente"),
    ("Drafts", "Drafts", "Entwürfe"),
    ("DeletedItems", "Deleted Items", "Gelöschte Elemente"),
    ("JunkEmail", "Junk Email", "Junk-E-Mail"),
    ("Outbox", "Outbox", "Postausgang"),
    ("Archive", "Archive", "Archiv"),
];

const ROOT_NAMES: (&str, &str) = (
    "Top of Information Store",
    "Oberste Ebene des Informationsspeichers",
);

/// The folder type of a user's own folder.
pub(crate) const USER_CREATED: &str = "User Created";

/// One folder of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folder {
    /// `FolderId`: stable per mailbox and path.
    pub id: String,
    /// The names from the root down (empty for the root).
    pub names: Vec<String>,
    pub folder_type: String,
    /// Folder permissions can be read and changed (the IPM subtree).
    pub ipm: bool,
    /// Exchange refuses changes to its permissions.
    pub refuses_changes: bool,
    /// Its items are appointments: the default calendar and the folders under it.
    pub calendar: bool,
}

impl Folder {
    fn new(upn: &str, names: Vec<String>, folder_type: &str, ipm: bool) -> Folder {
        let key = format!("{upn}:\\{}", names.join("\\")).to_lowercase();
        Folder {
            id: format!("LgAAAAD{:016X}AQ", fnv1a(key.as_bytes())),
            names,
            folder_type: folder_type.to_string(),
            ipm,
            refuses_changes: false,
            calendar: folder_type == "Calendar",
        }
    }

    /// `Name`: the last name of the path (the root's own name for the root).
    pub fn name<'a>(&'a self, root_name: &'a str) -> &'a str {
        self.names.last().map_or(root_name, String::as_str)
    }

    /// `FolderPath`: `/Inbox/Projects`, a `/` inside a name as U+F8FF; `/` for the root.
    pub fn folder_path(&self) -> String {
        let names: Vec<String> = self
            .names
            .iter()
            .map(|n| n.replace('/', &SLASH_IN_NAME.to_string()))
            .collect();
        format!("/{}", names.join("/"))
    }

    /// The folder part of a permission cmdlet's `Identity`: `\Inbox\Projects`, `\` for the root.
    pub fn identity_path(&self) -> String {
        format!("\\{}", self.names.join("\\"))
    }

    /// Is this the default calendar (whose permissions Graph's `/calendar` shows)?
    pub fn is_default_calendar(&self) -> bool {
        self.folder_type == "Calendar"
    }
}

/// The folders of a fixture mailbox: root, the well-known folders in the mailbox's language,
/// the fixture's folders (and their parents), and the recoverable-items folders.
pub(crate) fn mailbox_folders(upn: &str, mailbox: Option<&Mailbox>) -> Vec<Folder> {
    let german = mailbox
        .and_then(|m| m.language.as_deref())
        .is_some_and(|l| l.to_ascii_lowercase().starts_with("de"));
    let mut folders = vec![Folder::new(upn, Vec::new(), "Root", true)];
    for (folder_type, english, deutsch) in WELL_KNOWN {
        let name = match (
            *folder_type,
            mailbox.and_then(|m| m.calendar_folder_name.as_deref()),
        ) {
            ("Calendar", Some(localized)) => localized,
            _ if german => deutsch,
            _ => english,
        };
        folders.push(Folder::new(upn, vec![name.to_string()], folder_type, true));
    }
    for entry in mailbox.map(|m| m.folders.as_slice()).unwrap_or_default() {
        let names = split_path(&entry.path);
        for depth in 1..=names.len() {
            let path = &names[..depth];
            if find_by_names(&folders, path).is_none() {
                let mut folder = Folder::new(upn, path.to_vec(), USER_CREATED, true);
                folder.calendar = find_by_names(&folders, &path[..depth - 1])
                    .is_some_and(|parent| folders[parent].calendar);
                folders.push(folder);
            }
        }
        if let Some(index) = find_by_names(&folders, &names) {
            folders[index].refuses_changes |= entry.refuses_changes;
        }
    }
    for (names, folder_type) in [
        (vec!["Recoverable Items"], "RecoverableItemsRoot"),
        (
            vec!["Recoverable Items", "Deletions"],
            "RecoverableItemsDeletions",
        ),
        (
            vec!["Recoverable Items", "Purges"],
            "RecoverableItemsPurges",
        ),
    ] {
        let names = names.into_iter().map(str::to_string).collect();
        folders.push(Folder::new(upn, names, folder_type, false));
    }
    folders
}

/// The root's `Name` in the mailbox's language.
pub(crate) fn root_name(mailbox: Option<&Mailbox>) -> &'static str {
    match mailbox.and_then(|m| m.language.as_deref()) {
        Some(l) if l.to_ascii_lowercase().starts_with("de") => ROOT_NAMES.1,
        _ => ROOT_NAMES.0,
    }
}

/// `\Inbox\Projects` → `["Inbox", "Projects"]`; `\` → `[]`.
pub(crate) fn split_path(path: &str) -> Vec<String> {
    path.split('\\')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

fn find_by_names(folders: &[Folder], names: &[String]) -> Option<usize> {
    folders.iter().position(|f| {
        f.names.len() == names.len()
            && f.names
                .iter()
                .zip(names)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    })
}

/// The folder a permission cmdlet's folder part names: `\Inbox\Projects` (names as shown,
/// case-insensitive) or a `FolderId`. A name written with U+F8FF (as `FolderPath` shows it)
/// does not match: Exchange wants the `/` back.
pub(crate) fn find<'a>(folders: &'a [Folder], folder: &str) -> Option<&'a Folder> {
    if folder.starts_with('\\') {
        find_by_names(folders, &split_path(folder)).map(|i| &folders[i])
    } else {
        folders.iter().find(|f| f.id == folder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(json: &str) -> Mailbox {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn german_names_types_and_paths_with_a_slash() {
        let m = mailbox(
            r#"{"upn":"ceo@x.com","language":"de-DE","folders":[
                {"path":"\\Posteingang\\Q1/Q2 Berichte"},
                {"path":"\\Kalender\\Vorstand"}]}"#,
        );
        let folders = mailbox_folders("ceo@x.com", Some(&m));
        let inbox = folders.iter().find(|f| f.folder_type == "Inbox").unwrap();
        assert_eq!(inbox.names, ["Posteingang"]);
        let reports = find(&folders, "\\posteingang\\Q1/Q2 Berichte").unwrap();
        assert_eq!(reports.folder_type, USER_CREATED);
        assert_eq!(reports.folder_path(), "/Posteingang/Q1\u{F8FF}Q2 Berichte");
        assert!(find(&folders, "\\Posteingang\\Q1\u{F8FF}Q2 Berichte").is_none());
        assert!(find(&folders, "\\Inbox").is_none());
        assert!(find(&folders, &reports.id).is_some());
        let board = find(&folders, "\\Kalender\\Vorstand").unwrap();
        assert!(board.calendar && !board.is_default_calendar());
        assert_eq!(find(&folders, "\\").unwrap().folder_type, "Root");
        assert_eq!(
            root_name(Some(&m)),
            "Oberste Ebene des Informationsspeichers"
        );
        assert!(!find(&folders, "\\Recoverable Items").unwrap().ipm);
    }
}
