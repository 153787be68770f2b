//! The serverless path when things go wrong: invocations killed in every step, side effects
//! interrupted on either side, a run no redelivery will drive, steps cut short by their
//! deadline, a reused idempotency key, runs stored by the first release, several invocations
//! sharing one tenant's budget.

use crate::aws_kit::{Env, JOHN};
use aws_sdk_dynamodb::types::AttributeValue;
use revoke365::lambda::steps::handle_step_event;
use revoke365::ports::AuditTrail;
use revoke365_testkit::{fast_http, fixture, with_sim};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"})
}

/// Long enough for every redelivery gap and lease: the run's holder is surely dead.
const LONG_AGO: Duration = Duration::from_secs(40 * 60);

async fn start_run(env: &Env, body: Value) -> String {
    let (status, accepted) = env.http("POST", "/revocations", Some(body), None).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["run_id"].as_str().unwrap().to_string()
}

/// Delivers what the discovery and removal queues hold until both are empty.
async fn through_removal(env: &Env) {
    loop {
        let mut idle = true;
        for function in [0, 1] {
            while env.receive_peek(function).await {
                idle = false;
                let failed = env.deliver_one(function).await;
                assert!(failed.is_empty(), "{failed:?}");
            }
        }
        if idle {
            return;
        }
    }
}

impl Env {
    /// Whether the function's queue holds a visible message (it stays there).
    async fn receive_peek(&self, function: usize) -> bool {
        let url = &self.steps[function].0;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        attrs[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages] != "0"
    }
}

// ---------------------------------------------------------------------------------------------
// Side effects exactly once

/// Verification dies while a side effect is on its way (`hang`: before it happened;
/// `hang_after_write`: after), and a later verification takes the run over.
async fn verification_dies_at(endpoint: &str, answer: &str) -> (Env, String) {
    let fx = with_sim(
        fixture("acme-tenant.json"),
        json!({"faults": [{"endpoint": endpoint, "answer": answer, "hang_ms": 4000}]}),
    );
    let env = Env::start(fx, 10).await;
    // No ticket id: the run creates its own ticket.
    let run_id = start_run(&env, request()).await;
    through_removal(&env).await;
    assert!(
        env.kill_after(2, Duration::from_millis(1500)).await,
        "verification was still running when it was killed"
    );
    env.backdate(&run_id, LONG_AGO).await;
    let failed = env.deliver_one(2).await;
    assert!(failed.is_empty(), "{failed:?}");
    (env, run_id)
}

/// Exactly one ticket made by the run (its summary carries the run id), one note on it.
fn one_ticket_one_note(env: &Env, run_id: &str) -> String {
    let state = env.sim.snapshot();
    let ours: Vec<_> = state
        .tickets
        .iter()
        .filter(|t| t.summary.contains(run_id))
        .collect();
    assert_eq!(ours.len(), 1, "{:#?}", state.tickets);
    assert_eq!(ours[0].notes.len(), 1, "{:#?}", ours[0].notes);
    assert!(ours[0].notes[0].text.contains(run_id));
    ours[0].id.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_killed_before_creating_the_ticket_creates_it_once() {
    let (env, run_id) = verification_dies_at("cw POST tickets", "hang").await;
    one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_killed_after_creating_the_ticket_finds_it_instead_of_making_another() {
    let (env, run_id) = verification_dies_at("cw POST tickets", "hang_after_write").await;
    let ticket = one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
    let body = env.get(&run_id).await;
    assert_eq!(body["result"]["ticket_id"], ticket.as_str());
    assert_eq!(body["result"]["success"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_killed_before_the_note_adds_it_once() {
    let (env, run_id) = verification_dies_at("cw POST notes", "hang").await;
    one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_killed_after_the_note_does_not_add_a_second() {
    let (env, run_id) = verification_dies_at("cw POST notes", "hang_after_write").await;
    one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_killed_while_mailing_never_sends_twice_and_says_so() {
    // Before the mail left: it is not sent again (it cannot be told from "after").
    let (env, run_id) = verification_dies_at("graph POST sendMail", "hang").await;
    one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 0);
    let body = env.get(&run_id).await;
    let errors = body["result"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("may not have been sent")),
        "{errors:?}"
    );
    assert_eq!(body["result"]["success"], false);

    // After it left: exactly one, never a second.
    let (env, run_id) = verification_dies_at("graph POST sendMail", "hang_after_write").await;
    one_ticket_one_note(&env, &run_id);
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Invocations killed in every step

fn slow_acme() -> Value {
    with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 120}))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovery_killed_halfway_is_taken_over_once_its_lease_ends() {
    let env = Env::start(slow_acme(), 2).await;
    let run_id = start_run(&env, request()).await;
    assert!(env.kill_after(0, Duration::from_millis(300)).await);
    // Redelivered while the dead holder's leases (the run's, the tenant budget's) still run:
    // it comes back later (a batch failure, or queued again to wait for the budget), not
    // dropped.
    let failed = env.deliver_one(0).await;
    assert!(
        !failed.is_empty() || env.steps_pending().await,
        "the redelivery was dropped"
    );
    env.backdate(&run_id, LONG_AGO).await;
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_shard_killed_halfway_is_read_again_and_counted_once() {
    let env = Env::start(slow_acme(), 1).await;
    let run_id = start_run(&env, request()).await;
    assert!(env.deliver_one(0).await.is_empty(), "the listing");
    assert!(
        env.kill_after(0, Duration::from_millis(400)).await,
        "the shard"
    );
    env.expire_budget_leases().await;
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verification_killed_halfway_is_taken_over_and_reports_once() {
    let env = Env::start(slow_acme(), 1).await;
    let run_id = start_run(&env, request()).await;
    through_removal(&env).await;
    assert!(env.kill_after(2, Duration::from_millis(300)).await);
    env.backdate(&run_id, LONG_AGO).await;
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

// ---------------------------------------------------------------------------------------------
// No run left behind

async fn sweep(env: &Env) -> Value {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(revoke365_testkit::events_dir().join("scheduled-sweep.json"))
            .unwrap(),
    )
    .unwrap();
    // The schedule delivers to the discovery function.
    handle_step_event(&env.steps[0].1, event, env.deadline())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_step_died_with_its_message_lost_is_re_driven_by_the_sweep() {
    let env = Env::start(slow_acme(), 2).await;
    let run_id = start_run(&env, request()).await;
    through_removal(&env).await;
    // Verification dies, and its message is lost: no redelivery will ever come.
    let (url, deps) = &env.steps[2];
    let (event, handles) = env.receive(url).await.unwrap();
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        revoke365::lambda::steps::handle_step_records(deps, event.clone(), env.deadline()),
    )
    .await;
    env.settle(url, &event, &handles, &[]).await;
    let body = env.get(&run_id).await;
    assert_eq!(body["status"], "verifying");

    // Nothing happens until the run has been still for long enough.
    assert_eq!(sweep(&env).await["redriven"], json!([]));
    env.backdate(&run_id, LONG_AGO).await;
    assert_eq!(sweep(&env).await["redriven"], json!([run_id]));
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_never_moves_again_is_failed_by_the_sweep_with_a_note_and_an_email() {
    let env = Env::start(fixture("acme-tenant.json"), 2).await;
    let run_id = start_run(&env, request()).await;
    // Discovery's message is lost at once; every re-drive is lost too.
    for _ in 0..3 {
        let (url, _) = &env.steps[0];
        while let Some((event, handles)) = env.receive(url).await {
            env.settle(url, &event, &handles, &[]).await;
        }
        env.backdate(&run_id, LONG_AGO).await;
        sweep(&env).await;
    }
    let body = env.get(&run_id).await;
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("stalled"));
    let state = env.sim.snapshot();
    let notes: Vec<_> = state
        .tickets
        .iter()
        .flat_map(|t| t.notes.iter())
        .filter(|n| n.text.contains(&run_id))
        .collect();
    assert_eq!(notes.len(), 1, "one failure note");
    assert!(notes[0].text.contains("FAILED"), "{}", notes[0].text);
    assert_eq!(state.sent_mail.len(), 1, "one failure email");
    assert!(state.sent_mail[0].subject.contains("FAILED"));
    // A second sweep changes nothing and sends nothing.
    sweep(&env).await;
    assert_eq!(env.sim.snapshot().sent_mail.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Deadlines

#[tokio::test(flavor = "multi_thread")]
async fn steps_cut_short_by_their_deadline_continue_in_new_messages() {
    // 250 mailboxes at 60 ms a call, two calls in flight per service (7.5 s of reads a
    // service), five seconds an invocation, and shards sized far too big: every shard and
    // the verification must stop at their deadline and go on in a new message.
    let mut users = vec![json!({"upn": "leaver@big.example", "display_name": "Leaver"})];
    let mut mailboxes = Vec::new();
    for i in 0..250 {
        let upn = format!("m{i:03}@big.example");
        users.push(json!({"upn": upn, "display_name": format!("Mailbox {i}")}));
        mailboxes.push(json!({"upn": upn, "full_access": [{"user": "leaver@big.example"}]}));
    }
    // The mailbox-level types only: folder reads (ten calls a mailbox) would make this a test
    // of their cost, not of the deadlines.
    let fx = json!({"tenant_id": "b16b16b1-6b16-4b16-8b16-b16b16b16b16", "organization": {"company_id": "big", "company_name": "Big",
        "m365_permission_removal_scope": ["full_access", "send_as", "send_on_behalf", "calendar"],
        "m365_permission_ticket_board": "Service Desk", "m365_permission_notification_recipients": ["secops@msp.example"],
        "notification_sender": "m000@big.example"},
        "users": users, "mailboxes": mailboxes,
        "sim": {"latency_ms": 60, "page_size": 100}});
    let env = Env::start_tuned(
        fx,
        fast_http(2),
        Duration::from_secs(5),
        Duration::from_secs(60),
    )
    .await;
    let run_id = start_run(
        &env,
        json!({"user_email": "leaver@big.example", "company_id": "big"}),
    )
    .await;
    let stats = env.pump_concurrently(1).await;
    assert_eq!(stats.over_deadline, 0, "{stats:?}");
    let body = env.get(&run_id).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(
        body["result"]["removal_summary"]["total_permissions_removed"],
        250
    );
    assert_eq!(
        body["result"]["verification"]["all_permissions_cleared"],
        true
    );
    assert_eq!(
        env.sim.snapshot().direct_grants_of("leaver@big.example"),
        []
    );
    assert_eq!(
        env.dlq_depths().await,
        vec![0, 0, 0, 0],
        "no message timed out into a DLQ"
    );
    assert!(stats.repeated > 0, "no step was continued: {stats:?}");
}

// ---------------------------------------------------------------------------------------------
// Intake

#[tokio::test(flavor = "multi_thread")]
async fn a_key_reused_for_another_request_is_a_conflict_naming_the_key() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (status, first) = env
        .http("POST", "/revocations", Some(request()), Some("form-77"))
        .await;
    assert_eq!(status, 202);
    let other = json!({"user_email": "jane.doe@acmecorp.com", "company_id": "acme"});
    let (status, body) = env
        .http("POST", "/revocations", Some(other.clone()), Some("form-77"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["field"], "Idempotency-Key");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("form-77"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(first["run_id"].as_str().unwrap()));
    assert_eq!(env.run_count().await, 1);

    // Keys of any length, and requests naming many mailboxes, fit: the stored keys are hashes.
    let long_key = "k".repeat(3000);
    let targets: Vec<String> = (0..80).map(|i| format!("box{i}@acmecorp.com")).collect();
    let many = json!({"user_email": "jane.doe@acmecorp.com", "company_id": "acme", "target_mailboxes": targets, "dry_run": true});
    let (status, body) = env
        .http("POST", "/revocations", Some(many), Some(&long_key))
        .await;
    assert_eq!(status, 202, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Runs of the first release

/// DynamoDB JSON (`{"S": ...}`, `{"N": ...}`, ...) as the SDK's attribute value.
fn attribute(v: &Value) -> AttributeValue {
    let (kind, value) = v.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "S" => AttributeValue::S(value.as_str().unwrap().to_string()),
        "N" => AttributeValue::N(value.as_str().unwrap().to_string()),
        "BOOL" => AttributeValue::Bool(value.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(true),
        "L" => AttributeValue::L(value.as_array().unwrap().iter().map(attribute).collect()),
        "M" => AttributeValue::M(item(value)),
        other => panic!("attribute type {other}"),
    }
}

fn item(v: &Value) -> HashMap<String, AttributeValue> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stored_by_the_first_release_still_reads() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    // Recorded from the first release's DynamoDB store: a finished Acme run, its items,
    // batch markers, idempotency keys and audit records.
    let recorded: Value =
        serde_json::from_str(include_str!("fixtures/dynamodb-run-v1.json")).unwrap();
    let run_id = recorded["run_id"].as_str().unwrap();
    for (table, rows) in [
        (&env.names.runs_table, &recorded["runs_table"]),
        (&env.names.audit_table, &recorded["audit_table"]),
    ] {
        for row in rows.as_array().unwrap() {
            env.ddb
                .put_item()
                .table_name(table)
                .set_item(Some(item(row)))
                .send()
                .await
                .unwrap();
        }
    }
    let body = env.get(run_id).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["result"]["success"], true);
    assert_eq!(
        body["result"]["removal_summary"]["total_permissions_removed"],
        8
    );
    assert_eq!(
        body["progress"],
        json!({"total": 8, "done": 8, "failed": 0})
    );
    let records = env
        .intake
        .store
        .audit_records(&revoke365::model::RunId(run_id.to_string()))
        .await
        .unwrap();
    assert_eq!(records.len(), 17);
    let removed = revoke365::restore::removed_grants(&records);
    assert_eq!(removed.len(), 8, "every grant it removed is still read");
    // Written before chaining: nothing to check it against, and nothing that proves it.
    let (status, check) = env
        .http(
            "GET",
            &format!("/revocations/{run_id}/audit?verify=1"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(
        (check["status"].as_str(), check["records"].as_u64()),
        (Some("unchained"), Some(17)),
        "{check}"
    );
}

// ---------------------------------------------------------------------------------------------
// One tenant budget

#[tokio::test(flavor = "multi_thread")]
async fn invocations_running_at_once_share_one_tenant_budget() {
    // Three containers of each step function at once against one tenant: each alone would
    // use the whole ceiling; together they never exceed it, because the ceiling is one
    // budget in DynamoDB that every invocation leases its permits from.
    let mut users = vec![json!({"upn": "leaver@share.example", "display_name": "Leaver"})];
    let mut mailboxes = Vec::new();
    for i in 0..120 {
        let upn = format!("s{i:03}@share.example");
        users.push(json!({"upn": upn, "display_name": format!("Shared budget {i}")}));
        let mut m = json!({"upn": upn});
        if i % 3 == 0 {
            m["full_access"] = json!([{"user": "leaver@share.example"}]);
        }
        mailboxes.push(m);
    }
    let fx = json!({"tenant_id": "5a4e5a4e-5a4e-4a4e-8a4e-5a4e5a4e5a4e", "organization": {"company_id": "share", "company_name": "Share",
        "m365_permission_ticket_board": "Service Desk", "m365_permission_notification_recipients": ["secops@msp.example"],
        "notification_sender": "s000@share.example"},
        "users": users, "mailboxes": mailboxes,
        "sim": {"latency_ms": 25, "page_size": 1000, "exchange_concurrency_cap": 4, "graph_concurrency_cap": 6,
                "graph_mailbox_concurrency_cap": 4, "retry_after_secs": 1}});
    let mut http = fast_http(64);
    http.exchange.ceiling = 4;
    http.graph.ceiling = 6;
    let env = Env::start_tuned(
        fx,
        http,
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .await;
    let run_id = start_run(
        &env,
        json!({"user_email": "leaver@share.example", "company_id": "share"}),
    )
    .await;
    let stats = env.pump_concurrently(3).await;
    let body = env.get(&run_id).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(
        body["result"]["removal_summary"]["total_permissions_removed"],
        40
    );
    let counters = env.sim.snapshot().counters;
    assert!(
        counters.peak_in_flight_exchange <= 4 && counters.peak_in_flight_graph <= 6,
        "{counters:?}"
    );
    assert_eq!(counters.throttled_429, 0, "{counters:?}");
    assert!(stats.invocations > 3, "{stats:?}");
    // Waiting for the budget never counted as a failed try.
    assert_eq!(env.dlq_depths().await, vec![0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn permits_given_back_while_every_holder_writes_the_budget_all_come_back() {
    use revoke365::adapters::aws::tenant_budget::{LeaseTerms, TenantBudgets};
    let env = Env::start(fixture("acme-tenant.json"), 4).await;
    let budgets = std::sync::Arc::new(TenantBudgets::new(
        env.ddb.clone(),
        env.names.runs_table.clone(),
    ));
    let tenant = "give-back-tenant";
    let lease = |holder: String, want: usize| {
        let budgets = budgets.clone();
        async move {
            let terms = LeaseTerms {
                holder: &holder,
                want,
                initial: 16,
                ceiling: 16,
                lease_for: Duration::from_secs(300),
                give_up: std::time::Instant::now() + Duration::from_secs(20),
            };
            budgets.lease(tenant, "exchange", &terms).await.unwrap()
        }
    };
    // Sixteen holders take one permit each, all at once.
    let holders: Vec<String> = (0..16).map(|i| format!("holder-{i}")).collect();
    let got = futures_util::future::join_all(holders.iter().map(|h| lease(h.clone(), 1))).await;
    assert_eq!(got.iter().sum::<usize>(), 16, "{got:?}");
    // The budget is all leased: a seventeenth gets nothing in time.
    let terms = LeaseTerms {
        holder: "late",
        want: 1,
        initial: 16,
        ceiling: 16,
        lease_for: Duration::from_secs(300),
        give_up: std::time::Instant::now() + Duration::from_millis(300),
    };
    assert_eq!(budgets.lease(tenant, "exchange", &terms).await.unwrap(), 0);
    // All give their permits back at the same moment: none is left behind to expire.
    futures_util::future::join_all(
        holders
            .iter()
            .map(|h| budgets.release(tenant, "exchange", h, 16, false)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .unwrap();
    assert_eq!(lease("after".into(), 16).await, 16);
    // A holder that comes down to fewer gives the rest back at once.
    budgets
        .shrink(tenant, "exchange", "after", 4)
        .await
        .unwrap();
    assert_eq!(lease("next".into(), 16).await, 12);
}
