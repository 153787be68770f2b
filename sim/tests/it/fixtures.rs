//! The shipped tenant fixtures load and derive the state the scenarios rely on.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use revoke365_sim::ShownAs;
use serde_json::json;

use crate::common::{cmdlet, fixture, TestSim, ACME, HARD, PETER, PETER2, REAL};

/// Every grant list entry naming `user` on mailboxes other than `own`:
/// `(mailbox, kind, detail)`.
fn grants_of(state: &Value, user: &str, own: &str) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    for mailbox in state["mailboxes"].as_array().unwrap() {
        let upn = mailbox["upn"].as_str().unwrap();
        if upn == own {
            continue;
        }
        let mut add =
            |kind: &str, detail: String| found.insert((upn.to_string(), kind.to_string(), detail));
        for ace in mailbox["full_access"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["user"] == user)
        {
            add(
                "full_access",
                format!("inherited={} deny={}", ace["inherited"], ace["deny"]),
            );
        }
        for ace in mailbox["send_as"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["user"] == user)
        {
            add(
                "send_as",
                format!("inherited={} deny={}", ace["inherited"], ace["deny"]),
            );
        }
        for delegate in mailbox["send_on_behalf"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| *d == user)
        {
            add("send_on_behalf", delegate.to_string());
        }
        for grant in mailbox["calendar"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["user"] == user)
        {
            add(
                "calendar",
                format!(
                    "{} delegate={}",
                    grant["access_rights"].as_str().unwrap(),
                    grant["delegate"]
                ),
            );
        }
    }
    found
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn mailbox_type(state: &Value, upn: &str) -> String {
    let mailboxes = state["mailboxes"].as_array().unwrap();
    mailboxes.iter().find(|m| m["upn"] == upn).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_string()
}

const DIRECT: &str = "inherited=false deny=false";

#[tokio::test]
async fn acme_tenant() {
    let tenant = fixture(ACME);
    assert_eq!(tenant.organization.company_name, "Acme Corp");
    assert_eq!(tenant.organization.psa_company(), "AcmeCorp");
    assert_eq!(
        tenant.organization.m365_permission_notification_recipients,
        ["secops@msp.example"]
    );
    assert_eq!(
        (tenant.sim.seed, tenant.sim.page_size, tenant.sim.rate_503),
        (7, 3, 0.0)
    );
    assert!(tenant.sim.concurrency_cap.is_none());
    let sim = TestSim::start(tenant).await;
    let state = sim.state();
    let john = grants_of(&state, "john.smith@acmecorp.com", "john.smith@acmecorp.com");
    let expected = set(&[
        ("ceo@acmecorp.com", "full_access", DIRECT),
        ("finance@acmecorp.com", "full_access", DIRECT),
        ("info@acmecorp.com", "send_as", DIRECT),
        (
            "sales@acmecorp.com",
            "send_on_behalf",
            "\"john.smith@acmecorp.com\"",
        ),
        ("ceo@acmecorp.com", "calendar", "Editor delegate=true"),
        ("support@acmecorp.com", "full_access", DIRECT),
        ("billing@acmecorp.com", "full_access", DIRECT),
        ("billing@acmecorp.com", "send_as", DIRECT),
    ]);
    assert_eq!(john, expected);
    for (upn, kind) in [
        ("support@acmecorp.com", "SharedMailbox"),
        ("billing@acmecorp.com", "SharedMailbox"),
        ("ceo@acmecorp.com", "UserMailbox"),
        ("finance@acmecorp.com", "UserMailbox"),
        ("info@acmecorp.com", "UserMailbox"),
        ("sales@acmecorp.com", "UserMailbox"),
    ] {
        assert_eq!(mailbox_type(&state, upn), kind, "{upn}");
    }
    // Others hold grants on the same mailboxes; John is in no group.
    assert!(!grants_of(&state, "jane.doe@acmecorp.com", "jane.doe@acmecorp.com").is_empty());
    let groups = sim
        .graph_get("/v1.0/users/john.smith@acmecorp.com/transitiveMemberOf/microsoft.graph.group")
        .await;
    assert!(groups.values().is_empty());
    let sender = sim.graph_get("/v1.0/users/automation@acmecorp.com").await;
    assert_eq!(sender.status, 200, "notification sender exists");
    assert_eq!(state["tickets"][0]["id"], "48213");
    assert_eq!(state["tickets"][0]["summary"], "Offboard John Smith");
}

#[tokio::test]
async fn hard_tenant() {
    let tenant = fixture(HARD);
    assert_eq!(tenant.organization.company_id, "globex");
    assert_eq!((tenant.sim.seed, tenant.sim.page_size), (11, 2));
    assert_eq!(tenant.sim.fail_mailboxes, ["legal@globexcorp.com"]);
    let sim = TestSim::start(tenant).await;
    let state = sim.state();
    let john = grants_of(
        &state,
        "john.smith@globexcorp.com",
        "john.smith@globexcorp.com",
    );
    let expected = set(&[
        ("ceo@globexcorp.com", "full_access", DIRECT),
        (
            "ceo@globexcorp.com",
            "full_access",
            "inherited=true deny=false",
        ),
        ("ceo@globexcorp.com", "calendar", "Editor delegate=true"),
        ("cfo@globexcorp.com", "calendar", "Reviewer delegate=false"),
        (
            "hr@globexcorp.com",
            "full_access",
            "inherited=false deny=true",
        ),
        ("hr@globexcorp.com", "send_as", "inherited=false deny=true"),
        ("info@globexcorp.com", "full_access", DIRECT),
        ("info@globexcorp.com", "send_as", DIRECT),
        ("legal@globexcorp.com", "full_access", DIRECT),
        (
            "sales@globexcorp.com",
            "send_on_behalf",
            "\"john.smith@globexcorp.com\"",
        ),
    ]);
    assert_eq!(john, expected);
    let via_group = grants_of(&state, "Finance Team", "");
    assert_eq!(
        via_group,
        set(&[
            ("cfo@globexcorp.com", "full_access", DIRECT),
            ("cfo@globexcorp.com", "send_as", DIRECT)
        ])
    );
    let own = sim.mailbox_state("john.smith@globexcorp.com");
    assert_eq!(own["calendar"][0]["user"], "jsmith.sales@globexcorp.com");
    assert_eq!(mailbox_type(&state, "info@globexcorp.com"), "SharedMailbox");
    let ceo_full_access =
        crate::common::users(&sim.mailbox_state("ceo@globexcorp.com")["full_access"]);
    assert!(ceo_full_access.contains(&"S-1-5-21-1004336348-1177238915-682003330-512".to_string()));

    let groups = sim
        .graph_get("/v1.0/users/john.smith@globexcorp.com/transitiveMemberOf/microsoft.graph.group")
        .await;
    assert_eq!(groups.values()[0]["displayName"], "Finance Team");
    for (upn, name) in [
        ("jsmith.sales@globexcorp.com", "John Smith"),
        ("john.smith2@globexcorp.com", "John Smith2"),
    ] {
        assert_eq!(
            sim.graph_get(&format!("/v1.0/users/{upn}")).await.body["displayName"],
            name
        );
    }
    assert_eq!(state["tickets"][0]["id"], "7301");
    assert_eq!(state["tickets"][0]["company"], "GlobexCorp");
}

#[tokio::test]
async fn real_tenant_loads_with_peters_grants() {
    let tenant = fixture(REAL);
    assert_eq!(tenant.organization.company_id, "initech");
    assert_eq!(tenant.organization.company_name, "Initech");
    assert_eq!(tenant.organization.psa_company(), "initech");
    let knobs = &tenant.sim;
    assert_eq!(knobs.page_size, 2);
    assert_eq!(knobs.read_lag_ms, 300);
    assert_eq!(knobs.revoke_tokens_after, Some(25));
    assert_eq!(knobs.fail_mailboxes, ["legal@initech.com"]);
    let faults: Vec<(&str, Option<&str>, &str)> = knobs
        .faults
        .iter()
        .map(|f| {
            (
                f.endpoint.as_str(),
                f.identity.as_deref(),
                f.answer.as_str(),
            )
        })
        .collect();
    assert_eq!(
        faults,
        [
            ("exo Get-Mailbox", None, "concurrent_text"),
            ("exo Get-MailboxPermission", Some("it@initech.com"), "504"),
            (
                "exo Remove-RecipientPermission",
                Some("info@initech.com"),
                "502"
            ),
            (
                "exo Remove-MailboxPermission",
                Some("ceo@initech.com"),
                "503_after_write"
            ),
        ]
    );
    let sim = TestSim::start(tenant).await;
    let snapshot = sim.handle.snapshot();
    let peter = snapshot.direct_grants_of(PETER);
    let expected: Vec<(String, &str)> = [
        ("ceo@initech.com", "full_access"),
        ("ceo@initech.com", "calendar"),
        ("finance@initech.com", "full_access"),
        ("info@initech.com", "send_as"),
        ("it@initech.com", "full_access"),
        ("legal@initech.com", "full_access"),
        ("sales@initech.com", "send_as"),
        ("sales@initech.com", "send_on_behalf"),
        ("support@initech.com", "full_access"),
        ("allstaff@initech.com", "send_as"),
        ("project-x@initech.com", "send_as"),
    ]
    .into_iter()
    .map(|(r, k)| (r.to_string(), k))
    .collect();
    assert_eq!(peter, expected);
    assert_eq!(
        snapshot.direct_grants_of("TPS Reports"),
        [("reports@initech.com".to_string(), "send_as")]
    );
    assert_eq!(
        snapshot.direct_grants_of("bob.slydell@initech.onmicrosoft.com"),
        [("ceo@initech.com".to_string(), "send_on_behalf")]
    );
    assert_eq!(
        snapshot.direct_grants_of("milton@initech.com"),
        [("lumbergh@initech.com".to_string(), "full_access")]
    );
    let lookalike = snapshot.direct_grants_of(PETER2);
    assert_eq!(lookalike.len(), 6, "{lookalike:?}");
    let ceo = snapshot.mailbox("ceo@initech.com").unwrap();
    let shown: Vec<(&str, Option<ShownAs>)> = ceo
        .full_access
        .iter()
        .map(|a| (a.user.as_str(), a.shown_as))
        .collect();
    assert!(shown.contains(&(PETER, Some(ShownAs::Upn))));
    let sales = &snapshot.mailbox("sales@initech.com").unwrap().send_as;
    assert!(sales
        .iter()
        .any(|a| a.user == PETER && a.trustee_lookup_misses && a.shown_as == Some(ShownAs::Name)));
    assert_eq!(
        snapshot.mailbox("support@initech.com").unwrap().kind,
        "SharedMailbox"
    );
    let kinds: Vec<(&str, &str)> = snapshot
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("bob.slydell@initech.onmicrosoft.com", "MailUser"),
            ("tps-reports@initech.com", "MailUniversalSecurityGroup"),
            ("allstaff@initech.com", "MailUniversalDistributionGroup"),
            ("project-x@initech.com", "GroupMailbox"),
            ("orders@chotchkies.example", "MailContact"),
        ]
    );
    assert_eq!(snapshot.ticket("4101").unwrap().company, "initech");
    assert_eq!(
        snapshot.ticket("4101").unwrap().summary,
        "Offboard Peter Gibbons"
    );
    let groups = sim
        .graph_get(&format!(
            "/v1.0/users/{PETER}/transitiveMemberOf/microsoft.graph.group"
        ))
        .await;
    assert_eq!(groups.values().len(), 2, "page_size 2");
    let milton = sim.graph_get("/v1.0/users/milton@initech.com").await;
    assert_eq!(milton.body["accountEnabled"], false);
}

/// Every knob of the real tenant fires on one short run around Peter.
#[tokio::test]
async fn real_tenant_knobs_fire_together() {
    let mut sim = TestSim::start(fixture(REAL)).await;
    // Authenticated requests so far, to find the revocation point.
    let authenticated = std::cell::Cell::new(0);
    let exo = |body: String| {
        authenticated.set(authenticated.get() + 1);
        body
    };
    let first = sim
        .exo(&exo(cmdlet(
            "Get-Mailbox",
            json!({"ResultSize": "Unlimited"}),
        )))
        .await;
    assert_eq!(
        (first.status, first.content_type()),
        (500, "text/plain; charset=utf-8")
    );
    let page = sim
        .exo(&exo(cmdlet(
            "Get-Mailbox",
            json!({"ResultSize": "Unlimited"}),
        )))
        .await;
    assert_eq!(page.values().len(), 2);
    let it = cmdlet(
        "Get-MailboxPermission",
        json!({"Identity": "it@initech.com"}),
    );
    assert_eq!(sim.exo(&exo(it.clone())).await.status, 504);
    let it = sim.exo(&exo(it)).await;
    let peter_id = it.values()[1]["User"].as_str().unwrap().to_string();
    assert_eq!(peter_id.len(), 36, "shown as guid");

    let remove_sa = cmdlet(
        "Remove-RecipientPermission",
        json!({"Identity": "info@initech.com", "Trustee": PETER, "AccessRights": ["SendAs"], "Confirm": false}),
    );
    assert_eq!(sim.exo(&exo(remove_sa.clone())).await.status, 502);
    let done = sim.exo(&exo(remove_sa)).await;
    assert_eq!(
        (done.status, done.text.as_str()),
        (200, ""),
        "empty write answer"
    );

    let remove_fa = |mailbox: &str| {
        cmdlet(
            "Remove-MailboxPermission",
            json!({"Identity": mailbox, "User": PETER, "AccessRights": ["FullAccess"], "InheritanceType": "All", "Confirm": false}),
        )
    };
    let unavailable = sim.exo(&exo(remove_fa("ceo@initech.com"))).await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.header("retry-after"), Some("1"));
    assert!(!sim
        .handle
        .snapshot()
        .direct_grants_of(PETER)
        .contains(&("ceo@initech.com".to_string(), "full_access")));
    let stale = sim
        .exo(&exo(cmdlet(
            "Get-MailboxPermission",
            json!({"Identity": "ceo@initech.com", "User": PETER}),
        )))
        .await;
    assert_eq!(stale.values()[0]["User"], PETER, "read lag");
    let retry = sim.exo(&exo(remove_fa("ceo@initech.com"))).await;
    assert!(retry.warnings()[0].contains("ACE doesn't exist"));
    let legal = sim.exo(&exo(remove_fa("legal@initech.com"))).await;
    assert_eq!(legal.status, 500);
    assert!(legal.exo_detail().contains("TaskAccessDeniedException"));

    authenticated.set(authenticated.get() + 1);
    let finance = sim
        .graph_get("/v1.0/users/finance@initech.com/calendar/calendarPermissions")
        .await;
    assert_eq!(finance.body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    let folder = sim
        .exo(&exo(cmdlet(
            "Set-MailboxFolderPermission",
            json!({"Identity": "ceo@initech.com:\\Calendar", "User": PETER, "AccessRights": ["Reviewer"]}),
        )))
        .await;
    assert_eq!(folder.status, 403);
    let by_trustee = sim
        .exo(&exo(cmdlet(
            "Get-RecipientPermission",
            json!({"Trustee": PETER}),
        )))
        .await;
    let on: Vec<&str> = by_trustee
        .values()
        .iter()
        .filter_map(|i| i["Identity"].as_str())
        .collect();
    assert!(
        on.contains(&"All Staff") && !on.contains(&"sales"),
        "{on:?}"
    );

    // The 26th authenticated request finds its token revoked.
    let user = format!("/v1.0/users/{PETER}");
    while authenticated.get() < 25 {
        authenticated.set(authenticated.get() + 1);
        let status = sim.graph_get(&user).await.status;
        assert_eq!(status, 200, "request {}", authenticated.get());
    }
    assert_eq!(sim.graph_get(&user).await.status, 401);
    sim.renew_tokens().await;
    assert_eq!(sim.graph_get(&user).await.status, 200);
    let counters = sim.handle.snapshot().counters;
    assert_eq!(counters.injected_faults, 4);
    assert_eq!(counters.tokens_revoked, 2);
}

#[test]
fn binary_prints_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_revoke365-sim"))
        .args(["--fixture", ACME, "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state: Value = runtime.block_on(async {
        reqwest::get(format!("{base}/_sim/state"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(state["tenant_id"], "3f6d2c1a-8b4e-4f7a-9c2d-1e5b7a9c0d4f");
}
