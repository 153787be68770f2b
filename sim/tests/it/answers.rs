//! More real answers: revoked tokens, cmdlets outside the app's RBAC role,
//! empty write answers, mailboxes Graph cannot reach through REST.

use reqwest::Method;
use serde_json::json;

use crate::common::{cmdlet, real_quiet, TestSim, PETER};

#[tokio::test]
async fn tokens_are_revoked_once_after_n_requests() {
    let mut tenant = real_quiet();
    tenant.sim.revoke_tokens_after = Some(3);
    let mut sim = TestSim::start(tenant).await;
    let user = format!("/v1.0/users/{PETER}");
    let mailbox = cmdlet("Get-Mailbox", json!({"Identity": PETER}));
    assert_eq!(sim.graph_get(&user).await.status, 200);
    assert_eq!(sim.exo(&mailbox).await.status, 200);
    assert_eq!(sim.graph_get(&user).await.status, 200);

    let graph = sim.graph_get(&user).await;
    assert_eq!(graph.status, 401);
    assert_eq!(graph.body["error"]["code"], "InvalidAuthenticationToken");
    assert!(graph
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer "));
    let exo = sim.exo(&mailbox).await;
    assert_eq!(exo.status, 401);
    assert!(exo.text.is_empty());
    let challenge = exo.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    assert!(exo
        .header("x-ms-diagnostics")
        .unwrap()
        .contains("invalid_token"));
    // Still refused: the old tokens stay revoked.
    assert_eq!(sim.graph_get(&user).await.status, 401);

    sim.renew_tokens().await;
    for _ in 0..5 {
        assert_eq!(sim.graph_get(&user).await.status, 200);
        assert_eq!(sim.exo(&mailbox).await.status, 200);
    }
    let counters = sim.handle.snapshot().counters;
    assert_eq!(counters.tokens_revoked, 2);
    assert_eq!(counters.revoked_token_401, 3);
    // Refused requests are not counted.
    assert_eq!(counters.requests["graph GET /users/{id}"], 7);
}

#[tokio::test]
async fn forbidden_cmdlets_answer_403_with_a_nul_padded_body() {
    let mut tenant = real_quiet();
    tenant.sim.forbidden_cmdlets = vec!["Remove-RecipientPermission".into()];
    let sim = TestSim::start(tenant).await;
    let before = sim.handle.snapshot().mailboxes;
    let remove = cmdlet(
        "remove-recipientpermission",
        json!({"Identity": "info@initech.com", "Trustee": PETER, "AccessRights": ["SendAs"], "Confirm": false}),
    );
    let answer = sim.exo(&remove).await;
    assert_eq!(answer.status, 403);
    assert!(!answer.text.is_empty() && answer.text.bytes().all(|b| b == 0));
    assert!(answer.header("content-type").is_none());
    let diagnostics = answer.header("x-ms-diagnostics").unwrap();
    assert!(
        diagnostics.starts_with("2000003;reason=\""),
        "{diagnostics}"
    );
    assert!(diagnostics.contains("cmdlet 'Remove-RecipientPermission'"));
    assert!(diagnostics.contains("error_category=\"insufficient_privileges\""));
    assert_eq!(sim.handle.snapshot().mailboxes, before, "no effect");
    assert_eq!(sim.requests("exo Remove-RecipientPermission"), 1);
    let read = cmdlet(
        "Get-RecipientPermission",
        json!({"Identity": "info@initech.com"}),
    );
    assert_eq!(sim.exo(&read).await.status, 200, "other cmdlets run");

    let batch = json!({"requests": [{"id": "1", "method": "POST", "url": sim.invoke_url(),
        "headers": {"X-AnchorMailbox": "UPN:info@initech.com"},
        "body": serde_json::from_str::<serde_json::Value>(&remove).unwrap()}]});
    let answer = sim
        .exo_at(
            &sim.url(&format!("/adminapi/beta/{}/$batch", sim.tenant)),
            &batch.to_string(),
        )
        .await;
    let step = &answer.body["responses"][0];
    assert_eq!(step["status"], 403);
    assert!(step["headers"]["X-Ms-Diagnostics"]
        .as_str()
        .unwrap()
        .contains("insufficient_privileges"));

    let unknown = real_quiet();
    let mut json: serde_json::Value = serde_json::to_value(&unknown).unwrap();
    json["sim"]["forbidden_cmdlets"] = json!(["Remove-Everything"]);
    let error = revoke365_sim::Fixture::from_json(&json.to_string()).unwrap_err();
    assert!(error.contains("Remove-Everything"), "{error}");
}

#[tokio::test]
async fn empty_write_answers() {
    let mut tenant = real_quiet();
    tenant.sim.empty_write_answers = true;
    let sim = TestSim::start(tenant).await;
    let remove = cmdlet(
        "Remove-MailboxPermission",
        json!({"Identity": "support@initech.com", "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
    );
    let done = sim.exo(&remove).await;
    assert_eq!(done.status, 200);
    assert!(done.text.is_empty());
    assert!(done.header("content-type").is_none());
    // An answer with warnings or items keeps its JSON body.
    let again = sim.exo(&remove).await;
    assert!(again.content_type().starts_with("application/json"));
    assert!(again.warnings()[0].contains("ACE doesn't exist"));
    let add = cmdlet(
        "Add-MailboxPermission",
        json!({"Identity": "support@initech.com", "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All"}),
    );
    assert_eq!(sim.exo(&add).await.values().len(), 1);
    let set = cmdlet(
        "Set-Mailbox",
        json!({"Identity": "sales@initech.com", "GrantSendOnBehalfTo": {"@odata.type": "#Exchange.GenericHashTable", "remove": PETER}}),
    );
    assert!(sim.exo(&set).await.text.is_empty());
    // Reads are not writes, even when they find nothing.
    let none = sim
        .exo(&cmdlet(
            "Get-RecipientPermission",
            json!({"Identity": "project-x@initech.com", "Trustee": "samir@initech.com"}),
        ))
        .await;
    assert!(none.content_type().starts_with("application/json"));
    assert!(none.values().is_empty());
}

#[tokio::test]
async fn rest_disabled_mailboxes() {
    let mut tenant = real_quiet();
    tenant.sim.rest_disabled_mailboxes = vec!["ceo@initech.com".into()];
    let sim = TestSim::start(tenant).await;
    let path = "/v1.0/users/ceo@initech.com/calendar/calendarPermissions";
    let id = "cGV0ZXJAaW5pdGVjaC5jb20="; // base64url("peter@initech.com")
    let answers = [
        sim.graph_get(path).await,
        sim.graph(Method::DELETE, &format!("{path}/{id}"), None)
            .await,
        sim.graph(Method::DELETE, &format!("{path}/bm9uZQ=="), None)
            .await,
        sim.graph(
            Method::POST,
            path,
            Some(r#"{"emailAddress":{"address":"peter@initech.com"},"role":"read"}"#),
        )
        .await,
    ];
    for answer in answers {
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    }
    assert!(sim
        .handle
        .snapshot()
        .direct_grants_of(PETER)
        .contains(&("ceo@initech.com".to_string(), "calendar")));
    // Exchange still reaches it; other mailboxes' calendars work, and a missing id is ErrorItemNotFound.
    let read = sim
        .exo(&cmdlet(
            "Get-MailboxPermission",
            json!({"Identity": "ceo@initech.com"}),
        ))
        .await;
    assert_eq!(read.status, 200);
    let missing = sim
        .graph(
            Method::DELETE,
            "/v1.0/users/sales@initech.com/calendar/calendarPermissions/bm9uZQ==",
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "ErrorItemNotFound");
}
