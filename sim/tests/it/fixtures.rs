//! The shipped tenant fixtures load and derive the state the scenarios rely on.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{fixture, TestSim, ACME, HARD};

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
