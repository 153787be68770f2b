//! The folder cmdlets: `Get-MailboxFolderStatistics` and `Get-`/`Add-`/`Set-`/
//! `Remove-MailboxFolderPermission`, over the folders of [`crate::folders`].
//!
//! What Exchange does that a client must cope with: `User` is shown by display name (two
//! people can share one), so `-User` (matched by identity, server-side) is the way to find one
//! person's entry; asking for a user without an entry is an error
//! (`UserNotFoundInPermissionEntryException`), as is adding one that exists
//! (`UserAlreadyExistsInPermissionEntryException`); every folder lists `Default` and
//! `Anonymous`, which cannot be removed (`CannotRemoveSpecialUserException`); some folders
//! refuse changes (`CannotChangePermissionsOnFolderException`). The default calendar's entries
//! are the ones Graph's `calendarPermissions` shows.

use serde::Serialize;

use crate::cmdlets::{account, ensure_writable, mailbox, CmdletResult, Output, Params};
use crate::directory::{Account, Person, Principal};
use crate::exo::{exception, ExoError};
use crate::folders::{self, Folder, SLASH_IN_NAME};
use crate::state::{CalendarGrant, FolderGrant};
use crate::Sim;

const DEFAULT: &str = "Default";
const ANONYMOUS: &str = "Anonymous";
const FLAGS: &[&str] = &["Delegate", "CanViewPrivateItems"];

// ---- Get-MailboxFolderStatistics ---------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FolderStatisticsItem<'a> {
    name: &'a str,
    folder_path: String,
    folder_id: &'a str,
    folder_type: &'a str,
    identity: String,
    items_in_folder: u32,
}

/// `-FolderScope`: `All` (the default), a well-known type (that folder and the folders under
/// it) or `RecoverableItems`.
fn in_scope(person: &Person, folder: &Folder, scope: Option<&str>) -> bool {
    let Some(scope) = scope.filter(|s| !s.eq_ignore_ascii_case("All")) else {
        return true;
    };
    if scope.eq_ignore_ascii_case("RecoverableItems") {
        return !folder.ipm;
    }
    let top = folder.names.first();
    person.folders.iter().any(|f| {
        f.names.len() == 1 && Some(&f.names[0]) == top && f.folder_type.eq_ignore_ascii_case(scope)
    })
}

pub(crate) fn get_mailbox_folder_statistics(sim: &Sim, params: &Params) -> CmdletResult {
    let person = mailbox(&sim.directory, &params.required("Identity")?)?;
    if sim.unreadable(&person.upn) {
        return Err(ExoError::unreadable(&person.upn));
    }
    let scope = params.text("FolderScope")?;
    let listed: Vec<&Folder> = person
        .folders
        .iter()
        .filter(|f| in_scope(person, f, scope.as_deref()))
        .collect();
    Ok(Output::page(&listed, params.window(), |f| {
        let names: Vec<String> = f
            .names
            .iter()
            .map(|n| n.replace('/', &SLASH_IN_NAME.to_string()))
            .collect();
        FolderStatisticsItem {
            name: f.name(person.root_folder_name),
            folder_path: f.folder_path(),
            folder_id: &f.id,
            folder_type: &f.folder_type,
            identity: format!("{}\\{}", person.name, names.join("\\")),
            items_in_folder: 0,
        }
    }))
}

// ---- the folder a permission cmdlet names -------------------------------------------

/// `<mailbox>:\<path>` or `<mailbox>:<FolderId>`; folders outside the IPM subtree are not
/// found.
fn target<'a>(sim: &'a Sim, identity: &str) -> Result<(&'a Person, &'a Folder), ExoError> {
    let (mailbox_identity, folder) = identity
        .split_once(':')
        .ok_or_else(|| ExoError::not_found(identity))?;
    let person = mailbox(&sim.directory, mailbox_identity)?;
    let folder = folders::find(&person.folders, folder)
        .filter(|f| f.ipm)
        .ok_or_else(|| ExoError::not_found(identity))?;
    Ok((person, folder))
}

/// A folder's entries as a read sees them (`sim.read_lag_ms`).
pub(crate) fn entries(sim: &Sim, person: &Person, folder: &Folder) -> Vec<FolderGrant> {
    let state = sim.state();
    let grants = state.visible(&person.upn);
    if folder.is_default_calendar() {
        grants.calendar.iter().map(FolderGrant::from).collect()
    } else {
        grants.folders.get(&folder.id).cloned().unwrap_or_default()
    }
}

/// Changes a folder's entries (the default calendar's are kept as `calendar`).
pub(crate) fn write_entries<R>(
    sim: &Sim,
    person: &Person,
    folder: &Folder,
    change: impl FnOnce(&mut Vec<FolderGrant>) -> R,
) -> R {
    sim.state().write(&person.upn, |grants| {
        if folder.is_default_calendar() {
            let mut entries: Vec<FolderGrant> =
                grants.calendar.iter().map(FolderGrant::from).collect();
            let result = change(&mut entries);
            grants.calendar = entries.into_iter().map(CalendarGrant::from).collect();
            result
        } else {
            change(grants.folders.entry(folder.id.clone()).or_default())
        }
    })
}

fn special(user: &str) -> Option<&'static str> {
    [DEFAULT, ANONYMOUS]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(user.trim()))
}

fn no_entry(user: &str) -> ExoError {
    ExoError::folder(
        exception::NO_PERMISSION_ENTRY,
        format!("There is no existing permission entry found for user: {user}."),
    )
}

fn refuses(identity: &str) -> ExoError {
    ExoError::folder(
        exception::FOLDER_REFUSES,
        format!("The permissions on folder '{identity}' can't be changed."),
    )
}

/// The entries' holder as the cmdlet's `-User` names it: a recipient of the tenant.
fn holder<'a>(sim: &'a Sim, user: &'a str) -> Result<Account<'a>, ExoError> {
    match account(&sim.directory, user)? {
        Account::Verbatim(_) => Err(ExoError::not_found(user)),
        known => Ok(known),
    }
}

// ---- Get-MailboxFolderPermission -------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FolderPermissionItem {
    identity: String,
    folder_name: String,
    user: String,
    access_rights: Vec<String>,
    /// `Delegate, CanViewPrivateItems`, or null.
    sharing_permission_flags: Option<String>,
    is_valid: bool,
}

pub(crate) fn get_mailbox_folder_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let identity = params.required("Identity")?;
    let (person, folder) = target(sim, &identity)?;
    if sim.unreadable(&person.upn) {
        return Err(ExoError::unreadable(&person.upn));
    }
    let item = |user: String, rights: Vec<String>, flags: &[String]| FolderPermissionItem {
        identity: format!("{}:{}", person.name, folder.identity_path()),
        folder_name: folder.name(person.root_folder_name).to_string(),
        user,
        access_rights: rights,
        sharing_permission_flags: (!flags.is_empty()).then(|| flags.join(", ")),
        is_valid: true,
    };
    let default_rights = if folder.calendar {
        "AvailabilityOnly"
    } else {
        "None"
    };
    let specials = [(DEFAULT, default_rights), (ANONYMOUS, "None")]
        .map(|(user, rights)| item(user.to_string(), vec![rights.to_string()], &[]));
    let user = params.text("User")?;
    if let Some(name) = user.as_deref().and_then(special) {
        return Ok(Output::items(
            specials.into_iter().filter(|s| s.user == name),
        ));
    }
    let account = user.as_deref().map(|u| holder(sim, u)).transpose()?;
    let shown: Vec<FolderPermissionItem> = entries(sim, person, folder)
        .into_iter()
        .filter(|e| account.is_none_or(|a| a.matches(&sim.directory, &e.user)))
        .map(|e| {
            // Exchange shows the display name (ambiguous for namesakes).
            let name = sim
                .directory
                .by_key(&e.user)
                .map_or(e.user.clone(), |p| p.display_name().to_string());
            item(name, e.access_rights, &e.sharing_permission_flags)
        })
        .collect();
    match (user, shown.is_empty()) {
        (Some(user), true) => Err(no_entry(&user)),
        (Some(_), false) => Ok(Output::items(shown)),
        (None, _) => Ok(Output::items(specials.into_iter().chain(shown))),
    }
}

// ---- Remove-/Add-/Set-MailboxFolderPermission ---------------------------------------

/// The checks every change makes: a writable mailbox, a folder that takes changes, a user
/// that is not `Default`/`Anonymous` (those are only ever `Set`).
fn changeable<'a>(
    sim: &'a Sim,
    params: &Params,
    special_allowed: bool,
) -> Result<(&'a Person, &'a Folder, String), ExoError> {
    let identity = params.required("Identity")?;
    let (person, folder) = target(sim, &identity)?;
    let user = params.required("User")?;
    if let Some(name) = special(&user).filter(|_| !special_allowed) {
        return Err(ExoError::folder(
            exception::SPECIAL_USER,
            format!("The permission entry for the special user '{name}' can't be removed or added; use Set-MailboxFolderPermission."),
        ));
    }
    ensure_writable(sim, Principal::Person(person))?;
    if folder.refuses_changes {
        return Err(refuses(&identity));
    }
    Ok((person, folder, user))
}

pub(crate) fn remove_mailbox_folder_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let (person, folder, user) = changeable(sim, params, false)?;
    let account = holder(sim, &user)?;
    let matches = |e: &FolderGrant| account.matches(&sim.directory, &e.user);
    if sim.ignores_removals(&person.upn) {
        return match entries(sim, person, folder).iter().any(matches) {
            true => Ok(Output::default()),
            false => Err(no_entry(&user)),
        };
    }
    let removed = write_entries(sim, person, folder, |entries| {
        let before = entries.len();
        entries.retain(|e| !matches(e));
        entries.len() != before
    });
    if !removed {
        return Err(no_entry(&user));
    }
    Ok(Output::default())
}

/// `-AccessRights` (required) and `-SharingPermissionFlags` (calendar folders only; `Delegate`
/// needs `Editor`, `CanViewPrivateItems` needs `Delegate`).
fn rights_and_flags(
    params: &Params,
    folder: &Folder,
) -> Result<(Vec<String>, Vec<String>), ExoError> {
    let rights = params.list("AccessRights")?;
    if rights.is_empty() {
        return Err(ExoError::binding(
            "Cannot bind parameter 'AccessRights' to an empty value.",
        ));
    }
    let mut flags = Vec::new();
    // A flags enum binds from a list or from one comma-separated string.
    let given = params.list("SharingPermissionFlags")?;
    for flag in given.iter().flat_map(|f| f.split(',')).map(str::trim) {
        if flag.eq_ignore_ascii_case("None") {
            continue;
        }
        let known = FLAGS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(flag))
            .ok_or_else(|| {
                ExoError::binding(format!(
                    "Cannot bind parameter 'SharingPermissionFlags'. Cannot convert value \"{flag}\"; valid values are None, Delegate, CanViewPrivateItems."
                ))
            })?;
        flags.push(known.to_string());
    }
    let editor = rights.iter().any(|r| r.eq_ignore_ascii_case("Editor"));
    let delegate = flags.iter().any(|f| f == "Delegate");
    let invalid = (!flags.is_empty() && !folder.calendar)
        || (delegate && !editor)
        || (flags.iter().any(|f| f == "CanViewPrivateItems") && !delegate);
    if invalid {
        return Err(ExoError::binding(
            "SharingPermissionFlags can be set only on calendar folders: Delegate with the Editor role, CanViewPrivateItems with Delegate.",
        ));
    }
    Ok((rights, flags))
}

pub(crate) fn add_mailbox_folder_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let (person, folder, user) = changeable(sim, params, false)?;
    let (access_rights, sharing_permission_flags) = rights_and_flags(params, folder)?;
    let account = holder(sim, &user)?;
    let Account::Known(who) = account else {
        return Err(ExoError::not_found(&user));
    };
    let added = write_entries(sim, person, folder, |entries| {
        if entries
            .iter()
            .any(|e| account.matches(&sim.directory, &e.user))
        {
            return false;
        }
        entries.push(FolderGrant {
            user: who.key().to_string(),
            access_rights,
            sharing_permission_flags,
        });
        true
    });
    if !added {
        return Err(ExoError::folder(
            exception::PERMISSION_ENTRY_EXISTS,
            format!("An existing permission entry was found for user: {user}."),
        ));
    }
    Ok(Output::default())
}

pub(crate) fn set_mailbox_folder_permission(sim: &Sim, params: &Params) -> CmdletResult {
    let (person, folder, user) = changeable(sim, params, true)?;
    if special(&user).is_some() {
        return Err(ExoError::binding(
            "The simulator does not model changes to the Default and Anonymous entries.",
        ));
    }
    let (access_rights, flags) = rights_and_flags(params, folder)?;
    let flags_given = params.given("SharingPermissionFlags").is_some();
    let account = holder(sim, &user)?;
    let changed = write_entries(sim, person, folder, |entries| {
        let entry = entries
            .iter_mut()
            .find(|e| account.matches(&sim.directory, &e.user));
        if let Some(entry) = entry {
            entry.access_rights = access_rights;
            if flags_given {
                entry.sharing_permission_flags = flags;
            }
            return true;
        }
        false
    });
    if !changed {
        return Err(no_entry(&user));
    }
    Ok(Output::default())
}
