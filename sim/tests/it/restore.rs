//! Removing every grant John holds and restoring each one from what was read
//! gives back exactly the initial state.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestSim;

const JOHN: &str = "john.smith@acmecorp.com";

async fn invoke(sim: &TestSim, name: &str, parameters: Value) -> Value {
    let answer = sim
        .exo(&json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}}).to_string())
        .await;
    assert_eq!(answer.status, 200, "{name}: {}", answer.body);
    assert!(
        answer.warnings().is_empty(),
        "{name}: {:?}",
        answer.warnings()
    );
    answer.body
}

#[tokio::test]
async fn restoring_every_removed_grant_restores_the_state() {
    let sim = TestSim::acme().await;
    let initial = sim.state()["mailboxes"].clone();
    let full_access = [
        "ceo@acmecorp.com",
        "finance@acmecorp.com",
        "support@acmecorp.com",
        "billing@acmecorp.com",
    ];
    let send_as = ["info@acmecorp.com", "billing@acmecorp.com"];
    let calendar = "/v1.0/users/ceo@acmecorp.com/calendar/calendarPermissions";

    for mailbox in full_access {
        let parameters = json!({"Identity": mailbox, "User": JOHN, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false});
        invoke(&sim, "Remove-MailboxPermission", parameters).await;
    }
    for mailbox in send_as {
        let parameters = json!({"Identity": mailbox, "Trustee": JOHN, "AccessRights": ["SendAs"], "Confirm": false});
        invoke(&sim, "Remove-RecipientPermission", parameters).await;
    }
    let remove = json!({"@odata.type": "#Exchange.GenericHashTable", "remove": JOHN});
    invoke(
        &sim,
        "Set-Mailbox",
        json!({"Identity": "sales@acmecorp.com", "GrantSendOnBehalfTo": remove}),
    )
    .await;
    let permissions = sim.graph_get(calendar).await;
    let before = permissions
        .values()
        .iter()
        .find(|p| p["emailAddress"]["address"] == JOHN)
        .cloned()
        .unwrap();
    let deleted = sim
        .graph(
            Method::DELETE,
            &format!("{calendar}/{}", before["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);

    let removed = sim.state();
    for mailbox in removed["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["upn"] != JOHN)
    {
        let text = mailbox.to_string();
        assert!(!text.contains(JOHN), "John still on {}", mailbox["upn"]);
    }
    assert_ne!(removed["mailboxes"], initial);

    for mailbox in full_access {
        let parameters = json!({"Identity": mailbox, "User": JOHN, "AccessRights": ["FullAccess"], "InheritanceType": "All", "AutoMapping": false});
        invoke(&sim, "Add-MailboxPermission", parameters).await;
    }
    for mailbox in send_as {
        let parameters = json!({"Identity": mailbox, "Trustee": JOHN, "AccessRights": ["SendAs"], "Confirm": false});
        invoke(&sim, "Add-RecipientPermission", parameters).await;
    }
    let add = json!({"@odata.type": "#Exchange.GenericHashTable", "add": JOHN});
    invoke(
        &sim,
        "Set-Mailbox",
        json!({"Identity": "sales@acmecorp.com", "GrantSendOnBehalfTo": add}),
    )
    .await;
    let restore = json!({"emailAddress": before["emailAddress"], "isInsideOrganization": true, "isRemovable": true, "role": before["role"]});
    let created = sim
        .graph(Method::POST, calendar, Some(&restore.to_string()))
        .await;
    assert_eq!(created.status, 201);

    assert_eq!(sim.state()["mailboxes"], initial);
}

#[tokio::test]
async fn a_persisted_state_carries_grants_and_counters_into_a_new_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.json");
    let sim = TestSim::acme().await;
    sim.handle.persist_to(&path).unwrap();
    let parameters = json!({"Identity": "ceo@acmecorp.com", "User": JOHN, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false});
    invoke(&sim, "Remove-MailboxPermission", parameters).await;
    let changed = sim.handle.snapshot();
    drop(sim);

    let next = TestSim::acme().await;
    assert_ne!(next.handle.snapshot().mailboxes, changed.mailboxes);
    next.handle.restore_from(&path).unwrap();
    let restored = next.handle.snapshot();
    assert_eq!(
        restored.mailboxes, changed.mailboxes,
        "the removal carried over"
    );
    assert_eq!(
        restored.counters.requests["exo Remove-MailboxPermission"], 1,
        "counters go on from the saved ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_leave_the_latest_state_on_disk() {
    const MAIL: &str = r#"{"message":{"subject":"s","body":{"contentType":"Text","content":"x"},
        "toRecipients":[{"emailAddress":{"address":"secops@msp.example"}}]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.json");
    let sim = std::sync::Arc::new(TestSim::acme().await);
    sim.handle.persist_to(&path).unwrap();
    for round in 1..=30 {
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let sim = sim.clone();
            writers.spawn(async move {
                let path = "/v1.0/users/automation@acmecorp.com/sendMail";
                sim.graph(Method::POST, path, Some(MAIL)).await.status
            });
        }
        while let Some(status) = writers.join_next().await {
            assert_eq!(status.unwrap(), 202);
        }
        // Every answer went out after its change was saved: the file holds all of them.
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            saved["tenant"]["sent_mail"].as_array().map(Vec::len),
            Some(round * 8),
            "round {round}: an older state was saved last"
        );
    }
}
