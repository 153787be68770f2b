//! The Graph and Exchange clients over real HTTP against the simulator: what they read, and
//! what the tenant looks like after what they change.

use revoke365::adapters::exchange::ExchangeClient;
use revoke365::adapters::graph::GraphClient;
use revoke365::adapters::http::HttpCore;
use revoke365::config::{AppCredentials, HttpSettings, Secret, ServiceUrls};
use revoke365::error::ErrorKind;
use revoke365::ports::{
    Attachment, Directory, ExchangeGrants, ExchangePermissions, ExchangeRecipients, Mailer,
    OutgoingMail, RemovalOutcome, UserLookup,
};
use revoke365_sim::snapshot::{MailboxSnapshot, CALENDAR, FULL_ACCESS, SEND_AS, SEND_ON_BEHALF};
use revoke365_sim::{Fixture, SimHandle, SimOptions, Snapshot};
use std::sync::Arc;

const TENANT: &str = "contoso-tenant";
const SECRET: &str = "app-secret-value";

/// John Smith holds Full Access on ceo@ and finance@ and the shared support@, Send As on
/// finance@, info@ and support@, Send on Behalf on ceo@ and sales@, an Editor delegation on
/// ceo@'s calendar; he is in three groups, one of which (Finance Team) holds grants too.
/// A lookalike (john.smith2@, same display name) and o'brien@ (a quote in the DN) exist.
const FIXTURE: &str = r#"{
  "tenant_id": "contoso-tenant",
  "organization": {"company_id": "contoso", "company_name": "Contoso",
    "m365_permission_ticket_board": "Service Desk", "notification_sender": "automation@contoso.com"},
  "users": [
    {"upn": "john.smith@contoso.com", "display_name": "John Smith"},
    {"upn": "john.smith2@contoso.com", "display_name": "John Smith"},
    {"upn": "o'brien@contoso.com", "display_name": "Pat O'Brien"},
    {"upn": "alice@contoso.com", "display_name": "Alice Ng"},
    {"upn": "ceo@contoso.com", "display_name": "The CEO"},
    {"upn": "finance@contoso.com", "display_name": "Finance"},
    {"upn": "info@contoso.com", "display_name": "Info"},
    {"upn": "sales@contoso.com", "display_name": "Sales"},
    {"upn": "automation@contoso.com", "display_name": "Automation"}
  ],
  "groups": [
    {"name": "Finance Team", "members": ["john.smith@contoso.com"]},
    {"name": "All Staff", "members": ["john.smith@contoso.com", "alice@contoso.com"]},
    {"name": "Sales Floor", "members": ["john.smith@contoso.com"]}
  ],
  "mailboxes": [
    {"upn": "ceo@contoso.com", "type": "UserMailbox",
     "full_access": [{"user": "john.smith@contoso.com"}, {"user": "Finance Team"},
                     {"user": "alice@contoso.com", "inherited": true}],
     "send_on_behalf": ["john.smith@contoso.com"],
     "calendar": [{"user": "john.smith@contoso.com", "access_rights": "Editor", "delegate": true},
                  {"user": "alice@contoso.com", "access_rights": "Reviewer"}]},
    {"upn": "finance@contoso.com", "type": "UserMailbox",
     "full_access": [{"user": "john.smith@contoso.com"}], "send_as": ["john.smith@contoso.com"]},
    {"upn": "info@contoso.com", "type": "UserMailbox", "send_as": ["john.smith@contoso.com", "Finance Team"]},
    {"upn": "sales@contoso.com", "type": "UserMailbox",
     "send_on_behalf": ["john.smith@contoso.com", "alice@contoso.com", "o'brien@contoso.com"]},
    {"upn": "support@contoso.com", "display_name": "Support", "type": "SharedMailbox",
     "full_access": [{"user": "john.smith@contoso.com"}], "send_as": ["john.smith@contoso.com"]}
  ],
  "sim": {"page_size": 2, "retry_after_secs": 0, "fail_mailboxes": ["finance@contoso.com"]}
}"#;

const JOHN: &str = "john.smith@contoso.com";

struct Sandbox {
    sim: SimHandle,
    graph: Arc<GraphClient>,
    exchange: Arc<ExchangeClient>,
}

async fn sandbox_with(secret_in_sim: Option<&str>, secret_in_client: &str) -> Sandbox {
    let fixture = Fixture::from_json(FIXTURE).expect("fixture");
    let options = SimOptions {
        client_secret: secret_in_sim.map(str::to_string),
        cw_private_key: None,
        ..Default::default()
    };
    let sim = revoke365_sim::start(fixture, options)
        .await
        .expect("simulator starts");
    let urls = ServiceUrls::all_at(&sim.base_url);
    let core = HttpCore::new(HttpSettings::default()).expect("http core");
    let creds = AppCredentials {
        tenant_id: TENANT.into(),
        client_id: "revoke365-app".into(),
        credential: revoke365::config::ClientCredential::Secret(Secret::new(secret_in_client)),
    };
    Sandbox {
        graph: Arc::new(GraphClient::new(core.clone(), &urls, creds.clone())),
        exchange: Arc::new(ExchangeClient::new(core, &urls, creds)),
        sim,
    }
}

async fn sandbox() -> Sandbox {
    sandbox_with(Some(SECRET), SECRET).await
}

impl Sandbox {
    fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }

    fn requests(&self, key: &str) -> u64 {
        self.snapshot().requests(key)
    }

    fn mailbox(&self, upn: &str) -> MailboxSnapshot {
        self.snapshot()
            .mailbox(upn)
            .cloned()
            .unwrap_or_else(|| panic!("{upn} in state"))
    }

    /// The users holding `grant` (`FULL_ACCESS`, `SEND_AS`, `SEND_ON_BEHALF`, `CALENDAR`) on `upn`.
    fn holders(&self, upn: &str, grant: &str) -> Vec<String> {
        let mailbox = self.mailbox(upn);
        match grant {
            FULL_ACCESS => mailbox.full_access.into_iter().map(|g| g.user).collect(),
            SEND_AS => mailbox.send_as.into_iter().map(|g| g.user).collect(),
            SEND_ON_BEHALF => mailbox.send_on_behalf,
            CALENDAR => mailbox.calendar.into_iter().map(|g| g.user).collect(),
            other => panic!("no grant kind {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn one_token_per_scope_serves_many_concurrent_calls() {
    let sandbox = sandbox().await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let graph = sandbox.graph.clone();
        let exchange = sandbox.exchange.clone();
        calls.spawn(async move {
            graph
                .find_user(JOHN)
                .await
                .unwrap()
                .user()
                .expect("john exists");
            exchange
                .mailbox_permissions("ceo@contoso.com")
                .await
                .unwrap();
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        sandbox.requests("token"),
        2,
        "one Graph token and one Exchange token"
    );
    assert_eq!(sandbox.requests("graph GET /users/{id}"), 10);
    assert_eq!(
        sandbox.requests("exo Get-MailboxPermission"),
        20,
        "four entries at two a page"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_does_not_repeat_the_secret() {
    let sandbox = sandbox_with(Some(SECRET), "wrong-secret-8f2a").await;
    let err = sandbox.graph.find_user(JOHN).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Auth { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(
        !text.contains("wrong-secret-8f2a") && !text.contains(SECRET),
        "{text}"
    );
    assert!(!err.is_transient());
    assert_eq!(
        sandbox.requests("graph GET /users/{id}"),
        0,
        "no Graph call without a token"
    );
}

// ---------------------------------------------------------------------------------------------
// Graph: users, groups, calendars, mail

#[tokio::test]
async fn users_are_found_exactly_and_lookalikes_are_not_confused() {
    let sandbox = sandbox().await;
    let john = sandbox
        .graph
        .find_user(JOHN)
        .await
        .unwrap()
        .user()
        .expect("john exists");
    assert_eq!(
        (
            john.user_principal_name.as_str(),
            john.display_name.as_str()
        ),
        (JOHN, "John Smith")
    );
    assert_eq!(john.id.len(), 36, "a GUID-shaped object id: {}", john.id);

    let lookalike = sandbox
        .graph
        .find_user("john.smith2@contoso.com")
        .await
        .unwrap()
        .user()
        .expect("lookalike exists");
    assert_ne!(lookalike.id, john.id);
    assert_eq!(
        sandbox
            .graph
            .find_user("john.smit@contoso.com")
            .await
            .unwrap(),
        UserLookup::NotFound
    );
    assert_eq!(
        sandbox
            .graph
            .find_user("john.smith@fabrikam.com")
            .await
            .unwrap(),
        UserLookup::NotFound
    );

    let by_id = sandbox
        .graph
        .find_user(&john.id)
        .await
        .unwrap()
        .user()
        .expect("found by id");
    assert_eq!(by_id.user_principal_name, JOHN);
}

#[tokio::test]
async fn groups_are_read_across_pages() {
    let sandbox = sandbox().await;
    let john = sandbox.graph.find_user(JOHN).await.unwrap().user().unwrap();
    let mut groups: Vec<String> = sandbox
        .graph
        .groups_of(&john.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.display_name)
        .collect();
    groups.sort();
    assert_eq!(groups, ["All Staff", "Finance Team", "Sales Floor"]);
    assert_eq!(
        sandbox.requests("graph GET transitiveMemberOf"),
        2,
        "three groups at two a page"
    );
}

#[tokio::test]
async fn a_calendar_permission_is_listed_removed_and_restored() {
    let sandbox = sandbox().await;
    let before = sandbox.mailbox("ceo@contoso.com");
    let permissions = sandbox
        .graph
        .calendar_permissions("ceo@contoso.com")
        .await
        .unwrap();
    assert_eq!(
        permissions.len(),
        3,
        "Default plus two grants: {permissions:?}"
    );
    assert!(!permissions[0].is_removable && permissions[0].email_address.is_none());
    let john = permissions
        .iter()
        .find(|p| p.email_address.as_deref() == Some(JOHN))
        .expect("john's permission");
    assert_eq!(john.role, "delegateWithoutPrivateEventAccess");

    let removed = sandbox
        .graph
        .remove_calendar_permission("ceo@contoso.com", &john.id)
        .await
        .unwrap();
    assert_eq!(removed, RemovalOutcome::Removed);
    assert_eq!(
        sandbox.holders("ceo@contoso.com", CALENDAR),
        ["alice@contoso.com"]
    );
    let again = sandbox
        .graph
        .remove_calendar_permission("ceo@contoso.com", &john.id)
        .await
        .unwrap();
    assert!(
        matches!(again, RemovalOutcome::AlreadyGone { .. }),
        "{again:?}"
    );

    sandbox
        .graph
        .add_calendar_permission("ceo@contoso.com", JOHN, &john.role)
        .await
        .unwrap();
    assert_eq!(
        sandbox.mailbox("ceo@contoso.com"),
        before,
        "restore puts back exactly what was there"
    );
}

#[tokio::test]
async fn mail_is_sent_as_html_with_the_report_attached() {
    let sandbox = sandbox().await;
    let mail = OutgoingMail {
        from: "automation@contoso.com".into(),
        to: vec!["secops@msp.example".into(), "alice@contoso.com".into()],
        subject: "Access removed: John Smith".into(),
        html_body: "<h1>Done</h1>".into(),
        attachments: vec![Attachment {
            name: "report.txt".into(),
            content_type: "text/plain".into(),
            content: "Full Access: 2 removed — ünïcode ok".as_bytes().to_vec(),
        }],
    };
    sandbox.graph.send(&mail).await.unwrap();
    let state = sandbox.snapshot();
    let sent = &state.sent_mail[0];
    assert_eq!(sent.from, "automation@contoso.com");
    assert_eq!(sent.subject, "Access removed: John Smith");
    assert_eq!(sent.content_type, "HTML");
    assert_eq!(sent.body, "<h1>Done</h1>");
    assert_eq!(sent.to, ["secops@msp.example", "alice@contoso.com"]);
    assert_eq!(sent.attachments[0].name, "report.txt");
    assert_eq!(
        sent.attachments[0].content,
        "Full Access: 2 removed — ünïcode ok"
    );
}

#[tokio::test]
async fn graph_changes_on_a_failing_mailbox_are_api_errors() {
    let sandbox = sandbox().await;
    let err = sandbox
        .graph
        .add_calendar_permission("finance@contoso.com", JOHN, "read")
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::Api { status: 403, code: Some(c), .. } if c == "ErrorAccessDenied"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Exchange: reads

#[tokio::test]
async fn every_mailbox_is_read_across_pages() {
    let sandbox = sandbox().await;
    let mailboxes = sandbox.exchange.mailboxes().await.unwrap();
    assert_eq!(mailboxes.len(), 10, "nine users plus the shared mailbox");
    assert_eq!(
        sandbox.requests("exo Get-Mailbox"),
        5,
        "ten mailboxes at two a page"
    );
    let support = mailboxes
        .iter()
        .find(|m| m.address() == "support@contoso.com")
        .expect("support@");
    assert!(support.is_shared());
    let ceo = mailboxes
        .iter()
        .find(|m| m.address() == "ceo@contoso.com")
        .expect("ceo@");
    assert!(!ceo.is_shared() && ceo.distinguished_name.starts_with("CN=ceo,"));
    assert_eq!(ceo.grant_send_on_behalf_to, ["john.smith"]);
    assert!(ceo.external_directory_object_id.is_some() && ceo.is_identified_by("CEO@contoso.com"));
}

#[tokio::test]
async fn send_on_behalf_is_found_by_the_users_dn_even_with_a_quote_in_it() {
    let sandbox = sandbox().await;
    let mailboxes = sandbox.exchange.mailboxes().await.unwrap();
    let dn_of = |upn: &str| {
        mailboxes
            .iter()
            .find(|m| m.address() == upn)
            .unwrap()
            .distinguished_name
            .clone()
    };

    let mut johns: Vec<String> = sandbox
        .exchange
        .mailboxes_with_send_on_behalf(&dn_of(JOHN))
        .await
        .unwrap()
        .iter()
        .map(|m| m.address())
        .collect();
    johns.sort();
    assert_eq!(johns, ["ceo@contoso.com", "sales@contoso.com"]);

    let obrien_dn = dn_of("o'brien@contoso.com");
    assert!(obrien_dn.contains('\''), "{obrien_dn}");
    let obriens = sandbox
        .exchange
        .mailboxes_with_send_on_behalf(&obrien_dn)
        .await
        .unwrap();
    assert_eq!(
        obriens.iter().map(|m| m.address()).collect::<Vec<_>>(),
        ["sales@contoso.com"]
    );
}

#[tokio::test]
async fn mailbox_permissions_come_back_with_their_flags() {
    let sandbox = sandbox().await;
    let entries = sandbox
        .exchange
        .mailbox_permissions("ceo@contoso.com")
        .await
        .unwrap();
    let users: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
    assert!(
        users.contains(&"NT AUTHORITY\\SELF") && users.contains(&"Finance Team"),
        "{users:?}"
    );
    let john = entries
        .iter()
        .find(|e| e.user == JOHN)
        .expect("john's entry");
    assert_eq!(
        (john.access_rights.clone(), john.is_inherited, john.deny),
        (vec!["FullAccess".to_string()], false, false)
    );
    let alice = entries
        .iter()
        .find(|e| e.user == "alice@contoso.com")
        .expect("alice's entry");
    assert!(alice.is_inherited);

    let err = sandbox
        .exchange
        .mailbox_permissions("nobody@contoso.com")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn send_as_is_found_by_trustee_for_users_and_groups() {
    let sandbox = sandbox().await;
    let mailboxes = sandbox.exchange.mailboxes().await.unwrap();
    let address_of = |identity: &str| {
        mailboxes
            .iter()
            .find(|m| m.is_identified_by(identity))
            .map(|m| m.address())
            .unwrap_or_default()
    };

    let mut johns: Vec<String> = sandbox
        .exchange
        .send_as_by_trustee(JOHN)
        .await
        .unwrap()
        .iter()
        .map(|e| address_of(&e.identity))
        .collect();
    johns.sort();
    assert_eq!(
        johns,
        [
            "finance@contoso.com",
            "info@contoso.com",
            "support@contoso.com"
        ]
    );

    let groups = sandbox
        .exchange
        .send_as_by_trustee("Finance Team")
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (
            address_of(&groups[0].identity),
            groups[0].access_control_type.as_str()
        ),
        ("info@contoso.com".into(), "Allow")
    );
    assert_eq!(groups[0].access_rights, ["SendAs"]);
}

#[tokio::test]
async fn recipients_resolve_by_name_and_ambiguity_is_an_error() {
    let sandbox = sandbox().await;
    let group = sandbox
        .exchange
        .recipient("Finance Team")
        .await
        .unwrap()
        .expect("group resolves");
    assert_eq!(group.recipient_type_details, "MailUniversalSecurityGroup");
    assert!(!group.primary_smtp_address.is_empty());
    let alice = sandbox
        .exchange
        .recipient("Alice Ng")
        .await
        .unwrap()
        .expect("alice resolves");
    assert_eq!(alice.primary_smtp_address, "alice@contoso.com");
    assert_eq!(
        sandbox.exchange.recipient("Nobody Here").await.unwrap(),
        None
    );

    let err = sandbox.exchange.recipient("John Smith").await.unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::Api { message, .. } if message.contains("matches multiple entries")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Exchange: changes

#[tokio::test]
async fn full_access_is_removed_once_then_already_gone_then_restored() {
    let sandbox = sandbox().await;
    let before = sandbox.mailbox("support@contoso.com");
    assert_eq!(
        sandbox
            .exchange
            .remove_full_access("support@contoso.com", JOHN)
            .await
            .unwrap(),
        RemovalOutcome::Removed
    );
    assert!(sandbox
        .holders("support@contoso.com", FULL_ACCESS)
        .is_empty());
    let again = sandbox
        .exchange
        .remove_full_access("support@contoso.com", JOHN)
        .await
        .unwrap();
    assert!(
        matches!(&again, RemovalOutcome::AlreadyGone { warning } if warning.contains("doesn't exist")),
        "{again:?}"
    );

    sandbox
        .exchange
        .add_full_access("support@contoso.com", JOHN)
        .await
        .unwrap();
    assert_eq!(sandbox.mailbox("support@contoso.com"), before);
}

#[tokio::test]
async fn send_as_is_removed_once_then_already_gone_then_restored() {
    let sandbox = sandbox().await;
    let before = sandbox.mailbox("info@contoso.com");
    assert_eq!(
        sandbox
            .exchange
            .remove_send_as("info@contoso.com", None, JOHN)
            .await
            .unwrap(),
        RemovalOutcome::Removed
    );
    assert_eq!(
        sandbox.holders("info@contoso.com", SEND_AS),
        ["Finance Team"],
        "the group's grant stays"
    );
    let again = sandbox
        .exchange
        .remove_send_as("info@contoso.com", None, JOHN)
        .await
        .unwrap();
    assert!(
        matches!(&again, RemovalOutcome::AlreadyGone { warning } if warning.contains("isn't present")),
        "{again:?}"
    );

    sandbox
        .exchange
        .add_send_as("info@contoso.com", None, JOHN)
        .await
        .unwrap();
    assert_eq!(sandbox.mailbox("info@contoso.com"), before);
}

#[tokio::test]
async fn send_on_behalf_is_removed_once_then_already_gone_then_restored() {
    let sandbox = sandbox().await;
    let before = sandbox.mailbox("sales@contoso.com");
    assert_eq!(
        sandbox
            .exchange
            .remove_send_on_behalf("sales@contoso.com", JOHN)
            .await
            .unwrap(),
        RemovalOutcome::Removed
    );
    assert_eq!(
        sandbox.holders("sales@contoso.com", SEND_ON_BEHALF),
        ["alice@contoso.com", "o'brien@contoso.com"]
    );
    let again = sandbox
        .exchange
        .remove_send_on_behalf("sales@contoso.com", JOHN)
        .await
        .unwrap();
    assert!(
        matches!(&again, RemovalOutcome::AlreadyGone { warning } if warning.contains("have been modified")),
        "{again:?}"
    );

    sandbox
        .exchange
        .add_send_on_behalf("sales@contoso.com", JOHN)
        .await
        .unwrap();
    assert_eq!(sandbox.mailbox("sales@contoso.com"), before);
}

#[tokio::test]
async fn a_failing_mailbox_is_an_api_error_tried_once() {
    let sandbox = sandbox().await;
    let err = sandbox
        .exchange
        .remove_full_access("finance@contoso.com", JOHN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ErrorKind::Api { status: 500, message, .. } if message.contains("Access to mailbox 'finance@contoso.com' is denied")),
        "{err:?}"
    );
    assert!(
        !err.is_transient(),
        "a permanent exception type stays permanent even as HTTP 500"
    );
    assert_eq!(
        sandbox.requests("exo Remove-MailboxPermission"),
        1,
        "500 is not retried in-process"
    );
    assert_eq!(sandbox.holders("finance@contoso.com", FULL_ACCESS), [JOHN]);
}
