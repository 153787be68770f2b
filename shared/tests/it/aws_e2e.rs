//! The serverless path against the real emulators (LocalStack for SQS and Secrets Manager,
//! DynamoDB Local), the real handlers, and the tenant simulator. Each test makes its own
//! prefixed queues and tables from `infra/resources.json` and plays the event source mapping:
//! it receives off the real queues, builds the Lambda event, calls the handler, and deletes
//! or releases each message by the handler's answer. No in-memory adapter is linked here.

use crate::kit::{fixture, with_sim, CLIENT_SECRET, CW_PRIVATE_KEY};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use revoke365::aws::handlers::{
    handle_intake_event, handle_step_records, IntakeDeps, SecretConnector, StepDeps,
};
use revoke365::aws::resources::{resources, AwsNames, QueueDef, TableDef};
use revoke365::aws::secrets::SecretsProvider;
use revoke365::aws::SqsEvent;
use revoke365::config::ServiceUrls;
use revoke365::model::{OrgSettings, RunStatus};
use revoke365_sim::snapshot::FULL_ACCESS;
use revoke365_sim::{SimHandle, SimOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOHN: &str = "john.smith@acmecorp.com";

struct Env {
    sim: SimHandle,
    names: AwsNames,
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    intake: IntakeDeps,
    /// Step handlers by queue: discovery, removal, verification.
    steps: [(String, StepDeps); 3],
    offboarding_url: String,
    dlq_urls: Vec<String>,
}

fn require_emulators() {
    for var in [
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ] {
        assert!(
            std::env::var(var).is_ok(),
            "{var} is not set: these tests need LocalStack and DynamoDB Local; run them through infra/test.sh"
        );
    }
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, prefix: &str, def: &TableDef) {
    let mut req = ddb
        .create_table()
        .table_name(format!("{prefix}{}", def.name))
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [
        (Some(&def.partition_key), KeyType::Hash),
        (def.sort_key.as_ref(), KeyType::Range),
    ] {
        let Some(name) = name else { continue };
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .unwrap(),
            );
    }
    req.send().await.unwrap_or_else(|e| {
        panic!(
            "create table {}: {}",
            def.name,
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        )
    });
}

/// A queue and its DLQ, from the definition; returns (queue URL, DLQ URL).
async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str, def: &QueueDef) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{prefix}{}", def.dlq))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": def.max_receive_count})
        .to_string();
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}{}", def.name))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        // The tests release failed messages themselves; the visibility timeout only has to
        // outlast one handler call.
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

impl Env {
    async fn start(fixture: Value, concurrency: usize) -> Env {
        require_emulators();
        let prefix = format!(
            "t{}-",
            (0..8)
                .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
                .collect::<String>()
        );
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let sm = aws_sdk_secretsmanager::Client::new(&config);
        let r = resources();
        for t in [&r.tables.runs, &r.tables.audit, &r.tables.org_settings] {
            create_table(&ddb, &prefix, t).await;
        }
        let mut urls = HashMap::new();
        let mut dlq_urls = Vec::new();
        for q in r.queues.all() {
            let (url, dlq) = create_queue(&sqs, &prefix, q).await;
            urls.insert(q.name.clone(), url);
            dlq_urls.push(dlq);
        }
        let names = AwsNames::prefixed(&prefix);
        let secret = json!({"m365_client_id": "lambda-app", "m365_client_secret": CLIENT_SECRET, "cw_company": "msp",
            "cw_public_key": "pub", "cw_private_key": CW_PRIVATE_KEY, "cw_client_id": "11111111-2222-3333-4444-555555555555"});
        sm.create_secret()
            .name(&names.secret_id)
            .secret_string(secret.to_string())
            .send()
            .await
            .unwrap();

        let org = OrgSettings::from_fixture(&fixture).unwrap();
        let sim = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&fixture.to_string()).unwrap(),
            SimOptions {
                client_secret: Some(CLIENT_SECRET.into()),
                cw_private_key: Some(CW_PRIVATE_KEY.into()),
            },
        )
        .await
        .unwrap();
        let intake = IntakeDeps::new(&config, &names).await.unwrap();
        intake.store.put_org_settings(&org).await.unwrap();
        let mut steps = Vec::new();
        for q in [
            &r.queues.discovery,
            &r.queues.removal,
            &r.queues.verification,
        ] {
            let connector = SecretConnector::new(
                crate::kit::fast_http(concurrency),
                ServiceUrls::all_at(&sim.base_url),
                SecretsProvider::new(sm.clone(), names.secret_id.clone()),
            );
            let deps = StepDeps::new(&config, &names, Arc::new(connector), q.max_receive_count)
                .await
                .unwrap();
            steps.push((urls[&q.name].clone(), deps));
        }
        let steps: [(String, StepDeps); 3] = steps.try_into().ok().unwrap();
        Env {
            sim,
            names,
            sqs,
            ddb,
            intake,
            steps,
            offboarding_url: urls[&r.queues.offboarding.name].clone(),
            dlq_urls,
        }
    }

    /// Receives up to ten messages as the event source mapping would.
    async fn receive(&self, queue_url: &str) -> Option<(SqsEvent, Vec<String>)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let arn = format!(
            "arn:aws:sqs:us-east-1:000000000000:{}",
            queue_url.rsplit('/').next().unwrap()
        );
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> =
                    m.attributes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
                json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "attributes": attributes,
                       "messageAttributes": {}, "md5OfBody": m.md5_of_body, "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"})
            })
            .collect();
        let handles = messages
            .iter()
            .map(|m| m.receipt_handle.clone().unwrap())
            .collect();
        Some((
            serde_json::from_value(json!({"Records": records})).unwrap(),
            handles,
        ))
    }

    /// Deletes what the handler accepted; failed records become visible again at once (as after
    /// their visibility timeout).
    async fn settle(
        &self,
        queue_url: &str,
        event: &SqsEvent,
        handles: &[String],
        failed: &[String],
    ) {
        for (record, handle) in event.records.iter().zip(handles) {
            if failed.contains(record.message_id.as_ref().unwrap()) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Delivers step messages to their handlers, `copies` times each, until every step queue
    /// is empty.
    async fn pump_steps(&self, copies: usize) -> usize {
        let started = Instant::now();
        let mut delivered = 0;
        loop {
            let mut idle = true;
            for (url, deps) in &self.steps {
                let Some((event, handles)) = self.receive(url).await else {
                    continue;
                };
                idle = false;
                let mut failed: Vec<String> = Vec::new();
                for _ in 0..copies {
                    let response = handle_step_records(deps, event.clone()).await;
                    failed.extend(
                        response
                            .batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier),
                    );
                    delivered += event.records.len();
                }
                self.settle(url, &event, &handles, &failed).await;
            }
            if idle {
                return delivered;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "steps did not drain"
            );
        }
    }

    async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (i64, Value) {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(crate::kit::events_dir().join("apigw-post-revocation.json"))
                .unwrap(),
        )
        .unwrap();
        event["rawPath"] = json!(path);
        event["routeKey"] = json!(format!(
            "{method} {}",
            if method == "GET" {
                "/revocations/{run_id}"
            } else {
                "/revocations"
            }
        ));
        event["requestContext"]["http"]["method"] = json!(method);
        event["requestContext"]["http"]["path"] = json!(path);
        event["body"] = body.map(|b| json!(b.to_string())).unwrap_or(Value::Null);
        event["isBase64Encoded"] = json!(false);
        let headers = event["headers"].as_object_mut().unwrap();
        headers.remove("idempotency-key");
        if let Some(k) = key {
            headers.insert("idempotency-key".into(), json!(k));
        }
        let response = handle_intake_event(&self.intake, event).await.unwrap();
        let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
        (response["statusCode"].as_i64().unwrap(), body)
    }

    async fn dlq_depths(&self) -> Vec<u64> {
        let mut depths = Vec::new();
        for url in &self.dlq_urls {
            let attrs = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap();
            depths.push(
                attrs[&QueueAttributeName::ApproximateNumberOfMessages]
                    .parse()
                    .unwrap(),
            );
        }
        depths
    }

    async fn audit_count(&self, run_id: &str) -> usize {
        let out = self
            .ddb
            .query()
            .table_name(&self.names.audit_table)
            .key_condition_expression("run_id = :r")
            .expression_attribute_values(
                ":r",
                aws_sdk_dynamodb::types::AttributeValue::S(run_id.into()),
            )
            .send()
            .await
            .unwrap();
        out.items.unwrap_or_default().len()
    }

    async fn run_count(&self) -> usize {
        let out = self
            .ddb
            .scan()
            .table_name(&self.names.runs_table)
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .iter()
            .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("RUN"))
            .count()
    }

    /// The finished run as `GET /revocations/{id}` shows it, after checking the tenant, PSA,
    /// mail and audit trail of an Acme run.
    async fn assert_acme_run_done(&self, run_id: &str) -> Value {
        let (status, body) = self
            .http("GET", &format!("/revocations/{run_id}"), None, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "completed", "{body}");
        let result = &body["result"];
        assert_eq!(result["success"], true);
        assert_eq!(result["removal_summary"]["total_permissions_removed"], 8);
        assert_eq!(result["verification"]["all_permissions_cleared"], true);
        assert_eq!(
            body["progress"],
            json!({"total": 8, "done": 8, "failed": 0})
        );
        let state = self.sim.snapshot();
        assert_eq!(state.direct_grants_of(JOHN), vec![]);
        let notes: usize = state.tickets.iter().map(|t| t.notes.len()).sum();
        assert_eq!(notes, 1, "one PSA note");
        assert_eq!(state.sent_mail.len(), 1, "one email");
        // 8 before-states, 8 outcomes, 1 verification, in DynamoDB.
        assert_eq!(self.audit_count(run_id).await, 17);
        assert_eq!(
            self.dlq_depths().await,
            vec![0, 0, 0, 0],
            "nothing dead-lettered"
        );
        body
    }
}

fn request() -> Value {
    json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"})
}

#[tokio::test(flavor = "multi_thread")]
async fn api_gateway_request_runs_to_a_verified_result() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (status, accepted) = env
        .http("POST", "/revocations", Some(request()), Some("form-4711"))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    assert_eq!(accepted["status_url"], format!("/revocations/{run_id}"));
    // The same Idempotency-Key returns the same run.
    let (again, repeat) = env
        .http("POST", "/revocations", Some(request()), Some("form-4711"))
        .await;
    assert_eq!(
        (again, repeat["run_id"].as_str().unwrap()),
        (202, run_id.as_str())
    );

    let (_, progress) = env
        .http("GET", &format!("/revocations/{run_id}"), None, None)
        .await;
    assert_eq!(progress["status"], "accepted");
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_queue_record_runs_and_a_bad_record_fails_alone_into_the_dlq() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    env.sqs
        .send_message()
        .queue_url(&env.offboarding_url)
        .message_body(request().to_string())
        .send()
        .await
        .unwrap();
    env.sqs
        .send_message()
        .queue_url(&env.offboarding_url)
        .message_body(json!({"user_email": "nobody", "company_id": "acme"}).to_string())
        .send()
        .await
        .unwrap();
    let max = resources().queues.offboarding.max_receive_count as usize;
    let mut accepted_runs = 0;
    for _ in 0..=max + 1 {
        let Some((event, handles)) = env.receive(&env.offboarding_url).await else {
            break;
        };
        let event_json = serde_json::to_value(&event).unwrap();
        let response = handle_intake_event(&env.intake, event_json).await.unwrap();
        let failed: Vec<String> = response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
            .collect();
        accepted_runs += event.records.len() - failed.len();
        env.settle(&env.offboarding_url, &event, &handles, &failed)
            .await;
    }
    assert_eq!(accepted_runs, 1);
    assert_eq!(env.run_count().await, 1, "the bad record created no run");
    assert_eq!(
        env.dlq_depths().await[0],
        1,
        "the bad record is in the offboarding DLQ"
    );
    env.pump_steps(1).await;
    let runs = env
        .ddb
        .scan()
        .table_name(&env.names.runs_table)
        .send()
        .await
        .unwrap();
    let run_id = runs
        .items
        .unwrap()
        .iter()
        .find_map(|i| {
            (i["sk"].as_s().unwrap() == "RUN").then(|| i["run_id"].as_s().unwrap().clone())
        })
        .unwrap();
    let mut depths = env.dlq_depths().await;
    depths[0] = 0;
    assert_eq!(depths, vec![0, 0, 0, 0]);
    env.sqs
        .purge_queue()
        .queue_url(&env.dlq_urls[0])
        .send()
        .await
        .unwrap();
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn security_alert_runs_with_incident_details() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::kit::events_dir().join("eventbridge-security-alert.json"))
            .unwrap(),
    )
    .unwrap();
    let mut detail = request();
    detail["incident_id"] = json!("INC-2026-0042");
    detail["severity"] = json!("high");
    event["detail"] = detail;
    let out = handle_intake_event(&env.intake, event.clone())
        .await
        .unwrap();
    let run_id = out["run_id"].as_str().unwrap().to_string();
    // EventBridge may deliver twice: the event id makes it the same run.
    let again = handle_intake_event(&env.intake, event).await.unwrap();
    assert_eq!(again["run_id"], run_id.as_str());
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    let state = env.sim.snapshot();
    let ticket = state
        .tickets
        .iter()
        .find(|t| !t.notes.is_empty())
        .expect("the ticket with the note");
    assert!(ticket
        .initial_description
        .as_deref()
        .expect("a description")
        .contains("INC-2026-0042"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_api_input_is_a_400_naming_the_field_and_creates_nothing() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    for (body, field) in [
        (
            json!({"user_email": "john", "company_id": "acme"}),
            "user_email",
        ),
        (
            json!({"user_email": JOHN, "company_id": "acme", "permission_types": ["everything"]}),
            "permission_types",
        ),
        (
            json!({"user_email": JOHN, "company_id": "initech"}),
            "company_id",
        ),
        (
            json!({"user_email": JOHN, "company_id": "acme", "dry_run": "no"}),
            "dry_run",
        ),
    ] {
        let (status, err) = env.http("POST", "/revocations", Some(body), None).await;
        assert_eq!(status, 400);
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, _) = env
        .http(
            "GET",
            "/revocations/00000000-0000-0000-0000-000000000000",
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(env.run_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_delivered_twice_still_counts_exactly() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(2).await;
    env.assert_acme_run_done(&run_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_503s_at_thirty_percent_are_retried_to_an_exact_result() {
    let env = Env::start(
        with_sim(
            fixture("acme-tenant.json"),
            json!({"rate_503": 0.3, "seed": 1234, "retry_after_secs": 0}),
        ),
        10,
    )
    .await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    assert!(env.sim.snapshot().counters.injected_503 > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_handler_that_dies_halfway_is_finished_by_redelivery() {
    // One request at a time and 150 ms per call: the handler can be killed between removals.
    let env = Env::start(
        with_sim(fixture("acme-tenant.json"), json!({"latency_ms": 150})),
        1,
    )
    .await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    // Discovery only.
    let (discovery_url, discovery) = &env.steps[0];
    let (event, handles) = env.receive(discovery_url).await.unwrap();
    assert!(handle_step_records(discovery, event.clone())
        .await
        .batch_item_failures
        .is_empty());
    env.settle(discovery_url, &event, &handles, &[]).await;

    // The Full Access batch (ceo, finance, billing, support): kill its handler after two removals.
    let (removal_url, removal) = &env.steps[1];
    let mut killed = false;
    while let Some((event, handles)) = env.receive(removal_url).await {
        let is_full_access = event
            .records
            .iter()
            .any(|r| r.body.as_deref().unwrap().contains("\"full_access\""));
        if is_full_access && !killed {
            let removals = || env.sim.snapshot().requests("exo Remove-MailboxPermission");
            let handler = handle_step_records(removal, event.clone());
            tokio::pin!(handler);
            loop {
                tokio::select! {
                    _ = &mut handler => panic!("the handler finished before it could be killed"),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => if removals() >= 3 { break },
                }
            }
            killed = true;
            // The process died: none of its messages was deleted; they all come back.
            let unacknowledged: Vec<String> = event
                .records
                .iter()
                .map(|r| r.message_id.clone().unwrap())
                .collect();
            env.settle(removal_url, &event, &handles, &unacknowledged)
                .await;
            // Killed halfway: some of the four Full Access grants gone, some not.
            let left = env
                .sim
                .snapshot()
                .direct_grants_of(JOHN)
                .iter()
                .filter(|(_, k)| *k == FULL_ACCESS)
                .count();
            assert!(
                (1..4).contains(&left),
                "{left} of 4 Full Access grants left"
            );
            continue;
        }
        let failed: Vec<String> = handle_step_records(removal, event.clone())
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        env.settle(removal_url, &event, &handles, &failed).await;
    }
    assert!(killed);
    env.pump_steps(1).await;
    let body = env.assert_acme_run_done(&run_id).await;
    assert_eq!(
        body["result"]["permissions_removed"]["full_access"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_lands_in_the_dlq_and_fails_its_run() {
    let env = Env::start(fixture("acme-tenant.json"), 10).await;
    let (_, accepted) = env
        .http("POST", "/revocations", Some(request()), None)
        .await;
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    let (discovery_url, _) = &env.steps[0];
    // Drop the real discover message; send a message no step understands.
    env.sqs
        .purge_queue()
        .queue_url(discovery_url)
        .send()
        .await
        .unwrap();
    env.sqs
        .send_message()
        .queue_url(discovery_url)
        .message_body(json!({"v": 1, "run_id": run_id, "kind": "explode"}).to_string())
        .send()
        .await
        .unwrap();
    let max = resources().queues.discovery.max_receive_count as usize;
    let mut receives = 0;
    while receives <= max + 2 {
        env.pump_steps(1).await;
        receives += 1;
        if env.dlq_depths().await[1] == 1 {
            break;
        }
    }
    assert_eq!(
        env.dlq_depths().await,
        vec![0, 1, 0, 0],
        "the poison message is in the discovery DLQ"
    );
    let (_, body) = env
        .http("GET", &format!("/revocations/{run_id}"), None, None)
        .await;
    assert_eq!(
        body["status"],
        serde_json::to_value(RunStatus::Failed).unwrap()
    );
    assert!(
        body["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed step message"),
        "{body}"
    );
    assert_eq!(
        env.sim.snapshot().direct_grants_of(JOHN).len(),
        8,
        "nothing was removed"
    );
}
