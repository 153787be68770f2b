//! Folder permissions and every calendar, end to end: the real binary against the sandbox
//! loaded with `events/folders-tenant.json` (the simulator over loopback HTTP). An Outlook
//! delegate (anna.assist) holds Editor on the CEO's calendar and Tasks, Reviewer on his Inbox
//! and a secondary calendar, Send on Behalf; rights on a German mailbox's Posteingang and
//! Kalender and a subfolder whose name holds `/`; a deep subfolder share; Owner on a shared
//! mailbox's own folder; a folder that refuses changes. Her display-name twin (anna.berg)
//! and a group hold rights too, which must stay.

use crate::kit::{events, ok_json, revoke365, stdout_as, RunResult};
use revoke365_sim::snapshot::{Snapshot, FOLDER};
use serde_json::Value;
use std::path::{Path, PathBuf};

const ANNA: &str = "anna.assist@northwind.com";
const TWIN: &str = "anna.berg@northwind.com";

fn fixture() -> PathBuf {
    events("folders-tenant.json")
}

/// `revoke365 run` of anna.assist on the folders tenant kept in `data_dir`, with `extra`.
fn run(data_dir: &Path, extra: &[&str]) -> RunResult {
    let fixture = fixture();
    let mut args = vec![
        "run",
        "--sandbox",
        fixture.to_str().unwrap(),
        "--user",
        ANNA,
        "--company-id",
        "northwind",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    stdout_as(&revoke365(&args, &[], data_dir))
}

/// `revoke365 COMMAND --sandbox <folders tenant> --company-id northwind` with `extra`.
fn command(command: &str, data_dir: &Path, extra: &[&str]) -> Value {
    let fixture = fixture();
    let mut args = vec![
        command,
        "--sandbox",
        fixture.to_str().unwrap(),
        "--company-id",
        "northwind",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok_json(&revoke365(&args, &[], data_dir))
}

/// `(mailbox, permission, folder or calendar)` of an `access` answer's grants.
fn access_grants(map: &Value) -> Vec<(String, String, String)> {
    let mut grants: Vec<(String, String, String)> = map["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let at = g["folder"]
                .as_str()
                .or(g["calendar"].as_str())
                .unwrap_or("");
            (
                g["mailbox"].as_str().unwrap().to_string(),
                g["permission"].as_str().unwrap().to_string(),
                at.to_string(),
            )
        })
        .collect();
    grants.sort();
    grants
}

fn restore(data_dir: &Path, run_id: &str) -> Value {
    let fixture = fixture();
    let out = revoke365(
        &[
            "restore",
            run_id,
            "--sandbox",
            fixture.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        data_dir,
    );
    ok_json(&out)
}

/// The sandbox tenant as the commands against `data_dir` left it.
fn tenant(data_dir: &Path) -> Snapshot {
    let kept = std::fs::read_dir(data_dir.join("sandbox"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".tenant.json"))
        .expect("the sandbox tenant's saved state")
        .path();
    let text = std::fs::read_to_string(fixture()).unwrap();
    let fixture = revoke365_sim::Fixture::from_json(&text).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sim = revoke365_sim::start(fixture, revoke365_testkit::sim_options())
            .await
            .unwrap();
        sim.restore_from(&kept).unwrap();
        let snapshot = sim.snapshot();
        sim.shutdown().await;
        snapshot
    })
}

/// The folder entries `user` holds, as `<mailbox>:<folder>`.
fn folders_of(tenant: &Snapshot, user: &str) -> Vec<String> {
    tenant
        .direct_grants_of(user)
        .into_iter()
        .filter(|(_, kind)| *kind == FOLDER)
        .map(|(at, _)| at)
        .collect()
}

/// `(mailbox, folder, rights)` of the result's folder entries, the shared mailboxes' too.
fn folder_entries(result: &RunResult) -> Vec<(String, String, Vec<String>, bool)> {
    let p = &result.permissions_removed;
    let direct = p.folder_permissions.iter().map(|e| (e.mailbox.clone(), e));
    let shared = p
        .shared_mailboxes
        .iter()
        .flat_map(|s| s.permissions.iter().map(move |e| (s.mailbox.clone(), e)));
    let mut entries: Vec<_> = direct
        .chain(shared)
        .filter(|(_, e)| e.permission == "FolderPermission")
        .map(|(mailbox, e)| {
            (
                mailbox,
                e.folder.clone().expect("a folder entry names its folder"),
                e.access_rights
                    .clone()
                    .expect("a folder entry lists its rights"),
                e.removed,
            )
        })
        .collect();
    entries.sort();
    entries
}

fn entry(
    mailbox: &str,
    folder: &str,
    rights: &[&str],
    removed: bool,
) -> (String, String, Vec<String>, bool) {
    (
        mailbox.to_string(),
        folder.to_string(),
        rights.iter().map(|r| r.to_string()).collect(),
        removed,
    )
}

#[test]
fn a_delegates_every_folder_and_calendar_is_removed_reported_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let before = tenant_after_nothing(dir.path());

    // The well-known folders, read live (by type: the German ones too).
    let first = run(dir.path(), &[]);
    assert_eq!(first.scope.folders.as_deref(), Some("well_known"));
    assert_eq!(
        folder_entries(&first),
        [
            entry("ceo@northwind.com", "\\Inbox", &["Reviewer"], true),
            entry("ceo@northwind.com", "\\Tasks", &["Editor"], true),
            entry("klaus@northwind.com", "\\Posteingang", &["Reviewer"], true),
            entry("legal@northwind.com", "\\Inbox", &["Reviewer"], false),
        ]
    );
    let refused = first
        .permissions_removed
        .folder_permissions
        .iter()
        .find(|e| e.mailbox == "legal@northwind.com")
        .unwrap();
    assert!(
        refused
            .error
            .as_deref()
            .is_some_and(|e| e.contains("can't be changed")),
        "{refused:?}"
    );
    assert!(!first.success, "a folder that refuses fails the run");
    assert!(first
        .errors
        .iter()
        .any(|e| e.contains("legal@northwind.com:\\Inbox")));
    assert_eq!(first.verification.remaining_folder_permissions, 1);
    // Every calendar: the default ones (the German Kalender too) and the CEO's secondary one.
    let mut calendars: Vec<(String, Option<String>, bool)> = first
        .permissions_removed
        .calendar_delegates
        .iter()
        .map(|e| (e.mailbox.clone(), e.calendar.clone(), e.removed))
        .collect();
    calendars.sort();
    assert_eq!(
        calendars,
        [
            ("ceo@northwind.com".to_string(), None, true),
            (
                "ceo@northwind.com".to_string(),
                Some("Board meetings".to_string()),
                true
            ),
            ("klaus@northwind.com".to_string(), None, true),
        ]
    );
    assert_eq!(first.permissions_removed.send_on_behalf.len(), 1);

    // What is left: the refusing folder and the deep ones a well-known read does not reach;
    // the twin's and the group's entries are untouched.
    let after = tenant(dir.path());
    // The ticket note and the email name each folder and calendar, and what is left.
    let note = &after
        .tickets
        .iter()
        .flat_map(|t| &t.notes)
        .last()
        .expect("a note")
        .text;
    let mail = &after.sent_mail.last().expect("an email").body;
    for said in [
        "FolderPermission on \\Tasks",
        "FolderPermission on \\Posteingang",
        "CalendarDelegate on calendar \"Board meetings\"",
        "legal@northwind.com FolderPermission on \\Inbox",
        "folder permissions 1",
    ] {
        assert!(note.contains(said), "note lacks {said}: {note}");
        let html = said.replace('"', "&quot;");
        assert!(
            mail.contains(said) || mail.contains(&html),
            "email lacks {said}: {mail}"
        );
    }
    assert_eq!(
        folders_of(&after, ANNA),
        [
            "bob@northwind.com:\\Inbox\\Projects\\Alpha",
            "klaus@northwind.com:\\Posteingang\\Q1/Q2 Berichte",
            "legal@northwind.com:\\Inbox",
            "support@northwind.com:\\Escalations",
        ]
    );
    assert!(after
        .direct_grants_of(ANNA)
        .iter()
        .all(|(_, kind)| *kind == FOLDER));
    assert_eq!(after.direct_grants_of(TWIN), before.direct_grants_of(TWIN));
    assert_eq!(
        after.direct_grants_of("Sales Team"),
        before.direct_grants_of("Sales Team")
    );

    // Every folder: the deep ones, the name with `/`, the shared mailbox's own folder.
    let second = run(dir.path(), &["--all-folders"]);
    assert_eq!(second.scope.folders.as_deref(), Some("all"));
    assert_eq!(
        folder_entries(&second),
        [
            entry(
                "bob@northwind.com",
                "\\Inbox\\Projects\\Alpha",
                &["ReadItems", "FolderVisible"],
                true
            ),
            entry(
                "klaus@northwind.com",
                "\\Posteingang\\Q1/Q2 Berichte",
                &["Editor"],
                true
            ),
            entry("legal@northwind.com", "\\Inbox", &["Reviewer"], false),
            entry("support@northwind.com", "\\Escalations", &["Owner"], true),
        ]
    );
    let after = tenant(dir.path());
    assert_eq!(folders_of(&after, ANNA), ["legal@northwind.com:\\Inbox"]);
    assert_eq!(after.direct_grants_of(TWIN), before.direct_grants_of(TWIN));

    // Both runs restored: every right back as it was.
    for result in [&first, &second] {
        let restored = restore(dir.path(), &result.run_id);
        assert_eq!(restored["success"], true, "{restored}");
        assert_eq!(restored["verification"]["all_restored"], true);
    }
    let restored = tenant(dir.path());
    assert_eq!(
        restored.direct_grants_of(ANNA),
        before.direct_grants_of(ANNA)
    );
    for mailbox in [
        "ceo@northwind.com",
        "klaus@northwind.com",
        "bob@northwind.com",
        "support@northwind.com",
    ] {
        assert_eq!(
            restored.mailbox(mailbox),
            before.mailbox(mailbox),
            "{mailbox}"
        );
    }
}

#[test]
fn a_folder_only_run_leaves_every_calendar_and_restore_puts_each_folder_right_back() {
    let dir = tempfile::tempdir().unwrap();
    let before = tenant_after_nothing(dir.path());
    let result = run(dir.path(), &["--types", "folder"]);
    // Calendars (the default ones and those under them) are calendar permissions: not this
    // run's, even though Exchange shows them as folders too.
    assert_eq!(
        folder_entries(&result),
        [
            entry("ceo@northwind.com", "\\Inbox", &["Reviewer"], true),
            entry("ceo@northwind.com", "\\Tasks", &["Editor"], true),
            entry("klaus@northwind.com", "\\Posteingang", &["Reviewer"], true),
            entry("legal@northwind.com", "\\Inbox", &["Reviewer"], false),
        ]
    );
    assert!(result.permissions_removed.calendar_delegates.is_empty());
    let after = tenant(dir.path());
    let ceo = after.mailbox("ceo@northwind.com").unwrap();
    assert!(ceo.calendar.iter().any(|g| g.user == ANNA && g.delegate));
    assert!(ceo.send_on_behalf.iter().any(|d| d == ANNA));
    assert!(folders_of(&after, ANNA)
        .contains(&"ceo@northwind.com:\\Calendar\\Board meetings".to_string()));
    assert_eq!(after.direct_grants_of(TWIN), before.direct_grants_of(TWIN));

    let restored = restore(dir.path(), &result.run_id);
    assert_eq!(restored["success"], true, "{restored}");
    let mut back: Vec<(String, String, Value)> = restored["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["mailbox"].as_str().unwrap().to_string(),
                e["folder"].as_str().unwrap_or("").to_string(),
                e["access_rights"].clone(),
            )
        })
        .collect();
    back.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        back,
        [
            (
                "ceo@northwind.com".to_string(),
                "\\Inbox".to_string(),
                serde_json::json!(["Reviewer"])
            ),
            (
                "ceo@northwind.com".to_string(),
                "\\Tasks".to_string(),
                serde_json::json!(["Editor"])
            ),
            (
                "klaus@northwind.com".to_string(),
                "\\Posteingang".to_string(),
                serde_json::json!(["Reviewer"])
            ),
        ]
    );
    let now = tenant(dir.path());
    for mailbox in [
        "ceo@northwind.com",
        "klaus@northwind.com",
        "legal@northwind.com",
    ] {
        assert_eq!(now.mailbox(mailbox), before.mailbox(mailbox), "{mailbox}");
    }
}

/// The tenant as the fixture has it (a dry run changes nothing and saves it).
fn tenant_after_nothing(data_dir: &Path) -> Snapshot {
    let dry = run(data_dir, &["--dry-run"]);
    assert!(dry.dry_run);
    tenant(data_dir)
}

#[test]
fn after_a_sweep_access_knows_every_folder_and_a_run_reads_the_deep_ones_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let summary = command("sweep", dir.path(), &[]);
    assert!(
        summary["errors"].as_array().is_none_or(|e| e.is_empty()),
        "{summary}"
    );

    let anna = command("access", dir.path(), &["--user", ANNA]);
    let folders: Vec<(String, String, String)> = access_grants(&anna)
        .into_iter()
        .filter(|(_, p, _)| p == "folder")
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("bob@northwind.com", "\\Inbox\\Projects\\Alpha"),
        ("ceo@northwind.com", "\\Inbox"),
        ("ceo@northwind.com", "\\Tasks"),
        ("klaus@northwind.com", "\\Posteingang"),
        ("klaus@northwind.com", "\\Posteingang\\Q1/Q2 Berichte"),
        ("legal@northwind.com", "\\Inbox"),
        ("support@northwind.com", "\\Escalations"),
    ]
    .iter()
    .map(|(m, f)| (m.to_string(), "folder".to_string(), f.to_string()))
    .collect();
    assert_eq!(folders, expected);
    assert!(access_grants(&anna).contains(&(
        "ceo@northwind.com".into(),
        "calendar".into(),
        "Board meetings".into()
    )));
    // The twin shares the display name Exchange shows: only her own rights are hers.
    let twin = command("access", dir.path(), &["--user", TWIN]);
    assert_eq!(
        access_grants(&twin),
        [
            (
                "ceo@northwind.com".to_string(),
                "calendar".to_string(),
                "Board meetings".to_string()
            ),
            (
                "ceo@northwind.com".to_string(),
                "folder".to_string(),
                "\\Inbox".to_string()
            ),
        ]
    );
    // Who holds what on one mailbox's folders; the group's share is listed under its name.
    let bob = command("access", dir.path(), &["--mailbox", "bob@northwind.com"]);
    let holders: Vec<(String, String)> = bob["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["trustee"].as_str().unwrap().to_string(),
                g["folder"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        holders.contains(&(ANNA.to_string(), "\\Inbox\\Projects\\Alpha".to_string())),
        "{holders:?}"
    );
    assert!(
        holders
            .iter()
            .any(|(who, f)| who != ANNA && f == "\\Inbox\\Projects"),
        "{holders:?}"
    );

    // A run now reads the deep folders the snapshot lists, without --all-folders.
    let result = run(dir.path(), &[]);
    assert_eq!(result.scope.folders.as_deref(), Some("well_known+snapshot"));
    let found: Vec<(String, String)> = folder_entries(&result)
        .into_iter()
        .map(|(m, f, _, _)| (m, f))
        .collect();
    for deep in [
        ("bob@northwind.com", "\\Inbox\\Projects\\Alpha"),
        ("klaus@northwind.com", "\\Posteingang\\Q1/Q2 Berichte"),
        ("support@northwind.com", "\\Escalations"),
    ] {
        assert!(
            found.contains(&(deep.0.to_string(), deep.1.to_string())),
            "{found:?}"
        );
    }
    let after = tenant(dir.path());
    assert_eq!(folders_of(&after, ANNA), ["legal@northwind.com:\\Inbox"]);
    assert!(!folders_of(&after, TWIN).is_empty());

    // A backup restore of one mailbox from the snapshot puts its folder rights back (the
    // revoked user's only when asked: the run above revoked them again).
    let back = command(
        "restore",
        dir.path(),
        &[
            "--mailbox",
            "bob@northwind.com",
            "--as-of",
            summary["snapshot_id"].as_str().unwrap(),
            "--include-revoked",
        ],
    );
    assert_eq!(back["success"], true, "{back}");
    assert!(folders_of(&tenant(dir.path()), ANNA)
        .contains(&"bob@northwind.com:\\Inbox\\Projects\\Alpha".to_string()));
}
