//! The AWS test kit: each test provisions its own prefixed queues, tables and secret from
//! `infra/resources.json` in the real emulators (LocalStack for SQS and Secrets Manager,
//! DynamoDB Local), starts the tenant simulator, and plays the event source mapping: it
//! receives off the real queues, builds the Lambda event, calls the real handler with a
//! deadline, and deletes or releases each message by the handler's answer. No in-memory
//! adapter is linked here.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use revoke365::adapters::aws::provision::{provision, Options};
use revoke365::adapters::aws::resources::{resources, AwsNames};
use revoke365::adapters::aws::secrets::SecretsProvider;
use revoke365::adapters::aws::tenant_budget::TenantBudgets;
use revoke365::config::{HttpSettings, PsaUrls, ServiceUrls};
use revoke365::lambda::intake::{handle_intake_event, IntakeDeps};
use revoke365::lambda::steps::{handle_step_records, learned_limits_of, StepDeps};
use revoke365::lambda::SecretConnector;
use revoke365::lambda::SqsEvent;
use revoke365::model::OrgSettings;
use revoke365::steps::Deadline;
use revoke365_sim::SimHandle;
use revoke365_testkit::{
    AUTOTASK_SECRET, AUTOTASK_USERNAME, CLIENT_SECRET, CW_PRIVATE_KEY, HALO_CLIENT_SECRET,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The role whose session signs the sample API Gateway events (`events/apigw-*.json`).
pub const API_CALLER_ROLE: &str = "arn:aws:iam::123456789012:role/revoke365-api-caller";

pub const JOHN: &str = "john.smith@acmecorp.com";

pub struct Env {
    pub sim: SimHandle,
    pub names: AwsNames,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub intake: IntakeDeps,
    /// Step handlers by queue: discovery, removal, verification.
    pub steps: [(String, StepDeps); 3],
    pub offboarding_url: String,
    pub dlq_urls: Vec<String>,
    pub sm: aws_sdk_secretsmanager::Client,
    /// Every handler call gets this long before its deadline.
    pub invocation_timeout: Duration,
    shard_time: Duration,
    config: aws_config::SdkConfig,
    http: HttpSettings,
}

/// What a run of the emulated event source mappings saw.
#[derive(Debug, Default, Clone)]
pub struct PumpStats {
    pub invocations: usize,
    pub longest: Duration,
    /// Invocations that ran past their deadline.
    pub over_deadline: usize,
    /// Step messages delivered more than once with the same step (kind, shard, batch): the
    /// continuations of steps cut short, and any redelivery.
    pub repeated: usize,
    /// Per step kind: when its first invocation began and its last ended (from the pump's
    /// start), and how many of its messages they handled.
    pub phases: std::collections::BTreeMap<String, Phase>,
    /// Per step kind: every invocation's start and end (from the pump's start).
    pub spans: std::collections::BTreeMap<String, Vec<(Duration, Duration)>>,
    seen: std::collections::HashSet<String>,
}

/// How many invocations of each step function run at once.
#[derive(Debug, Clone, Copy)]
pub struct Containers {
    pub discovery: usize,
    pub removal: usize,
    pub verification: usize,
}

impl Containers {
    pub fn each(n: usize) -> Containers {
        Containers {
            discovery: n,
            removal: n,
            verification: n,
        }
    }
}

/// When the invocations of one step kind ran.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub first: Duration,
    pub last: Duration,
    pub messages: usize,
}

impl std::fmt::Display for PumpStats {
    /// `discover 0.0–15.2 s (1), scan 15.3–190.0 s (40), ...` in the order they began.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut phases: Vec<_> = self.phases.iter().collect();
        phases.sort_by_key(|(_, p)| p.first);
        let parts: Vec<String> = phases
            .iter()
            .map(|(kind, p)| {
                format!(
                    "{kind} {:.1}–{:.1} s ({} messages)",
                    p.first.as_secs_f64(),
                    p.last.as_secs_f64(),
                    p.messages
                )
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl PumpStats {
    /// How many invocations of `kind` ran at once, on average over each `every` from the
    /// pump's start: `[11.8, 12.0, ..., 3.1, 1.0]`.
    #[allow(dead_code)] // The scale test's timeline.
    pub fn running(&self, kind: &str, every: Duration) -> Vec<f64> {
        let spans = self.spans.get(kind).map(Vec::as_slice).unwrap_or_default();
        let end = spans.iter().map(|s| s.1).max().unwrap_or_default();
        let buckets = end.as_secs_f64() / every.as_secs_f64();
        (0..buckets.ceil() as usize)
            .map(|i| {
                let (from, to) = (every * i as u32, every * (i as u32 + 1));
                let busy: Duration = spans
                    .iter()
                    .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
                    .sum();
                busy.as_secs_f64() / every.as_secs_f64()
            })
            .collect()
    }
}

/// Points an HTTP API event at `method path` as API Gateway would route it: the raw path, the
/// route key it matches (`GET /revocations/{run_id}/audit`) and the run id as a path parameter,
/// decoded. A path no route matches keeps itself as the route key.
pub fn route_event(event: &mut Value, method: &str, path: &str) {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (route, run_id) = match segments.as_slice() {
        ["", "revocations", id] => ("/revocations/{run_id}".to_string(), Some(*id)),
        ["", "revocations", id, tail] if !tail.is_empty() => {
            (format!("/revocations/{{run_id}}/{tail}"), Some(*id))
        }
        _ => (path.to_string(), None),
    };
    let route_key = format!("{method} {route}");
    event["rawPath"] = json!(path);
    event["routeKey"] = json!(route_key);
    event["requestContext"]["routeKey"] = json!(route_key);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"] = match run_id {
        Some(id) => {
            let decoded: String = url::form_urlencoded::parse(format!("id={id}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect();
            json!({ "run_id": decoded })
        }
        None => json!({}),
    };
}

/// The sample API request (`events/apigw-post-revocation.json`, signed by the sample role's
/// session) made `method path?query` with `body` and the caller's idempotency `key`.
pub fn api_request(method: &str, path: &str, body: Option<&str>, key: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            revoke365_testkit::events_dir().join("apigw-post-revocation.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    route_event(&mut event, method, path);
    event["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), json!(v)))
        .collect();
    event["queryStringParameters"] = if params.is_empty() {
        Value::Null
    } else {
        Value::Object(params)
    };
    event["body"] = body.map(|b| json!(b)).unwrap_or(Value::Null);
    event["isBase64Encoded"] = json!(false);
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("idempotency-key");
    if let Some(k) = key {
        headers.insert("idempotency-key".into(), json!(k));
    }
    event
}

/// The intake handler's answer to an HTTP API event: its status and its JSON body.
pub async fn answer(deps: &IntakeDeps, event: Value) -> (i64, Value) {
    let response = handle_intake_event(deps, event).await.unwrap();
    let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
    (response["statusCode"].as_i64().unwrap(), body)
}

pub fn require_emulators() {
    revoke365_testkit::aws::require_emulators(&[
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_KMS",
    ]);
}

#[allow(clippy::too_many_arguments)]
async fn step_deps(
    config: &aws_config::SdkConfig,
    names: &AwsNames,
    sm: &aws_sdk_secretsmanager::Client,
    http: &HttpSettings,
    base_url: &str,
    shard_time: Duration,
    max_receive_count: u32,
) -> StepDeps {
    let connector = Arc::new(
        SecretConnector::new(
            http.clone(),
            ServiceUrls::all_at(base_url),
            SecretsProvider::new(sm.clone(), names.secret_id.clone()),
            shard_time,
        )
        .with_psa_urls(PsaUrls::all_at(base_url))
        .with_shared_budgets(TenantBudgets::new(
            aws_sdk_dynamodb::Client::new(config),
            names.runs_table.clone(),
        )),
    );
    let mut deps = StepDeps::new(config, names, connector.clone(), max_receive_count)
        .await
        .unwrap();
    deps.learned_limits = learned_limits_of(connector);
    deps
}

/// The secret the test deployments hold.
pub fn secret_json(client_secret: &str) -> Value {
    json!({"m365_client_id": "lambda-app", "m365_client_secret": client_secret, "cw_company": "msp",
        "cw_public_key": "pub", "cw_private_key": CW_PRIVATE_KEY, "cw_client_id": "11111111-2222-3333-4444-555555555555",
        "halo_client_id": "lambda-app", "halo_client_secret": HALO_CLIENT_SECRET,
        "autotask_integration_code": "LAMBDA", "autotask_username": AUTOTASK_USERNAME,
        "autotask_secret": AUTOTASK_SECRET})
}

impl Env {
    pub async fn start(fixture: Value, concurrency: usize) -> Env {
        Env::start_with(
            fixture,
            revoke365_testkit::fast_http(concurrency),
            Duration::from_secs(30),
        )
        .await
    }

    /// With these HTTP settings for the step functions, and every invocation given
    /// `invocation_timeout` (its Lambda deadline).
    pub async fn start_with(
        fixture: Value,
        http: HttpSettings,
        invocation_timeout: Duration,
    ) -> Env {
        Env::start_tuned(fixture, http, invocation_timeout, invocation_timeout / 3).await
    }

    /// With discovery shards sized to take `shard_time` each.
    pub async fn start_tuned(
        fixture: Value,
        http: HttpSettings,
        invocation_timeout: Duration,
        shard_time: Duration,
    ) -> Env {
        require_emulators();
        let prefix = revoke365_testkit::aws::fresh_prefix('t');
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let sm = aws_sdk_secretsmanager::Client::new(&config);
        let r = resources();
        let made = provision(
            &config,
            &Options {
                prefix: prefix.clone(),
                // The tests release failed messages themselves; the visibility timeout only
                // has to outlast one handler call (as deployed: six times the timeout).
                visibility_timeout_secs: Some((invocation_timeout.as_secs() as u32 * 6).max(60)),
                secret_json: Some(secret_json(CLIENT_SECRET).to_string()),
            },
        )
        .await
        .expect("provision the emulators");
        // Its own audit MAC key too (the prefix's alias), as the template makes one.
        let names = made.names;
        let urls = made.queue_urls;
        let dlq_urls = made.dlq_urls;

        let mut org = OrgSettings::from_fixture(&fixture).unwrap();
        // The API caller of the sample events may restore and read the index, as a deployment
        // names its helpdesk role (deny by default: a fixture without them allows no one).
        for list in [&mut org.restore_principals, &mut org.access_principals] {
            if list.is_empty() {
                list.push(API_CALLER_ROLE.to_string());
            }
        }
        let sim = revoke365_sim::start(
            revoke365_sim::Fixture::from_json(&fixture.to_string()).unwrap(),
            revoke365_testkit::sim_options(),
        )
        .await
        .unwrap();
        let mut intake = IntakeDeps::new(&config, &names).await.unwrap();
        intake.store.put_org_settings(&org).await.unwrap();
        let mut steps = Vec::new();
        for q in [
            &r.queues.discovery,
            &r.queues.removal,
            &r.queues.verification,
        ] {
            let deps = step_deps(
                &config,
                &names,
                &sm,
                &http,
                &sim.base_url,
                shard_time,
                q.max_receive_count,
            )
            .await;
            steps.push((urls[&q.name].clone(), deps));
        }
        let steps: [(String, StepDeps); 3] = steps.try_into().ok().unwrap();
        // As deployed: the API looks the user and ticket up before answering.
        intake.connector = Some(steps[0].1.connector.clone());
        Env {
            sim,
            names,
            sqs,
            ddb,
            sm,
            intake,
            steps,
            offboarding_url: urls[&r.queues.offboarding.name].clone(),
            dlq_urls,
            invocation_timeout,
            shard_time,
            config,
            http,
        }
    }

    /// A step function's container of its own (its own HTTP core and secret cache), sharing
    /// the tenant budget and the store with every other.
    pub async fn container(&self, max_receive_count: u32) -> StepDeps {
        step_deps(
            &self.config,
            &self.names,
            &self.sm,
            &self.http,
            &self.sim.base_url,
            self.shard_time,
            max_receive_count,
        )
        .await
    }

    /// Plays the three step functions' event source mappings with `containers` concurrent
    /// invocations each (batch sizes as in the template: 1, 2, 1), every invocation with its
    /// deadline, until the queues stay empty.
    pub async fn pump_concurrently(&self, containers: usize) -> PumpStats {
        self.pump_with(Containers::each(containers)).await
    }

    /// [`Env::pump_concurrently`] with each function's own number of containers.
    pub async fn pump_with(&self, containers: Containers) -> PumpStats {
        let r = resources();
        let functions = [
            (
                &self.steps[0].0,
                1,
                r.queues.discovery.max_receive_count,
                containers.discovery,
            ),
            (
                &self.steps[1].0,
                2,
                r.queues.removal.max_receive_count,
                containers.removal,
            ),
            (
                &self.steps[2].0,
                1,
                r.queues.verification.max_receive_count,
                containers.verification,
            ),
        ];
        let busy = std::sync::atomic::AtomicUsize::new(0);
        let stats = std::sync::Mutex::new(PumpStats::default());
        let origin = Instant::now();
        let mut workers = Vec::new();
        for (url, batch, receives, containers) in functions {
            for _ in 0..containers {
                let deps = self.container(receives).await;
                workers.push(self.worker(url, batch, deps, (&busy, &stats, origin)));
            }
        }
        futures_util::future::join_all(workers).await;
        stats.into_inner().unwrap()
    }

    async fn worker(
        &self,
        url: &str,
        batch: i32,
        deps: StepDeps,
        (busy, stats, origin): (
            &std::sync::atomic::AtomicUsize,
            &std::sync::Mutex<PumpStats>,
            Instant,
        ),
    ) {
        use std::sync::atomic::Ordering;
        let started = Instant::now();
        let mut idle_rounds = 0;
        loop {
            // Long polling, as the event source mapping does: idle containers polling at once
            // would keep the SQS emulator busy and slow every other call. A message received is
            // invisible, so `steps_pending` still sees it before `busy` counts it.
            let received = self.receive_up_to(url, batch, 1).await;
            let Some((event, handles)) = received else {
                idle_rounds += 1;
                if idle_rounds >= 3
                    && busy.load(Ordering::SeqCst) == 0
                    && !self.steps_pending().await
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                continue;
            };
            idle_rounds = 0;
            busy.fetch_add(1, Ordering::SeqCst);
            let began = Instant::now();
            let response = handle_step_records(&deps, event.clone(), self.deadline()).await;
            let took = began.elapsed();
            {
                let mut s = stats.lock().unwrap();
                s.invocations += 1;
                s.longest = s.longest.max(took);
                if took > self.invocation_timeout {
                    s.over_deadline += 1;
                }
                for record in &event.records {
                    let body: Value =
                        serde_json::from_str(record.body.as_deref().unwrap_or("{}")).unwrap();
                    let kind = body["kind"].as_str().unwrap_or("other").to_string();
                    let (start, end) = (began - origin, began - origin + took);
                    s.spans.entry(kind.clone()).or_default().push((start, end));
                    let phase = s.phases.entry(kind).or_insert(Phase {
                        first: start,
                        last: end,
                        messages: 0,
                    });
                    phase.first = phase.first.min(start);
                    phase.last = phase.last.max(end);
                    phase.messages += 1;
                    let step =
                        format!("{}/{}/{}", body["kind"], body["shard_id"], body["batch_id"]);
                    if !s.seen.insert(format!("{}/{step}", body["run_id"])) {
                        s.repeated += 1;
                    }
                }
            }
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            self.settle(url, &event, &handles, &failed).await;
            busy.fetch_sub(1, Ordering::SeqCst);
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "the queues did not drain"
            );
        }
    }

    /// A fresh invocation's deadline.
    pub fn deadline(&self) -> Deadline {
        Deadline::at(Instant::now() + self.invocation_timeout)
    }

    /// Whether any step queue holds a message, visible, in flight or delayed.
    pub async fn steps_pending(&self) -> bool {
        for (url, _) in &self.steps {
            let attrs = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default();
            if attrs.values().any(|n| n != "0") {
                return true;
            }
        }
        false
    }

    /// Receives up to ten messages as the event source mapping would.
    pub async fn receive(&self, queue_url: &str) -> Option<(SqsEvent, Vec<String>)> {
        self.receive_up_to(queue_url, 10, 0).await
    }

    /// Receives up to `batch` messages (the event source mapping's batch size), waiting up to
    /// `wait_s` seconds for the first one (long polling, as the event source mapping does).
    pub async fn receive_up_to(
        &self,
        queue_url: &str,
        batch: i32,
        wait_s: i32,
    ) -> Option<(SqsEvent, Vec<String>)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(batch)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(wait_s)
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
    pub async fn settle(
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

    /// POSTs `body` to `path` (202 expected), runs the steps it queued to their end once each,
    /// and returns the run's id and its status body, `completed`.
    pub async fn post_to_end(&self, path: &str, body: Value) -> (String, Value) {
        let (status, accepted) = self.http("POST", path, Some(body), None).await;
        assert_eq!(status, 202, "{accepted}");
        let run_id = accepted["run_id"].as_str().unwrap().to_string();
        self.pump_steps(1).await;
        let done = self.get(&run_id).await;
        assert_eq!(done["status"], "completed", "{done}");
        (run_id, done)
    }

    /// Delivers step messages to their handlers, `copies` times each, until every step queue
    /// is empty.
    pub async fn pump_steps(&self, copies: usize) -> usize {
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
                    let response = handle_step_records(deps, event.clone(), self.deadline()).await;
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
                if !self.steps_pending().await {
                    return delivered;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "steps did not drain"
            );
        }
    }

    pub async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (i64, Value) {
        let body = body.map(|b| b.to_string());
        answer(
            &self.intake,
            api_request(method, path, body.as_deref(), key),
        )
        .await
    }

    pub async fn dlq_depths(&self) -> Vec<u64> {
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

    /// The run's audit records in DynamoDB (each chain's head item, a copy of its last
    /// record, left out).
    pub async fn audit_count(&self, run_id: &str) -> usize {
        self.audit_count_of(run_id, |_| true).await
    }

    /// The run's audit records (not chain heads) whose record id `keep` accepts.
    pub async fn audit_count_of(&self, run_id: &str, keep: impl Fn(&str) -> bool) -> usize {
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
        out.items
            .unwrap_or_default()
            .iter()
            .filter(|item| {
                matches!(item.get("record_id"),
                    Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) if !id.starts_with("chainhead#") && keep(id))
            })
            .count()
    }

    pub async fn run_count(&self) -> usize {
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
    pub async fn assert_acme_run_done(&self, run_id: &str) -> Value {
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
        // 8 before-states, 8 outcomes, 1 verification, in DynamoDB (beside them, with
        // `victim_mailbox`, the victim step's own records, and a contain run's identity
        // actions').
        assert_eq!(
            self.audit_count_of(run_id, |id| !id.starts_with("victim#")
                && !id.starts_with("identity#"))
                .await,
            17
        );
        assert_eq!(
            self.dlq_depths().await,
            vec![0, 0, 0, 0],
            "nothing dead-lettered"
        );
        body
    }
}

impl Env {
    /// Makes the run look as if its step's holder had died long ago: the lease ended and
    /// nothing touched the run for `idle` (time passing, without waiting for it).
    pub async fn backdate(&self, run_id: &str, idle: Duration) {
        let now = chrono::Utc::now();
        let then = now - chrono::Duration::from_std(idle).unwrap();
        self.ddb
            .update_item()
            .table_name(&self.names.runs_table)
            .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
            .key("sk", AttributeValue::S("RUN".into()))
            .update_expression("SET updated_ms = :then, updated_at = :at, lease_until_ms = :then")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":then",
                AttributeValue::N(then.timestamp_millis().to_string()),
            )
            .expression_attribute_values(":at", AttributeValue::S(then.to_rfc3339()))
            .send()
            .await
            .unwrap();
        self.expire_budget_leases().await;
    }

    /// Every tenant budget lease runs out, as it has by the time SQS redelivers a dead
    /// invocation's message (the visibility timeout is far longer than any lease).
    pub async fn expire_budget_leases(&self) {
        let budgets = self
            .ddb
            .scan()
            .table_name(&self.names.runs_table)
            .filter_expression("begins_with(pk, :budget)")
            .expression_attribute_values(":budget", AttributeValue::S("BUDGET#".into()))
            .send()
            .await
            .unwrap();
        for item in budgets.items.unwrap_or_default() {
            self.ddb
                .update_item()
                .table_name(&self.names.runs_table)
                .key("pk", item["pk"].clone())
                .key("sk", item["sk"].clone())
                .update_expression("REMOVE leases")
                .send()
                .await
                .unwrap();
        }
    }

    /// One invocation of a step function on what its queue holds, cut short after `kill_after`
    /// as Lambda kills a function at its timeout: nothing it received is acknowledged, so SQS
    /// delivers it again. True when the handler was still running when it was killed.
    pub async fn kill_after(&self, function: usize, kill_after: Duration) -> bool {
        let (url, deps) = &self.steps[function];
        let (event, handles) = self
            .receive_up_to(url, 1, 0)
            .await
            .expect("a message to kill");
        let killed = tokio::time::timeout(
            kill_after,
            handle_step_records(deps, event.clone(), self.deadline()),
        )
        .await
        .is_err();
        let all: Vec<String> = event
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap())
            .collect();
        self.settle(url, &event, &handles, &all).await;
        killed
    }

    /// Runs one invocation of a step function on the next message of its queue.
    pub async fn deliver_one(&self, function: usize) -> Vec<String> {
        let (url, deps) = &self.steps[function];
        let (event, handles) = self.receive_up_to(url, 1, 0).await.expect("a message");
        let failed: Vec<String> = handle_step_records(deps, event.clone(), self.deadline())
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        self.settle(url, &event, &handles, &failed).await;
        failed
    }

    /// The run as `GET /revocations/{id}` shows it.
    pub async fn get(&self, run_id: &str) -> Value {
        let (status, body) = self
            .http("GET", &format!("/revocations/{run_id}"), None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}
