//! Folders and folder permissions as Exchange shows them (`events/folders-tenant.json`): an
//! Outlook delegate on the CEO's Calendar, Tasks and Inbox, a German mailbox, a folder name
//! with `/`, a deep subfolder share, a shared mailbox's own folder, a secondary calendar, a
//! display-name twin and a folder that refuses changes.

use reqwest::Method;
use revoke365_sim::fixture::{FaultAnswer, ScriptedFault};
use serde_json::{json, Value};

use crate::common::{cmdlet, field, fixture, TestSim};

const FOLDERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/folders-tenant.json");
const ANNA: &str = "anna.assist@northwind.com";

async fn folders() -> TestSim {
    TestSim::start(fixture(FOLDERS)).await
}

async fn statistics(sim: &TestSim, mailbox: &str, scope: Option<&str>) -> Vec<Value> {
    let mut parameters = json!({"Identity": mailbox});
    if let Some(scope) = scope {
        parameters["FolderScope"] = json!(scope);
    }
    sim.exo_all(&cmdlet("Get-MailboxFolderStatistics", parameters))
        .await
        .0
}

async fn permissions(sim: &TestSim, identity: &str, user: Option<&str>) -> crate::common::Answer {
    let mut parameters = json!({"Identity": identity});
    if let Some(user) = user {
        parameters["User"] = json!(user);
    }
    sim.exo(&cmdlet("Get-MailboxFolderPermission", parameters))
        .await
}

async fn change(sim: &TestSim, name: &str, parameters: Value) -> crate::common::Answer {
    sim.exo(&cmdlet(name, parameters)).await
}

#[tokio::test]
async fn folders_are_listed_by_type_with_localized_names_and_a_slash_written_as_f8ff() {
    let sim = folders().await;
    let all = statistics(&sim, "klaus@northwind.com", None).await;
    let of_type = |t: &str| all.iter().find(|f| f["FolderType"] == t).unwrap();
    assert_eq!(of_type("Inbox")["Name"], "Posteingang");
    assert_eq!(of_type("Calendar")["FolderPath"], "/Kalender");
    assert_eq!(of_type("Tasks")["Name"], "Aufgaben");
    assert_eq!(of_type("Root")["FolderPath"], "/");
    assert_eq!(
        of_type("Root")["Name"],
        "Oberste Ebene des Informationsspeichers"
    );
    let reports = all.iter().find(|f| f["Name"] == "Q1/Q2 Berichte").unwrap();
    assert_eq!(reports["FolderType"], "User Created");
    assert_eq!(reports["FolderPath"], "/Posteingang/Q1\u{F8FF}Q2 Berichte");
    assert!(all
        .iter()
        .any(|f| f["FolderType"] == "RecoverableItemsRoot"));
    // More folders than a page: the listing is paged (page_size 5).
    assert!(all.len() > 5);

    let inbox_scope = statistics(&sim, "klaus@northwind.com", Some("Inbox")).await;
    assert_eq!(
        field(&inbox_scope, "FolderPath"),
        ["/Posteingang", "/Posteingang/Q1\u{F8FF}Q2 Berichte"]
    );
    let english = statistics(&sim, "ceo@northwind.com", Some("Calendar")).await;
    assert_eq!(
        field(&english, "FolderPath"),
        ["/Calendar", "/Calendar/Board meetings"]
    );
}

#[tokio::test]
async fn a_folder_is_named_by_its_shown_path_or_its_id_never_by_another_language() {
    let sim = folders().await;
    let slash = permissions(
        &sim,
        "klaus@northwind.com:\\Posteingang\\Q1/Q2 Berichte",
        Some(ANNA),
    )
    .await;
    assert_eq!(slash.status, 200, "{}", slash.body);
    assert_eq!(slash.values()[0]["AccessRights"], json!(["Editor"]));
    for missing in [
        "klaus@northwind.com:\\Posteingang\\Q1\u{F8FF}Q2 Berichte",
        "klaus@northwind.com:\\Inbox",
        "klaus@northwind.com:\\Recoverable Items",
    ] {
        let answer = permissions(&sim, missing, None).await;
        assert_eq!(answer.status, 500, "{missing}");
        assert!(
            answer.exo_detail().contains("couldn't be found"),
            "{missing}"
        );
    }
    let all = statistics(&sim, "klaus@northwind.com", None).await;
    let id = all.iter().find(|f| f["FolderType"] == "Inbox").unwrap()["FolderId"]
        .as_str()
        .unwrap()
        .to_string();
    let by_id = permissions(&sim, &format!("klaus@northwind.com:{id}"), Some(ANNA)).await;
    assert_eq!(by_id.values()[0]["FolderName"], "Posteingang");
}

#[tokio::test]
async fn entries_show_display_names_and_the_user_filter_matches_by_identity() {
    let sim = folders().await;
    let inbox = permissions(&sim, "ceo@northwind.com:\\Inbox", None).await;
    // Default and Anonymous on every folder; the twins share one display name.
    assert_eq!(
        field(inbox.values(), "User"),
        ["Default", "Anonymous", "Anna Berg", "Anna Berg"]
    );
    let one = permissions(&sim, "ceo@northwind.com:\\Inbox", Some(ANNA)).await;
    assert_eq!(one.values().len(), 1);
    assert_eq!(one.values()[0]["AccessRights"], json!(["Reviewer"]));
    let by_name = permissions(&sim, "ceo@northwind.com:\\Inbox", Some("Anna Berg")).await;
    assert!(by_name.exo_detail().contains("matches multiple entries"));
    let none = permissions(&sim, "ceo@northwind.com:\\Inbox", Some("bob@northwind.com")).await;
    assert_eq!(none.status, 500);
    assert!(none
        .exo_detail()
        .contains("UserNotFoundInPermissionEntryException"));
    let calendar = permissions(&sim, "ceo@northwind.com:\\Calendar", Some(ANNA)).await;
    assert_eq!(calendar.values()[0]["SharingPermissionFlags"], "Delegate");
}

#[tokio::test]
async fn removing_adding_and_setting_entries_change_the_one_state_both_apis_read() {
    let sim = folders().await;
    let remove =
        |identity: &str, user: &str| json!({"Identity": identity, "User": user, "Confirm": false});
    let calendar = "ceo@northwind.com:\\Calendar";
    let gone = change(
        &sim,
        "Remove-MailboxFolderPermission",
        remove(calendar, ANNA),
    )
    .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(sim.mailbox_state("ceo@northwind.com")["calendar"]
        .as_array()
        .unwrap()
        .is_empty());
    let again = change(
        &sim,
        "Remove-MailboxFolderPermission",
        remove(calendar, ANNA),
    )
    .await;
    assert!(again
        .exo_detail()
        .contains("UserNotFoundInPermissionEntryException"));
    let special = change(
        &sim,
        "Remove-MailboxFolderPermission",
        remove(calendar, "Default"),
    )
    .await;
    assert!(special
        .exo_detail()
        .contains("CannotRemoveSpecialUserException"));

    let back = json!({"Identity": calendar, "User": ANNA, "AccessRights": "Editor",
        "SharingPermissionFlags": "Delegate, CanViewPrivateItems"});
    let added = change(&sim, "Add-MailboxFolderPermission", back.clone()).await;
    assert_eq!(added.status, 200, "{}", added.body);
    let graph = sim
        .graph_get("/v1.0/users/ceo@northwind.com/calendar/calendarPermissions")
        .await;
    assert_eq!(graph.values()[1]["role"], "delegateWithPrivateEventAccess");
    let twice = change(&sim, "Add-MailboxFolderPermission", back).await;
    assert!(twice
        .exo_detail()
        .contains("UserAlreadyExistsInPermissionEntryException"));

    let tasks = "ceo@northwind.com:\\Tasks";
    let flags_off_calendar = change(
        &sim,
        "Set-MailboxFolderPermission",
        json!({"Identity": tasks, "User": ANNA, "AccessRights": "Editor",
            "SharingPermissionFlags": "Delegate"}),
    )
    .await;
    assert_eq!(flags_off_calendar.status, 400);
    let set = change(
        &sim,
        "Set-MailboxFolderPermission",
        json!({"Identity": tasks, "User": ANNA, "AccessRights": "Reviewer"}),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        sim.mailbox_state("ceo@northwind.com")["folders"]["\\Tasks"],
        json!([{"user": ANNA, "access_rights": ["Reviewer"]}])
    );
}

#[tokio::test]
async fn a_folder_that_refuses_changes_keeps_its_entries() {
    let sim = folders().await;
    let refused = change(
        &sim,
        "Remove-MailboxFolderPermission",
        json!({"Identity": "legal@northwind.com:\\Inbox", "User": ANNA, "Confirm": false}),
    )
    .await;
    assert_eq!(refused.status, 500);
    assert!(refused
        .exo_detail()
        .contains("CannotChangePermissionsOnFolderException"));
    assert_eq!(
        sim.mailbox_state("legal@northwind.com")["folders"]["\\Inbox"][0]["user"],
        ANNA
    );
}

#[tokio::test]
async fn a_users_direct_grants_count_each_folder_entry_by_identity() {
    let sim = folders().await;
    let anna: Vec<(String, &str)> = sim.handle.snapshot().direct_grants_of(ANNA);
    let folders: Vec<&str> = anna
        .iter()
        .filter(|(_, kind)| *kind == revoke365_sim::snapshot::FOLDER)
        .map(|(r, _)| r.as_str())
        .collect();
    assert_eq!(
        folders,
        [
            "bob@northwind.com:\\Inbox\\Projects\\Alpha",
            "ceo@northwind.com:\\Calendar\\Board meetings",
            "ceo@northwind.com:\\Inbox",
            "ceo@northwind.com:\\Tasks",
            "klaus@northwind.com:\\Posteingang",
            "klaus@northwind.com:\\Posteingang\\Q1/Q2 Berichte",
            "legal@northwind.com:\\Inbox",
            "support@northwind.com:\\Escalations",
        ]
    );
    let twin = sim
        .handle
        .snapshot()
        .direct_grants_of("anna.berg@northwind.com");
    assert!(twin.contains(&(
        "ceo@northwind.com:\\Calendar\\Board meetings".to_string(),
        revoke365_sim::snapshot::FOLDER
    )));
}

#[tokio::test]
async fn every_calendar_is_listed_and_a_secondary_calendar_shares_its_state_with_exchange() {
    let sim = folders().await;
    let calendars = sim
        .graph_get("/v1.0/users/ceo@northwind.com/calendars")
        .await;
    assert_eq!(
        field(calendars.values(), "name"),
        ["Calendar", "Board meetings"]
    );
    assert_eq!(calendars.values()[0]["isDefaultCalendar"], true);
    let board = calendars.values()[1]["id"].as_str().unwrap().to_string();
    let path = format!("/v1.0/users/ceo@northwind.com/calendars/{board}/calendarPermissions");
    let listed = sim.graph_get(&path).await;
    let roles: Vec<(&str, &str)> = listed
        .values()
        .iter()
        .map(|p| {
            (
                p["emailAddress"]["address"].as_str().unwrap_or("-"),
                p["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("-", "freeBusyRead"),
            (ANNA, "read"),
            ("anna.berg@northwind.com", "write")
        ]
    );
    let id = listed.values()[1]["id"].as_str().unwrap();
    let deleted = sim
        .graph(Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    let exchange = permissions(&sim, "ceo@northwind.com:\\Calendar\\Board meetings", None).await;
    assert_eq!(
        field(exchange.values(), "User"),
        ["Default", "Anonymous", "Anna Berg"]
    );
    let twin = permissions(
        &sim,
        "ceo@northwind.com:\\Calendar\\Board meetings",
        Some("anna.berg@northwind.com"),
    )
    .await;
    assert_eq!(twin.values()[0]["AccessRights"], json!(["Editor"]));
    let unknown = sim
        .graph_get("/v1.0/users/ceo@northwind.com/calendars/AAMkADnope/calendarPermissions")
        .await;
    assert_eq!(unknown.body["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn a_transient_failure_can_hit_one_folder_read() {
    let mut tenant = fixture(FOLDERS);
    let alpha = "bob@northwind.com:\\Inbox\\Projects\\Alpha";
    tenant.sim.faults.push(ScriptedFault {
        endpoint: "exo Get-MailboxFolderPermission".into(),
        identity: Some(alpha.into()),
        answer: FaultAnswer::Transient500,
        times: 1,
        status: None,
        hang_ms: None,
    });
    let sim = TestSim::start(tenant).await;
    let other = permissions(&sim, "bob@northwind.com:\\Inbox\\Projects", None).await;
    assert_eq!(other.status, 200);
    let first = permissions(&sim, alpha, Some(ANNA)).await;
    assert_eq!(first.status, 500);
    assert!(first.exo_detail().contains("StorageTransientException"));
    let second = permissions(&sim, alpha, Some(ANNA)).await;
    assert_eq!(
        second.values()[0]["AccessRights"],
        json!(["ReadItems", "FolderVisible"])
    );
}
