//! The identity actions over raw HTTP: sessions, accountEnabled, delegated grants, service
//! principals, confirmCompromised, with the role checks and the state they leave.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{fixture, TestSim};

const CONTAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/contain-tenant.json");
const JOHN: &str = "john.smith@acmecorp.com";

async fn contain_sim(edit: impl FnOnce(&mut Value)) -> TestSim {
    let text = std::fs::read_to_string(CONTAIN).unwrap();
    let mut raw: Value = serde_json::from_str(&text).unwrap();
    edit(&mut raw);
    TestSim::start(revoke365_sim::Fixture::from_json(&raw.to_string()).unwrap()).await
}

#[tokio::test]
async fn sessions_and_sign_in_change_and_show() {
    let sim = contain_sim(|_| {}).await;
    let revoked = sim
        .graph(
            Method::POST,
            &format!("/v1.0/users/{JOHN}/revokeSignInSessions"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["value"], true);
    assert!(revoked.body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#Edm.Boolean"));
    let patched = sim
        .graph(
            Method::PATCH,
            &format!("/v1.0/users/{JOHN}"),
            Some(r#"{"accountEnabled": false}"#),
        )
        .await;
    assert_eq!(patched.status, 204);
    assert!(patched.text.is_empty());
    let user = sim
        .graph_get(&format!(
            "/v1.0/users/{JOHN}?$select=id,accountEnabled,onPremisesSyncEnabled"
        ))
        .await;
    assert_eq!(user.body["accountEnabled"], false);
    assert_eq!(user.body["onPremisesSyncEnabled"], Value::Null);
    let state = sim.handle.snapshot().identity;
    let john = state.user(JOHN).unwrap();
    assert!(!john.account_enabled);
    assert_eq!(john.sessions_revoked, 1);
    assert!(john.sessions_revoked_at.is_some());
    // Only john changed.
    assert!(state
        .users
        .iter()
        .filter(|u| u.upn != JOHN)
        .all(|u| u.account_enabled && u.sessions_revoked == 0));

    let bad = sim
        .graph(
            Method::PATCH,
            &format!("/v1.0/users/{JOHN}"),
            Some(r#"{"accountEnabled": "no"}"#),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "Request_BadRequest");
    let unknown = sim
        .graph(
            Method::POST,
            "/v1.0/users/nobody@acmecorp.com/revokeSignInSessions",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], "Request_ResourceNotFound");
}

#[tokio::test]
async fn grants_are_listed_paged_deleted_and_created_again() {
    let sim = contain_sim(|_| {}).await;
    let john = sim.graph_get(&format!("/v1.0/users/{JOHN}")).await;
    let id = john.body["id"].as_str().unwrap().to_string();
    // The user's navigation: his own three grants, not the tenant-wide one, in pages of 3.
    let first = sim
        .graph_get(&format!("/v1.0/users/{id}/oauth2PermissionGrants"))
        .await;
    assert_eq!(first.status, 200);
    let grants = first.values().clone();
    assert_eq!(grants.len(), 3);
    assert!(grants
        .iter()
        .all(|g| g["principalId"] == id.as_str() && g["consentType"] == "Principal"));
    // The tenant-wide list filtered by principal says the same.
    let filtered = sim
        .graph_get(&format!(
            "/v1.0/oauth2PermissionGrants?$filter={}",
            urlencoding::encode(&format!("principalId eq '{id}'"))
        ))
        .await;
    assert_eq!(filtered.values().len(), 3);
    let all = sim.graph_get("/v1.0/oauth2PermissionGrants").await;
    assert_eq!(all.values().len(), 3, "a page of three");
    let next = all.body["@odata.nextLink"].as_str().unwrap();
    let rest = sim
        .http
        .get(next)
        .bearer_auth(sim.token(crate::common::GRAPH_SCOPE).await)
        .send()
        .await
        .unwrap();
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest["value"].as_array().unwrap().len(), 2);
    let unsupported = sim
        .graph_get("/v1.0/oauth2PermissionGrants?$filter=scope%20eq%20'x'")
        .await;
    assert_eq!(unsupported.status, 400);

    let mail = grants
        .iter()
        .find(|g| g["scope"] == "Mail.Read offline_access")
        .unwrap();
    let client = mail["clientId"].as_str().unwrap();
    let sp = sim
        .graph_get(&format!(
            "/v1.0/servicePrincipals/{client}?$select=id,displayName"
        ))
        .await;
    assert_eq!(sp.body["displayName"], "Mail Sync Pro");
    let grant = mail["id"].as_str().unwrap();
    let deleted = sim
        .graph(
            Method::DELETE,
            &format!("/v1.0/oauth2PermissionGrants/{grant}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let again = sim
        .graph(
            Method::DELETE,
            &format!("/v1.0/oauth2PermissionGrants/{grant}"),
            None,
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body["error"]["code"], "Request_ResourceNotFound");
    let state = sim.handle.snapshot().identity;
    assert_eq!(state.consents_of(JOHN).len(), 2);
    assert_eq!(state.consents_of("jane.doe@acmecorp.com").len(), 1);

    let body = json!({"clientId": client, "consentType": "Principal", "principalId": id,
        "resourceId": mail["resourceId"], "scope": "Mail.Read offline_access"})
    .to_string();
    let created = sim
        .graph(Method::POST, "/v1.0/oauth2PermissionGrants", Some(&body))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["scope"], "Mail.Read offline_access");
    let twice = sim
        .graph(Method::POST, "/v1.0/oauth2PermissionGrants", Some(&body))
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(sim.handle.snapshot().identity.consents_of(JOHN).len(), 3);
}

#[tokio::test]
async fn a_missing_role_is_a_403_and_confirm_compromised_needs_p2() {
    let sim = contain_sim(|raw| {
        raw["sim"]["missing_roles"] = json!([
            "User.RevokeSessions.All",
            "DelegatedPermissionGrant.ReadWrite.All"
        ]);
        raw["sim"]["unlicensed"] = json!(["riskyUsers"]);
    })
    .await;
    for (method, path) in [
        (
            Method::POST,
            format!("/v1.0/users/{JOHN}/revokeSignInSessions"),
        ),
        (
            Method::GET,
            format!("/v1.0/users/{JOHN}/oauth2PermissionGrants"),
        ),
    ] {
        let denied = sim.graph(method, &path, None).await;
        assert_eq!(denied.status, 403, "{path}");
        assert_eq!(denied.body["error"]["code"], "Authorization_RequestDenied");
    }
    // The account can still be disabled: that role is held.
    let patched = sim
        .graph(
            Method::PATCH,
            &format!("/v1.0/users/{JOHN}"),
            Some(r#"{"accountEnabled":false}"#),
        )
        .await;
    assert_eq!(patched.status, 204);
    let john = sim.graph_get(&format!("/v1.0/users/{JOHN}")).await;
    let body = json!({"userIds": [john.body["id"]]}).to_string();
    let confirm = sim
        .graph(
            Method::POST,
            "/v1.0/identityProtection/riskyUsers/confirmCompromised",
            Some(&body),
        )
        .await;
    assert_eq!(confirm.status, 403);
    assert!(sim
        .handle
        .snapshot()
        .identity
        .user(JOHN)
        .unwrap()
        .sessions_revoked_at
        .is_none());
}

#[tokio::test]
async fn confirm_compromised_marks_the_users_and_a_synced_user_shows_it() {
    let sim = contain_sim(|raw| {
        raw["users"][0]["on_premises_sync_enabled"] = json!(true);
        raw["sim"]["faults"] =
            json!([{"endpoint": "graph POST revokeSignInSessions", "answer": "429", "times": 1}]);
    })
    .await;
    let john = sim
        .graph_get(&format!(
            "/v1.0/users/{JOHN}?$select=id,onPremisesSyncEnabled"
        ))
        .await;
    assert_eq!(john.body["onPremisesSyncEnabled"], true);
    let body = json!({"userIds": [john.body["id"]]}).to_string();
    let confirm = sim
        .graph(
            Method::POST,
            "/v1.0/identityProtection/riskyUsers/confirmCompromised",
            Some(&body),
        )
        .await;
    assert_eq!(confirm.status, 204);
    let empty = sim
        .graph(
            Method::POST,
            "/v1.0/identityProtection/riskyUsers/confirmCompromised",
            Some(r#"{"userIds":[]}"#),
        )
        .await;
    assert_eq!(empty.status, 400);
    let throttled = sim
        .graph(
            Method::POST,
            &format!("/v1.0/users/{JOHN}/revokeSignInSessions"),
            None,
        )
        .await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    let state = sim.handle.snapshot().identity;
    let john = state.user(JOHN).unwrap();
    assert!(john.on_premises_sync_enabled);
    assert!(john.confirmed_compromised_at.is_some());
    assert_eq!(john.sessions_revoked, 0, "the throttled call did nothing");
}

#[test]
fn consents_of_unknown_users_are_refused_at_load() {
    let mut raw: Value = serde_json::from_str(&std::fs::read_to_string(CONTAIN).unwrap()).unwrap();
    raw["consents"] = json!([{"user": "ghost@acmecorp.com", "app": "X", "scope": "Mail.Read"}]);
    let e = revoke365_sim::Fixture::from_json(&raw.to_string()).unwrap_err();
    assert!(e.contains("consents[0].user"), "{e}");
    let _ = fixture(CONTAIN);
}
