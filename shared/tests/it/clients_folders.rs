//! The folder and calendar clients over real HTTP against the simulator
//! (`events/folders-tenant.json`): what they read, and what the tenant holds after what they
//! change.

use revoke365::adapters::exchange::ExchangeClient;
use revoke365::adapters::graph::GraphClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{AppCredentials, HttpSettings, Secret, ServiceUrls};
use revoke365::ports::{Calendars, FolderInfo, MailboxFolders, RemovalOutcome};
use revoke365_sim::fixture::{FaultAnswer, ScriptedFault};
use revoke365_sim::snapshot::FolderGrant;
use revoke365_sim::{Fixture, SimHandle, SimOptions};
use serde_json::json;

const FOLDERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/folders-tenant.json");
const ANNA: &str = "anna.assist@northwind.com";

struct Clients {
    sim: SimHandle,
    exchange: ExchangeClient,
    graph: GraphClient,
}

async fn clients_with(faults: Vec<ScriptedFault>) -> Clients {
    let mut fixture = Fixture::from_path(std::path::Path::new(FOLDERS)).expect("fixture");
    fixture.sim.faults = faults;
    fixture.sim.retry_after_secs = 0;
    let tenant = fixture.tenant_id.clone();
    let sim = revoke365_sim::start(fixture, SimOptions::default())
        .await
        .expect("simulator starts");
    let urls = ServiceUrls::all_at(&sim.base_url);
    let core = HttpCore::new(HttpSettings::default()).expect("http core");
    let creds = AppCredentials {
        tenant_id: tenant,
        client_id: "revoke365-app".into(),
        credential: revoke365::config::ClientCredential::Secret(Secret::new("unused")),
    };
    Clients {
        graph: GraphClient::new(core.clone(), &urls, creds.clone()),
        exchange: ExchangeClient::new(core, &urls, creds),
        sim,
    }
}

async fn clients() -> Clients {
    clients_with(Vec::new()).await
}

/// The entries the tenant holds on a folder (other than the default calendar).
fn folder_entries(c: &Clients, mailbox: &str, path: &str) -> Vec<FolderGrant> {
    c.sim.snapshot().mailbox(mailbox).unwrap().folders[path].clone()
}

fn by_type<'a>(folders: &'a [FolderInfo], folder_type: &str) -> &'a FolderInfo {
    folders
        .iter()
        .find(|f| f.folder_type == folder_type)
        .expect("folder of the type")
}

#[tokio::test]
async fn folders_come_by_type_with_their_paths_as_permission_cmdlets_take_them() {
    let c = clients().await;
    let folders = c.exchange.folders("klaus@northwind.com").await.unwrap();
    assert_eq!(by_type(&folders, "Inbox").path(), "\\Posteingang");
    assert_eq!(by_type(&folders, "Root").path(), "\\");
    let reports = folders.iter().find(|f| f.name == "Q1/Q2 Berichte").unwrap();
    assert_eq!(reports.path(), "\\Posteingang\\Q1/Q2 Berichte");
    assert!(!reports.is_well_known() && reports.holds_permissions());
    let recoverable = folders.iter().filter(|f| !f.holds_permissions()).count();
    assert_eq!(
        recoverable, 3,
        "the recoverable-items folders hold no permissions"
    );
    // Every folder the listing shows that holds permissions can be read by its path.
    for folder in folders.iter().filter(|f| f.holds_permissions()) {
        c.exchange
            .folder_permissions("klaus@northwind.com", &folder.path(), None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", folder.path()));
    }
    let entries = c
        .exchange
        .folder_permissions("klaus@northwind.com", &reports.path(), Some(ANNA))
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].access_rights, ["Editor"]);
}

#[tokio::test]
async fn one_users_entry_is_found_by_identity_and_none_is_an_empty_answer() {
    let c = clients().await;
    let all = c
        .exchange
        .folder_permissions("ceo@northwind.com", "\\Inbox", None)
        .await
        .unwrap();
    let users: Vec<&str> = all.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(users, ["Default", "Anonymous", "Anna Berg", "Anna Berg"]);
    let calendar = c
        .exchange
        .folder_permissions("ceo@northwind.com", "\\Calendar", Some(ANNA))
        .await
        .unwrap();
    assert_eq!(calendar[0].sharing_permission_flags, ["Delegate"]);
    let none = c
        .exchange
        .folder_permissions("ceo@northwind.com", "\\Inbox", Some("bob@northwind.com"))
        .await
        .unwrap();
    assert!(none.is_empty());
    let missing = c
        .exchange
        .folder_permissions("ceo@northwind.com", "\\Posteingang", None)
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn removal_is_removed_then_already_gone_and_a_refusing_folder_fails() {
    let c = clients().await;
    let first = c
        .exchange
        .remove_folder_permission("ceo@northwind.com", "\\Tasks", ANNA)
        .await
        .unwrap();
    assert_eq!(first, RemovalOutcome::Removed);
    let again = c
        .exchange
        .remove_folder_permission("ceo@northwind.com", "\\Tasks", ANNA)
        .await
        .unwrap();
    assert!(
        matches!(again, RemovalOutcome::AlreadyGone { .. }),
        "{again:?}"
    );
    let state = c.sim.snapshot();
    let ceo = state.mailbox("ceo@northwind.com").unwrap();
    assert!(!ceo.folders.contains_key("\\Tasks"));
    // The twin's Inbox entry is untouched by Anna's removal there.
    c.exchange
        .remove_folder_permission("ceo@northwind.com", "\\Inbox", ANNA)
        .await
        .unwrap();
    let inbox = folder_entries(&c, "ceo@northwind.com", "\\Inbox");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].user, "anna.berg@northwind.com");

    let refused = c
        .exchange
        .remove_folder_permission("legal@northwind.com", "\\Inbox", ANNA)
        .await
        .unwrap_err();
    assert!(
        !refused.is_transient() && !refused.is_not_found(),
        "{refused}"
    );
    assert!(
        refused.reason().contains("can't be changed"),
        "{}",
        refused.reason()
    );
}

#[tokio::test]
async fn a_removal_whose_answer_was_lost_counts_as_this_runs() {
    let c = clients_with(vec![ScriptedFault {
        endpoint: "exo Remove-MailboxFolderPermission".into(),
        identity: Some("ceo@northwind.com:\\Tasks".into()),
        answer: FaultAnswer::UnavailableAfterWrite,
        times: 1,
        status: None,
        hang_ms: None,
    }])
    .await;
    let outcome = c
        .exchange
        .remove_folder_permission("ceo@northwind.com", "\\Tasks", ANNA)
        .await
        .unwrap();
    assert!(
        matches!(outcome, RemovalOutcome::GoneOnRetry { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn put_back_gives_exactly_the_rights_and_flags_whether_or_not_an_entry_is_there() {
    let c = clients().await;
    let rights = vec!["Editor".to_string()];
    let flags = vec!["Delegate".to_string(), "CanViewPrivateItems".to_string()];
    c.exchange
        .remove_folder_permission("ceo@northwind.com", "\\Calendar", ANNA)
        .await
        .unwrap();
    c.exchange
        .put_folder_permission("ceo@northwind.com", "\\Calendar", ANNA, &rights, &flags)
        .await
        .unwrap();
    let state = c.sim.snapshot();
    let calendar = &state.mailbox("ceo@northwind.com").unwrap().calendar;
    assert_eq!(calendar.len(), 1);
    assert!(calendar[0].delegate && calendar[0].can_view_private_items);
    // On an entry that exists (Reviewer on Tasks): set to exactly what is asked.
    c.exchange
        .put_folder_permission(
            "ceo@northwind.com",
            "\\Tasks",
            ANNA,
            &["Reviewer".into()],
            &[],
        )
        .await
        .unwrap();
    let tasks = folder_entries(&c, "ceo@northwind.com", "\\Tasks");
    assert_eq!(
        serde_json::to_value(tasks).unwrap(),
        json!([{"user": ANNA, "access_rights": ["Reviewer"]}])
    );
}

#[tokio::test]
async fn every_calendar_is_listed_and_a_secondary_ones_permissions_read_and_change() {
    let c = clients().await;
    let calendars = c.graph.calendars("ceo@northwind.com").await.unwrap();
    let names: Vec<(&str, bool)> = calendars
        .iter()
        .map(|c| (c.name.as_str(), c.is_default))
        .collect();
    assert_eq!(names, [("Calendar", true), ("Board meetings", false)]);
    let board = &calendars[1].id;
    let entries = c
        .graph
        .permissions_of("ceo@northwind.com", board)
        .await
        .unwrap();
    let anna = entries
        .iter()
        .find(|p| p.email_address.as_deref() == Some(ANNA))
        .unwrap();
    assert_eq!(anna.role, "read");
    let removed = c
        .graph
        .remove_permission_of("ceo@northwind.com", board, &anna.id)
        .await
        .unwrap();
    assert_eq!(removed, RemovalOutcome::Removed);
    let again = c
        .graph
        .remove_permission_of("ceo@northwind.com", board, &anna.id)
        .await
        .unwrap();
    assert!(matches!(again, RemovalOutcome::AlreadyGone { .. }));
    c.graph
        .add_permission_of("ceo@northwind.com", board, ANNA, "read")
        .await
        .unwrap();
    let folder = folder_entries(&c, "ceo@northwind.com", "\\Calendar\\Board meetings");
    assert!(folder
        .iter()
        .any(|e| e.user == ANNA && e.access_rights == ["Reviewer"]));
}
