//! The Graph client's identity actions over real HTTP against the simulator: the user's
//! sign-in state, sessions, accountEnabled, delegated grants over several pages, their app's
//! name, deletion and re-creation, confirmCompromised, and the typed errors of a 403 and 404.

use revoke365::adapters::graph::GraphClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{AppCredentials, HttpSettings, Secret, ServiceUrls};
use revoke365::error::ErrorKind;
use revoke365::ports::{IdentityActions, RemovalOutcome};
use revoke365_sim::{Fixture, SimHandle, SimOptions};
use serde_json::json;

const JOHN: &str = "john@contoso.com";

async fn start(missing_roles: &[&str]) -> (SimHandle, GraphClient) {
    let consents: Vec<_> = (1..=5)
        .map(|n| json!({"user": JOHN, "app": format!("App {n}"), "scope": format!("Mail.Read Scope{n}")}))
        .chain([json!({"user": "ann@contoso.com", "app": "App 1", "scope": "Mail.Read"})])
        .collect();
    let fixture = json!({
        "tenant_id": "contoso-tenant",
        "organization": {"company_id": "contoso", "company_name": "Contoso",
            "m365_permission_ticket_board": "Service Desk", "notification_sender": "a@contoso.com"},
        "users": [{"upn": JOHN, "display_name": "John", "on_premises_sync_enabled": true},
                  {"upn": "ann@contoso.com", "display_name": "Ann"},
                  {"upn": "a@contoso.com", "display_name": "Automation"}],
        "consents": consents,
        "sim": {"page_size": 2, "retry_after_secs": 0, "missing_roles": missing_roles}
    });
    let sim = revoke365_sim::start(
        Fixture::from_json(&fixture.to_string()).unwrap(),
        SimOptions::default(),
    )
    .await
    .unwrap();
    let urls = ServiceUrls::all_at(&sim.base_url);
    let core = HttpCore::new(HttpSettings::default()).unwrap();
    let creds = AppCredentials {
        tenant_id: "contoso-tenant".into(),
        client_id: "revoke365-app".into(),
        credential: revoke365::config::ClientCredential::Secret(Secret::new("s")),
    };
    let graph = GraphClient::new(core, &urls, creds);
    (sim, graph)
}

#[tokio::test]
async fn the_identity_actions_change_the_tenant_as_graph_documents() {
    let (sim, graph) = start(&[]).await;
    let user = graph.identity_user(JOHN).await.unwrap();
    assert_eq!(user.account_enabled, Some(true));
    assert!(user.on_premises_sync_enabled);

    graph.revoke_sign_in_sessions(&user.id).await.unwrap();
    graph.set_account_enabled(&user.id, false).await.unwrap();
    assert_eq!(
        graph.identity_user(&user.id).await.unwrap().account_enabled,
        Some(false)
    );

    // Five grants over three pages of two; only John's.
    let grants = graph.consent_grants(&user.id).await.unwrap();
    assert_eq!(grants.len(), 5);
    assert!(grants.iter().all(|g| g.is_users_own(&user.id)));
    assert!(sim.snapshot().requests("graph GET oauth2PermissionGrants") >= 3);
    let first = grants
        .iter()
        .find(|g| g.scope == "Mail.Read Scope1")
        .unwrap()
        .clone();
    assert_eq!(
        graph.app_name(&first.client_id).await.unwrap().as_deref(),
        Some("App 1")
    );
    assert_eq!(
        graph
            .app_name("00000000-0000-0000-0000-000000000000")
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        graph.delete_consent_grant(&first.id).await.unwrap(),
        RemovalOutcome::Removed
    );
    assert!(matches!(
        graph.delete_consent_grant(&first.id).await.unwrap(),
        RemovalOutcome::AlreadyGone { .. }
    ));
    assert_eq!(sim.snapshot().identity.consents_of(JOHN).len(), 4);
    let new_id = graph.create_consent_grant(&first).await.unwrap();
    assert!(!new_id.is_empty());
    assert_eq!(sim.snapshot().identity.consents_of(JOHN).len(), 5);
    assert_eq!(
        sim.snapshot().identity.consents_of("ann@contoso.com").len(),
        1
    );

    graph
        .confirm_compromised(std::slice::from_ref(&user.id))
        .await
        .unwrap();
    let state = sim.snapshot().identity;
    let john = state.user(JOHN).unwrap();
    assert_eq!(john.sessions_revoked, 1);
    assert!(!john.account_enabled);
    assert!(john.confirmed_compromised_at.is_some());
    assert!(state
        .user("ann@contoso.com")
        .is_none_or(|a| a.sessions_revoked == 0));
}

#[tokio::test]
async fn a_missing_role_is_a_403_and_an_unknown_user_a_404() {
    let (sim, graph) = start(&[
        "User.RevokeSessions.All",
        "DelegatedPermissionGrant.ReadWrite.All",
    ])
    .await;
    let user = graph.identity_user(JOHN).await.unwrap();
    let e = graph.revoke_sign_in_sessions(&user.id).await.unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::Api { status: 403, code: Some(c), .. } if c == "Authorization_RequestDenied"),
        "{e:?}"
    );
    // Refused on the user's navigation, then on the filtered list: the list's 403 is said.
    let e = graph.consent_grants(&user.id).await.unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::Api { status: 403, .. }),
        "{e:?}"
    );
    assert!(
        format!("{e:?}").contains("principalId eq"),
        "the filtered list was asked: {e:?}"
    );
    let e = graph.identity_user("nobody@contoso.com").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(
        sim.snapshot().identity.user(JOHN).unwrap().sessions_revoked,
        0
    );
}
