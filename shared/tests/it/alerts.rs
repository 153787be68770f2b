//! Alert intake over real HTTP against the simulator: the poller reads Defender XDR
//! `alerts_v2` and Entra ID Protection `riskyUsers` and starts one contain run per compromised
//! user, once per alert; a Sentinel incident payload does the same.

use revoke365::model::{Run, RunFilter, RunMode, RunStatus};
use revoke365::ports::RunRecords;
use revoke365::steps::{intake_sentinel, poll_alerts, PollReport};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";
const JANE: &str = "jane.doe@acmecorp.com";
const PRINCIPAL: &str = "os-user:secops";

/// The alerts tenant with the company's alert settings set to `alerts`.
fn tenant(alerts: Value) -> Value {
    let mut f = fixture("acme-alerts-tenant.json");
    f["organization"]["alerts"] = alerts;
    f
}

/// What the alert tests ask of the harness.
trait AlertHarness {
    async fn poll(&self) -> PollReport;
    async fn runs(&self) -> Vec<Run>;
}

impl AlertHarness for Harness {
    /// One poll of the company's alerts, then every run it started driven to its end.
    async fn poll(&self) -> PollReport {
        let connections = revoke365::ports::Connector::connect(self.connector.as_ref(), &self.org)
            .await
            .unwrap();
        let report = poll_alerts(
            self.store.as_ref(),
            self.store.as_ref(),
            self.engine.queue.as_ref(),
            &connections,
            &self.org,
            Some(PRINCIPAL),
            chrono::Utc::now(),
        )
        .await
        .expect("poll");
        assert!(self.engine.run_until_idle().await);
        report
    }

    async fn runs(&self) -> Vec<Run> {
        let filter = RunFilter {
            company_id: Some("acme".into()),
            ..RunFilter::default()
        };
        let page = self.store.list_runs(&filter, 100, None).await.unwrap();
        let mut runs = Vec::new();
        for summary in page.runs {
            runs.push(self.store.get_run(&summary.run_id).await.unwrap().unwrap());
        }
        runs
    }
}

#[tokio::test]
async fn a_compromised_user_in_a_defender_alert_starts_one_contain_run_and_polling_again_starts_none(
) {
    let h = Harness::start(tenant(json!({"entra_id_protection": false})), fast_http(10)).await;
    assert!(!h.snapshot().direct_grants_of(JOHN).is_empty());

    let report = h.poll().await;
    assert_eq!(report.started(), 1, "{report:#?}");
    let started = &report.runs[0];
    assert_eq!((started.user_email.as_str(), started.created), (JOHN, true));
    // The low-severity alert and the security test start nothing; neither does a mailbox that
    // is evidence but not compromised, nor a merely suspicious one.
    let skipped = report.skipped.join("\n");
    assert!(skipped.contains("_2: severity 'low'"), "{skipped}");
    assert!(
        skipped.contains("_3: determination 'securityTesting'"),
        "{skipped}"
    );
    assert!(
        skipped.contains("_4: no user or mailbox evidence"),
        "{skipped}"
    );
    // Four alerts on pages of three: the client followed the nextLink.
    assert_eq!(h.snapshot().requests("graph GET alerts_v2"), 2);

    let runs = h.runs().await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let r = &run.request;
    assert_eq!(r.user_email, JOHN);
    assert_eq!(r.mode, RunMode::Contain);
    assert!(r.victim_mailbox);
    assert_eq!(r.incident_id.as_deref(), Some("4711"));
    assert_eq!(r.severity.as_deref(), Some("high"));
    assert_eq!(r.alert_source.as_deref(), Some("defender"));
    assert_eq!(r.requested_by_principal.as_deref(), Some(PRINCIPAL));
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.failure);
    assert!(h.snapshot().direct_grants_of(JOHN).is_empty());
    assert!(!h.snapshot().direct_grants_of(JANE).is_empty());

    // The next poll reads the alert again (the overlap behind the watermark) and returns
    // the run it started.
    let again = h.poll().await;
    assert_eq!(again.started(), 0, "{again:#?}");
    assert_eq!(again.runs.len(), 1);
    assert_eq!(again.runs[0].run_id, Some(run.run_id.clone()));
    assert!(!again.runs[0].created);
    assert_eq!(h.runs().await.len(), 1);
}

#[tokio::test]
async fn a_confirmed_compromised_risky_user_starts_one_run_and_an_at_risk_one_waits_for_its_level()
{
    let h = Harness::start(tenant(json!({"defender": false})), fast_http(10)).await;
    let report = h.poll().await;
    assert_eq!(report.started(), 1, "{report:#?}");
    assert_eq!(report.runs[0].user_email, JANE);
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.contains("atRisk at level medium")),
        "{:?}",
        report.skipped
    );
    let runs = h.runs().await;
    assert_eq!(runs.len(), 1);
    let r = &runs[0].request;
    assert_eq!(r.alert_source.as_deref(), Some("entra_id_protection"));
    assert_eq!(r.mode, RunMode::Contain);
    assert_eq!(r.severity.as_deref(), Some("high"));
    assert_eq!(
        runs[0].status,
        RunStatus::Completed,
        "{:?}",
        runs[0].failure
    );
    assert!(h.snapshot().direct_grants_of(JANE).is_empty());
    assert_eq!(h.poll().await.started(), 0);

    // A company that acts on users at risk from medium on also contains the other one.
    let h = Harness::start(
        tenant(json!({"defender": false, "at_risk_level": "medium"})),
        fast_http(10),
    )
    .await;
    let mut users: Vec<String> = h
        .poll()
        .await
        .runs
        .into_iter()
        .map(|r| r.user_email)
        .collect();
    users.sort();
    assert_eq!(users, ["it.admin@acmecorp.com", JANE]);
}

#[tokio::test]
async fn a_feed_the_tenant_has_no_license_for_is_skipped_with_a_note() {
    let f = with_sim(tenant(json!({})), json!({"unlicensed": ["riskyUsers"]}));
    let h = Harness::start(f, fast_http(10)).await;
    let report = h.poll().await;
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].starts_with("entra_id_protection: not read")
            && report.notes[0].contains("Entra ID P2"),
        "{:?}",
        report.notes
    );
    // Defender was read all the same.
    let users: Vec<&str> = report.runs.iter().map(|r| r.user_email.as_str()).collect();
    assert_eq!(users, [JOHN]);
}

#[tokio::test]
async fn the_graph_client_reads_only_alerts_changed_since_the_watermark() {
    let h = Harness::start(tenant(json!({})), fast_http(10)).await;
    let connections = revoke365::ports::Connector::connect(h.connector.as_ref(), &h.org)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let all = connections
        .alerts
        .security_alerts(now - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let john = &all
        .iter()
        .find(|a| a.incident_id.as_deref() == Some("4711"))
        .unwrap()
        .users;
    assert_eq!(john[0].address.as_deref(), Some(JOHN));
    assert!(john[0].is_compromised() && john[0].azure_ad_user_id.is_some());
    assert_eq!(john[1].address.as_deref(), Some("ceo@acmecorp.com"));
    // The last two changed less than 4.5 minutes ago.
    let recent = connections
        .alerts
        .security_alerts(now - chrono::Duration::seconds(270))
        .await
        .unwrap();
    assert_eq!(recent.len(), 2);
    let risky = connections
        .alerts
        .risky_users(now - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(risky.len(), 2);
    assert!(risky.iter().any(|u| u.risk_state == "confirmedCompromised"
        && u.user_principal_name.as_deref() == Some(JANE)));
}

/// The body the sample Sentinel event carries.
fn sentinel_body() -> Value {
    let event = fixture("apigw-post-sentinel-alert.json");
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_sentinel_incident_starts_one_contain_run_and_a_resend_returns_it() {
    let h = Harness::start(tenant(json!({})), fast_http(10)).await;
    let body = sentinel_body();
    let first = intake_sentinel(
        h.store.as_ref(),
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some(h.connector.as_ref()),
        Some(PRINCIPAL),
        &body,
    )
    .await
    .unwrap();
    // The Account and the Mailbox entity name the same user: one run.
    assert_eq!(first.runs.len(), 1, "{first:#?}");
    assert!(first.runs[0].created);
    assert!(h.engine.run_until_idle().await);
    let runs = h.runs().await;
    assert_eq!(runs.len(), 1);
    let r = &runs[0].request;
    assert_eq!(r.user_email, JOHN);
    assert_eq!(r.mode, RunMode::Contain);
    assert!(r.victim_mailbox);
    assert_eq!(r.incident_id.as_deref(), Some("INC-2026-0107"));
    assert_eq!(r.severity.as_deref(), Some("high"));
    assert_eq!(r.alert_source.as_deref(), Some("sentinel"));
    assert_eq!(
        runs[0].status,
        RunStatus::Completed,
        "{:?}",
        runs[0].failure
    );
    assert!(h.snapshot().direct_grants_of(JOHN).is_empty());

    // Re-sent (a playbook re-run): the same run, nothing new — even after the run ended.
    let again = intake_sentinel(
        h.store.as_ref(),
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some(h.connector.as_ref()),
        Some(PRINCIPAL),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(again.runs[0].run_id, first.runs[0].run_id);
    assert!(!again.runs[0].created);
    assert_eq!(h.runs().await.len(), 1);

    // An incident whose accounts are all of another tenant starts nothing, and says why.
    let mut other = body.clone();
    other["incident_id"] = json!("INC-2");
    other["entities"] = json!([{"Type": "account", "Name": "eve", "UPNSuffix": "evil.example", "AadTenantId": "another"}]);
    let refused = intake_sentinel(
        h.store.as_ref(),
        h.store.as_ref(),
        h.engine.queue.as_ref(),
        Some(h.connector.as_ref()),
        Some(PRINCIPAL),
        &other,
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("another tenant"), "{refused}");
    assert_eq!(h.runs().await.len(), 1);
}
