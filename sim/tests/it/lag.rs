//! Read-after-write lag (`sim.read_lag_ms`): permission reads show the grants
//! from before a write until the lag has passed; writes see the current state.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cmdlet, field, real_quiet, TestSim, PETER};

async fn lagging() -> TestSim {
    let mut tenant = real_quiet();
    tenant.sim.read_lag_ms = 500;
    TestSim::start(tenant).await
}

async fn items(sim: &TestSim, name: &str, parameters: Value) -> Vec<Value> {
    sim.exo_all(&cmdlet(name, parameters)).await.0
}

async fn after_the_lag() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

#[tokio::test]
async fn full_access_and_send_as_reads_lag_behind_writes() {
    let sim = lagging().await;
    let remove = cmdlet(
        "Remove-MailboxPermission",
        json!({"Identity": "ceo@initech.com", "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
    );
    assert!(sim.exo(&remove).await.warnings().is_empty());
    let read = || {
        items(
            &sim,
            "Get-MailboxPermission",
            json!({"Identity": "ceo@initech.com"}),
        )
    };
    assert!(field(&read().await, "User").contains(&PETER), "stale read");
    assert!(!sim
        .handle
        .snapshot()
        .direct_grants_of(PETER)
        .contains(&("ceo@initech.com".to_string(), "full_access")));
    // A write sees the current state: the retry warns.
    let retry = sim.exo(&remove).await;
    assert!(retry.warnings()[0].contains("ACE doesn't exist"));

    let remove_sa = |identity: &str| {
        cmdlet(
            "Remove-RecipientPermission",
            json!({"Identity": identity, "Trustee": PETER, "AccessRights": ["SendAs"], "Confirm": false}),
        )
    };
    assert!(sim
        .exo(&remove_sa("sales@initech.com"))
        .await
        .warnings()
        .is_empty());
    assert!(sim
        .exo(&remove_sa("allstaff@initech.com"))
        .await
        .warnings()
        .is_empty());
    let on_sales = items(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "sales@initech.com"}),
    )
    .await;
    assert!(field(&on_sales, "Trustee").contains(&"peter.gibbons"));
    let by_trustee = items(&sim, "Get-RecipientPermission", json!({"Trustee": PETER})).await;
    assert!(field(&by_trustee, "Identity").contains(&"All Staff"));
    let everything = items(
        &sim,
        "Get-RecipientPermission",
        json!({"ResultSize": "Unlimited"}),
    )
    .await;
    assert!(everything
        .iter()
        .any(|i| i["Identity"] == "All Staff" && i["Trustee"] == PETER));

    after_the_lag().await;
    assert!(!field(&read().await, "User").contains(&PETER));
    let on_sales = items(
        &sim,
        "Get-RecipientPermission",
        json!({"Identity": "sales@initech.com"}),
    )
    .await;
    assert!(!field(&on_sales, "Trustee").contains(&"peter.gibbons"));
    let by_trustee = items(&sim, "Get-RecipientPermission", json!({"Trustee": PETER})).await;
    assert_eq!(field(&by_trustee, "Identity"), ["info", "Project X"]);
}

#[tokio::test]
async fn send_on_behalf_and_its_filter_lag_behind() {
    let sim = lagging().await;
    let peter = sim
        .exo(&cmdlet("Get-Mailbox", json!({"Identity": PETER})))
        .await;
    let dn = peter.values()[0]["DistinguishedName"]
        .as_str()
        .unwrap()
        .to_string();
    let filter = json!({"Filter": format!("GrantSendOnBehalfTo -eq '{dn}'")});
    let remove = cmdlet(
        "Set-Mailbox",
        json!({"Identity": "sales@initech.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": PETER}}),
    );
    assert!(sim.exo(&remove).await.warnings().is_empty());
    let sales = items(
        &sim,
        "Get-Mailbox",
        json!({"Identity": "sales@initech.com"}),
    )
    .await;
    assert!(sales[0]["GrantSendOnBehalfTo"]
        .as_array()
        .unwrap()
        .contains(&json!("peter.gibbons")));
    let found = items(&sim, "Get-Mailbox", filter.clone()).await;
    assert_eq!(field(&found, "UserPrincipalName"), ["sales@initech.com"]);
    after_the_lag().await;
    assert!(items(&sim, "Get-Mailbox", filter).await.is_empty());
}

#[tokio::test]
async fn calendar_reads_lag_behind_and_the_lag_starts_at_the_first_write() {
    let sim = lagging().await;
    let path = "/v1.0/users/ceo@initech.com/calendar/calendarPermissions";
    let peter = |list: &Value| {
        list["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["emailAddress"]["address"] == "peter@initech.com")
            .cloned()
    };
    let entry = peter(&sim.graph_get(path).await.body).unwrap();
    let delete = format!("{path}/{}", entry["id"].as_str().unwrap());
    assert_eq!(sim.graph(Method::DELETE, &delete, None).await.status, 204);
    assert!(
        peter(&sim.graph_get(path).await.body).is_some(),
        "stale read"
    );
    let again = sim.graph(Method::DELETE, &delete, None).await;
    assert_eq!(again.status, 404, "the delete sees the current state");
    assert_eq!(again.body["error"]["code"], "ErrorItemNotFound");

    // A second write during the lag: reads still show the state before the first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restore = json!({"emailAddress": {"address": "peter@initech.com"}, "role": "read"});
    let created = sim
        .graph(Method::POST, path, Some(&restore.to_string()))
        .await;
    assert_eq!(created.status, 201);
    let seen = peter(&sim.graph_get(path).await.body).unwrap();
    assert_eq!(seen["role"], "delegateWithoutPrivateEventAccess");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The first write is older than the lag now, the second is not.
    assert!(peter(&sim.graph_get(path).await.body).is_none());
    after_the_lag().await;
    assert_eq!(
        peter(&sim.graph_get(path).await.body).unwrap()["role"],
        "read"
    );
}

#[tokio::test]
async fn no_lag_by_default() {
    let sim = TestSim::real().await;
    let remove = cmdlet(
        "Remove-MailboxPermission",
        json!({"Identity": "ceo@initech.com", "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
    );
    sim.exo(&remove).await;
    let read = items(
        &sim,
        "Get-MailboxPermission",
        json!({"Identity": "ceo@initech.com"}),
    )
    .await;
    assert!(!field(&read, "User").contains(&PETER));
}
