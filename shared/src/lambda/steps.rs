//! Discovery, removal, verification: the SQS-triggered steps, and the scheduled jobs (the
//! discovery function also receives the schedule's `{"kind":"scheduled"}` events: the
//! stalled-run sweep, and a company's permission-index sweep).

use super::{aws_config, batch_response, item_failure, LambdaError};
use crate::adapters::aws::audit_key::KmsAuditSeal;
use crate::adapters::aws::dynamodb::DynamoRunStore;
use crate::adapters::aws::resources::{AwsNames, QueueDef};
use crate::adapters::aws::secrets::SecretsProvider;
use crate::adapters::aws::sqs::SqsQueue;
use crate::adapters::aws::tenant_budget::TenantBudgets;
use crate::adapters::connect::DEFAULT_SHARD_TIME;
use crate::config::{HttpSettings, PsaUrls, ServiceUrls};
use crate::error::StepError;
use crate::lambda::connector::SecretConnector;
use crate::messages::{ScheduledJob, ScheduledMessage, StepMessage};
use crate::ports::{BudgetWant, Connector, OrgStore, Queue, StoreIndexes};
use crate::steps::{
    abandon, dispatch, poll_alerts, sweep, Deadline, Delivery, NoProgress, PollReport,
    POLLER_PRINCIPAL,
};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, info_span, warn, Instrument};

/// A run that has not moved for this long, with no live step, is stalled (twice the queues'
/// visibility timeout: SQS had its chances to redeliver).
pub const STALLED_AFTER: chrono::Duration = chrono::Duration::minutes(32);

/// A step that found the tenant's budget taken starts again after this (and up to 5 s more).
const SATURATED_DELAY: Duration = Duration::from_secs(5);

pub struct StepDeps {
    pub store: DynamoRunStore,
    pub queue: SqsQueue,
    pub connector: Arc<dyn Connector>,
    /// The maxReceiveCount of the queue this function consumes.
    pub max_receive_count: u32,
    pub stalled_after: chrono::Duration,
    /// The in-flight limits the HTTP layer learned, per service (what a snapshot records).
    pub learned_limits: LearnedLimits,
}

/// See [`StepDeps::learned_limits`].
pub type LearnedLimits = Arc<dyn Fn() -> BTreeMap<String, usize> + Send + Sync>;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// HTTP settings from the function's environment: the per-service ceilings
/// (`REVOKE365_EXCHANGE_CONCURRENCY`, `REVOKE365_GRAPH_CONCURRENCY`).
pub fn http_settings_from_env() -> HttpSettings {
    let mut http = HttpSettings::default();
    for (budget, var) in [
        (&mut http.exchange, "REVOKE365_EXCHANGE_CONCURRENCY"),
        (&mut http.graph, "REVOKE365_GRAPH_CONCURRENCY"),
    ] {
        if let Some(n) = env_number(var).filter(|n| *n > 0) {
            budget.ceiling = n as usize;
            budget.initial = budget.initial.min(budget.ceiling);
        }
    }
    http
}

impl StepDeps {
    /// `queue` is the definition of the queue the function consumes (for its maxReceiveCount).
    pub async fn from_env(queue: &QueueDef) -> Result<StepDeps, LambdaError> {
        let config = aws_config().await;
        let names = AwsNames::from_env();
        let budgets = TenantBudgets::new(
            aws_sdk_dynamodb::Client::new(&config),
            names.runs_table.clone(),
        );
        let connector = Arc::new(connector_from_env(&config, &names).with_shared_budgets(budgets));
        let max_receive_count = env_number("REVOKE365_MAX_RECEIVE_COUNT")
            .map(|n| n as u32)
            .unwrap_or(queue.max_receive_count);
        let mut deps = StepDeps::new(&config, &names, connector.clone(), max_receive_count).await?;
        deps.learned_limits = learned_limits_of(connector);
        if let Some(secs) = env_number("REVOKE365_STALLED_AFTER_SECS") {
            deps.stalled_after = chrono::Duration::seconds(secs as i64);
        }
        Ok(deps)
    }

    pub async fn new(
        config: &aws_config::SdkConfig,
        names: &AwsNames,
        connector: Arc<dyn Connector>,
        max_receive_count: u32,
    ) -> Result<StepDeps, LambdaError> {
        Ok(StepDeps {
            store: DynamoRunStore::new(aws_sdk_dynamodb::Client::new(config), names)
                .with_audit_seal(KmsAuditSeal::of(config, names)),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(config), names).await?,
            connector,
            max_receive_count,
            stalled_after: STALLED_AFTER,
            learned_limits: Arc::new(BTreeMap::new),
        })
    }
}

/// The tenants' and PSAs' clients as the function's environment and the credentials secret
/// configure them.
pub(crate) fn connector_from_env(
    config: &aws_config::SdkConfig,
    names: &AwsNames,
) -> SecretConnector {
    let urls = ServiceUrls::default().with_env_overrides(|k| std::env::var(k).ok());
    let secrets = SecretsProvider::new(
        aws_sdk_secretsmanager::Client::new(config),
        names.secret_id.clone(),
    );
    let shard_time = env_number("REVOKE365_SHARD_SECONDS")
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_SHARD_TIME);
    let psa_urls = PsaUrls::from_env(|k| std::env::var(k).ok());
    let signing_key =
        std::env::var(crate::adapters::aws::kms_signer::SIGNING_KEY_VAR).unwrap_or_default();
    SecretConnector::new(http_settings_from_env(), urls, secrets, shard_time)
        .with_psa_urls(psa_urls)
        .with_signing_key(aws_sdk_kms::Client::new(config), &signing_key)
}

/// What the connector's HTTP core has learned so far (nothing before its first connection).
pub fn learned_limits_of(connector: Arc<SecretConnector>) -> LearnedLimits {
    Arc::new(move || {
        connector
            .core()
            .map(|core| {
                core.learned_limits()
                    .into_iter()
                    .map(|(_, service, l)| (service.to_string(), l.limit))
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One entry point for a step function: SQS records, or (the discovery function) the
/// schedule's `{"v":1,"kind":"scheduled","job":...}`.
pub async fn handle_step_event(
    deps: &StepDeps,
    event: Value,
    deadline: Deadline,
) -> Result<Value, LambdaError> {
    if event.get("kind").and_then(Value::as_str) == Some("scheduled") {
        let message: ScheduledMessage = serde_json::from_value(event)?;
        return handle_scheduled(deps, &message, deadline).await;
    }
    let sqs: SqsEvent = serde_json::from_value(event)?;
    Ok(serde_json::to_value(
        handle_step_records(deps, sqs, deadline).await,
    )?)
}

/// A scheduled job, within the invocation's `deadline`. An error makes the schedule's
/// asynchronous invocation retry.
pub async fn handle_scheduled(
    deps: &StepDeps,
    message: &ScheduledMessage,
    deadline: Deadline,
) -> Result<Value, LambdaError> {
    match message.job {
        ScheduledJob::Sweep => {
            let report = sweep(
                &deps.store,
                &deps.queue,
                deps.connector.as_ref(),
                chrono::Utc::now(),
                deps.stalled_after,
            )
            .await?;
            info!(
                redriven = report.redriven.len(),
                failed = report.failed.len(),
                "sweep done"
            );
            Ok(json!({"job": "sweep", "redriven": report.redriven, "failed": report.failed}))
        }
        ScheduledJob::Index => index_company(deps, message.company_id.as_deref(), deadline).await,
        ScheduledJob::Review => {
            review_company(deps, message.company_id.as_deref(), message.inactive_days).await
        }
        ScheduledJob::PollAlerts => {
            let company_id = message.company_id.as_deref().ok_or(
                "invalid company_id: the poll_alerts job names the company whose alerts it reads (\"company_id\")",
            )?;
            let span = info_span!("poll_alerts", company_id = %company_id);
            let report = poll_company(deps, company_id).instrument(span).await?;
            Ok(json!({"job": "poll_alerts", "report": report}))
        }
    }
}

/// The scheduled index sweep of one company: reads every grant of its tenant (under the
/// tenant's shared budget, like a discovery step) and stores the snapshot in the index
/// table, pruned per the company's `index` settings. One invocation, bounded by the
/// function's timeout: no call is sent once the deadline nears. Each mailbox read is
/// journaled in the index table as it completes, so a sweep cut short stores no snapshot and
/// fails, and the schedule's retry goes on from the mailboxes it had read.
async fn index_company(
    deps: &StepDeps,
    company_id: Option<&str>,
    deadline: Deadline,
) -> Result<Value, LambdaError> {
    let company_id = named_company(company_id, "index", "the company whose tenant to sweep")?;
    let span = info_span!("index_sweep", company_id = %company_id);
    async {
        let (index, org, conns) = indexed_company(deps, company_id).await?;
        let delivery = Delivery {
            holder: uuid::Uuid::new_v4().to_string(),
            deadline,
        };
        deps.connector
            .hold_budget(&org, &delivery, BudgetWant::ALL)
            .await?;
        let learned = deps.learned_limits.clone();
        let journal = deps.store.sweep_journal();
        let swept = deadline
            .bound(crate::index::sweep_resumable(
                conns.tenant(),
                &org,
                &NoProgress,
                &move || learned(),
                journal,
            ))
            .await;
        deps.connector.return_budget(&org, &delivery).await;
        if deadline.near() {
            let read = match journal {
                Some(j) => j.unfinished_sweep(company_id).await?.map_or(0, |p| p.done.len()),
                None => 0,
            };
            warn!(mailboxes_journaled = read, "index sweep cut short by the function's deadline; no snapshot stored yet");
            return Err(format!(
                "the index sweep of company '{company_id}' did not finish within the function's timeout: {read} mailboxes read so far are journaled and the schedule's retry goes on from them (no snapshot is stored until the sweep ends)"
            )
            .into());
        }
        let snapshot = match swept {
            Ok(snapshot) => snapshot,
            Err(e) => {
                if e.is_auth() {
                    deps.connector.credentials_rejected().await;
                }
                warn!(error = %e, "index sweep could not read the tenant; nothing stored");
                return Err(e.into());
            }
        };
        index.save_snapshot(&snapshot, &org.index).await?;
        if let Some(j) = journal {
            if let Err(e) = j.end_sweep(company_id).await {
                warn!(error = %e, "the sweep journal could not be dropped; the next sweep starts again once it is a day old");
            }
        }
        let s = &snapshot.summary;
        info!(snapshot_id = %s.snapshot_id, grants = s.grants, trustees = s.trustees, mailboxes = s.mailboxes, duration_ms = s.duration_ms, errors = s.errors.len(), "index snapshot stored");
        Ok(json!({"job": "index", "company_id": company_id, "snapshot_id": s.snapshot_id,
            "taken_at": s.taken_at, "mailboxes": s.mailboxes, "grants": s.grants, "errors": s.errors,
            "resumed_mailboxes": s.resumed_mailboxes}))
    }
    .instrument(span)
    .await
}

/// The scheduled access review of one company: its newest snapshot reviewed (with a directory
/// read per user trustee) and the digest sent — one ticket note and one email. Nothing is
/// revoked: a technician acts on the digest (`revoke365 review --revoke`). A digest that could
/// not be delivered fails the invocation, and the schedule's retry finds the day's ticket and
/// note by their marker rather than making them again.
async fn review_company(
    deps: &StepDeps,
    company_id: Option<&str>,
    inactive_days: Option<u32>,
) -> Result<Value, LambdaError> {
    let company_id = named_company(company_id, "review", "the company whose snapshot to review")?;
    let span = info_span!("review", company_id = %company_id);
    async {
        let (index, org, conns) = indexed_company(deps, company_id).await?;
        let found =
            crate::index::review(index, conns.directory.as_ref(), &org, inactive_days).await?;
        let delivery =
            crate::index::deliver_digest(conns.notify(), &org, &found, &[], None, None).await;
        info!(snapshot_id = %found.snapshot_id, trustees = found.trustees.len(), grants = found.grants, ticket = ?delivery.ticket_id, errors = delivery.errors.len(), "access review digest sent");
        if !delivery.errors.is_empty() {
            return Err(format!(
                "the access review digest of company '{company_id}' was not fully delivered: {}",
                delivery.errors.join("; ")
            )
            .into());
        }
        Ok(json!({"job": "review", "company_id": company_id, "snapshot_id": found.snapshot_id,
            "summary": found.summary, "trustees": found.trustees.len(), "grants": found.grants,
            "notes": found.notes, "digest": delivery}))
    }
    .instrument(span)
    .await
}

/// The company a per-company index job names (`company_id`, not blank).
fn named_company<'a>(
    company_id: Option<&'a str>,
    job: &str,
    whose: &str,
) -> Result<&'a str, LambdaError> {
    company_id
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("the scheduled {job} job needs \"company_id\": {whose}").into())
}

/// What a per-company index job works with: the index, the company's settings, its clients.
async fn indexed_company<'d>(
    deps: &'d StepDeps,
    company_id: &str,
) -> Result<
    (
        &'d dyn crate::ports::PermissionIndex,
        crate::model::OrgSettings,
        crate::ports::Connections,
    ),
    LambdaError,
> {
    let index = deps
        .store
        .permission_index()
        .ok_or("this store keeps no permission index")?;
    let org = deps
        .store
        .org_settings(company_id)
        .await?
        .ok_or_else(|| format!("no organization settings for company '{company_id}'"))?;
    let conns = deps.connector.connect(&org).await?;
    Ok((index, org, conns))
}

/// One poll of a company's alerts; rejected credentials are read again and tried once more.
async fn poll_company(deps: &StepDeps, company_id: &str) -> Result<PollReport, LambdaError> {
    let org = deps
        .store
        .org_settings(company_id)
        .await?
        .ok_or_else(|| format!("invalid company_id: unknown company '{company_id}'"))?;
    let poll = || async {
        let connections = deps.connector.connect(&org).await?;
        poll_alerts(
            &deps.store,
            &deps.store,
            &deps.queue,
            &connections,
            &org,
            Some(POLLER_PRINCIPAL),
            chrono::Utc::now(),
        )
        .await
    };
    let report = match poll().await {
        Err(e) if e.is_auth() => {
            deps.connector.credentials_rejected().await;
            poll().await
        }
        other => other,
    };
    Ok(report?)
}

/// Handles step messages one by one: the container's HTTP core has one limit per tenant and
/// service, sized to the lease of the delivery it serves. Transient failures are left to SQS
/// (the record is reported failed and comes back after the visibility timeout); on the last
/// allowed receive the run is marked failed with the reason before the message goes to the
/// dead-letter queue. Permanent failures (unknown run, unsupported version) fail the run at
/// once. A body that is no step message fails no run ([`malformed`]). A message for a step
/// another live invocation holds comes back later. Records not started when the deadline nears
/// are queued again as new messages, never failed.
pub async fn handle_step_records(
    deps: &StepDeps,
    event: SqsEvent,
    deadline: Deadline,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        failures.extend(handle_step_record(deps, record, deadline).await);
    }
    batch_response(failures)
}

/// One record of [`handle_step_records`]; its failure, if SQS should deliver it again.
async fn handle_step_record(
    deps: &StepDeps,
    record: SqsMessage,
    deadline: Deadline,
) -> Option<BatchItemFailure> {
    let id = record.message_id.clone().unwrap_or_default();
    let body = record.body.clone().unwrap_or_default();
    let last_try = receive_count(&record) >= deps.max_receive_count;
    let message = match serde_json::from_str::<StepMessage>(&body) {
        Ok(message) => message,
        Err(e) => {
            malformed(&id, &e, receive_count(&record), last_try);
            return Some(item_failure(id));
        }
    };
    if deadline.near() {
        if deps.queue.send(message.clone()).await.is_ok() {
            return None;
        }
        return Some(item_failure(id));
    }
    let Err(e) = deliver(deps, &message, &id, deadline).await else {
        return None;
    };
    if let StepError::Saturated { .. } = &e {
        // Waiting for the tenant's budget is not a failed try: the message starts again
        // later as a new one.
        let delay = SATURATED_DELAY + Duration::from_millis(fastrand::u64(0..5_000));
        if deps.queue.send_later(message.clone(), delay).await.is_ok() {
            info!(message_id = %id, error = %e, delay_ms = delay.as_millis() as u64, "step queued again");
            return None;
        }
    }
    if let StepError::Busy { holder, until } = &e {
        if last_try {
            // The live holder carries the step; the sweeper catches it should it die.
            warn!(message_id = %id, %holder, %until, "duplicate of a step in progress dropped on its last receive");
            return None;
        }
        info!(message_id = %id, %holder, %until, "step held by a live invocation; the message comes back later");
        return Some(item_failure(id));
    }
    let permanent = !e.is_transient();
    let run_id = &message.run_id;
    warn!(message_id = %id, %run_id, error = %e, permanent, last_try, "step message failed");
    if permanent || last_try {
        let reason = if permanent {
            e.to_string()
        } else {
            format!("gave up after {} tries: {e}", deps.max_receive_count)
        };
        abandon(
            &deps.store,
            &deps.queue,
            deps.connector.as_ref(),
            run_id,
            Some(&message.step),
            &reason,
        )
        .await;
    }
    Some(item_failure(id))
}

/// A body that is no step message of ours. It is reported as a failed item on every receive,
/// so SQS moves it to the queue's dead-letter queue after maxReceiveCount, and it fails no
/// run: whatever run id it may carry is not one a step sent (a run whose real message never
/// came is the stalled-run sweep's). Only where parsing stopped is logged — the body is not:
/// a message on an internal queue that is not ours could hold anything.
fn malformed(message_id: &str, error: &serde_json::Error, receives: u32, last_try: bool) {
    warn!(
        message_id,
        error_kind = ?error.classify(),
        line = error.line(),
        column = error.column(),
        receives,
        to_dlq = last_try,
        "malformed step message: not handled, no run failed; it goes to the dead-letter queue after its last receive"
    );
}

/// One delivery of a step message; rejected credentials are read again and tried once more.
async fn deliver(
    deps: &StepDeps,
    message: &StepMessage,
    message_id: &str,
    deadline: Deadline,
) -> Result<(), StepError> {
    let span = info_span!("step", run_id = %message.run_id, kind = message.kind(), message_id = %message_id);
    async {
        let delivery = Delivery {
            holder: uuid::Uuid::new_v4().to_string(),
            deadline,
        };
        let run = || {
            dispatch(
                &deps.store,
                &deps.queue,
                deps.connector.as_ref(),
                &NoProgress,
                message,
                &delivery,
            )
        };
        match run().await {
            Err(e) if e.is_auth() => {
                deps.connector.credentials_rejected().await;
                run().await
            }
            other => other,
        }
    }
    .instrument(span)
    .await
}
