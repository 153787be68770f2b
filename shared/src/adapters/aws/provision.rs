//! Creates the queues, tables (with their index and TTL), secrets, the alert bus and its rule
//! of `infra/resources.json`, and the audit manifests' HMAC key, in an AWS endpoint —
//! LocalStack and DynamoDB Local for the tests and for trying the handlers locally (`cargo run
//! -p revoke365-shared --features aws --example provision`). In AWS the SAM template creates the same resources (a test checks it against
//! the same definition). Idempotent: what exists is left as it is.

use super::resources::{resources, AwsNames, QueueDef, TableDef};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use std::collections::HashMap;

/// What [`provision`] made (or found).
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub names: AwsNames,
    /// Step and offboarding queue URLs by their definition name.
    pub queue_urls: HashMap<String, String>,
    /// Dead-letter queue URLs in the order of `Queues::all` (offboarding, discovery, removal,
    /// verification).
    pub dlq_urls: Vec<String>,
    /// Where the alert bus's rule delivers: in AWS the rule invokes the intake function; in
    /// the emulators it fills this queue, and whoever plays the function reads it.
    pub alert_delivery_url: String,
}

/// How to provision.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Put before every name (tests use a unique one each).
    pub prefix: String,
    /// A VisibilityTimeout for every step queue instead of the definition's (tests that
    /// redeliver do not wait 16 minutes).
    pub visibility_timeout_secs: Option<u32>,
    /// The secret's value, when one should be created.
    pub secret_json: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

pub async fn provision(
    config: &aws_config::SdkConfig,
    options: &Options,
) -> Result<Provisioned, Error> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let r = resources();
    let prefix = &options.prefix;
    for table in [
        &r.tables.runs,
        &r.tables.audit,
        &r.tables.org_settings,
        &r.tables.index,
    ] {
        create_table(&ddb, prefix, table).await?;
    }
    let mut queue_urls = HashMap::new();
    let mut dlq_urls = Vec::new();
    for q in r.queues.all() {
        let (url, dlq) = create_queue(&sqs, prefix, q, options.visibility_timeout_secs).await?;
        queue_urls.insert(q.name.clone(), url);
        dlq_urls.push(dlq);
    }
    for name in [
        &r.failure_queues.security_alert_dlq,
        &r.failure_queues.intake_async_failures,
        &r.failure_queues.scheduled_job_failures,
    ] {
        ensure_queue(&sqs, &format!("{prefix}{name}"), HashMap::new()).await?;
    }
    let alert_delivery_url = create_alert_bus(config, &sqs, prefix).await?;
    let names = AwsNames::prefixed(prefix);
    let sm = aws_sdk_secretsmanager::Client::new(config);
    if let Some(secret) = &options.secret_json {
        put_secret(&sm, &names.secret_id, secret, true).await?;
    }
    // No webhook caller until one is put (a value already there is kept).
    put_secret(&sm, &names.webhook_secret_id, "{}", false).await?;
    ensure_audit_key(config, &names.audit_key_id).await?;
    Ok(Provisioned {
        names,
        queue_urls,
        dlq_urls,
        alert_delivery_url,
    })
}

/// The HMAC key that seals audit manifests, under `alias` (as the template's `AuditMacKey`):
/// made unless the alias names one already.
async fn ensure_audit_key(config: &aws_config::SdkConfig, alias: &str) -> Result<(), Error> {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let kms = aws_sdk_kms::Client::new(config);
    match kms.describe_key().key_id(alias).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_not_found_exception()) => {}
        Err(e) => return Err(Box::new(e)),
    }
    let made = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .description("Revoke365 audit manifest seals (HMAC-SHA256)")
        .send()
        .await?;
    let key_id = made
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .ok_or("KMS CreateKey answered no key")?;
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await?;
    Ok(())
}

/// Creates the secret, or (when `replace`) puts the value into the one that exists.
async fn put_secret(
    sm: &aws_sdk_secretsmanager::Client,
    id: &str,
    value: &str,
    replace: bool,
) -> Result<(), Error> {
    let created = sm
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|se| se.is_resource_exists_exception());
        if !exists {
            return Err(Box::new(e));
        }
        if replace {
            sm.put_secret_value()
                .secret_id(id)
                .secret_string(value)
                .send()
                .await?;
        }
    }
    Ok(())
}

/// The dedicated alert bus and the security-alert rule on it (the default bus has no rule of
/// ours); the rule's target is the delivery queue. Returns the queue's URL.
async fn create_alert_bus(
    config: &aws_config::SdkConfig,
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
) -> Result<String, Error> {
    let events = aws_sdk_eventbridge::Client::new(config);
    let r = resources();
    let bus = format!("{prefix}{}", r.alert_bus.name);
    if let Err(e) = events.create_event_bus().name(&bus).send().await {
        let exists = e
            .as_service_error()
            .is_some_and(|se| se.is_resource_already_exists_exception());
        if !exists {
            return Err(Box::new(e));
        }
    }
    let url = ensure_queue(
        sqs,
        &format!("{prefix}{}", r.alert_bus.delivery_queue),
        HashMap::new(),
    )
    .await?;
    let arn = queue_arn(sqs, &url).await?;
    let rule = format!("{prefix}{}", r.security_alert_rule.name);
    let pattern = json!({"source": [r.security_alert_rule.source], "detail-type": [r.security_alert_rule.detail_type]});
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .send()
        .await?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("intake")
                .arn(arn)
                .build()?,
        )
        .send()
        .await?;
    Ok(url)
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    Ok(sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("the queue has no ARN")?)
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, Error> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()?)
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, Error> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    prefix: &str,
    def: &TableDef,
) -> Result<(), Error> {
    let name = format!("{prefix}{}", def.name);
    let mut req = ddb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(&def.partition_key, KeyType::Hash)?);
    // Each key attribute is defined once, however many keys it is part of.
    let mut attributes = vec![(def.partition_key.as_str(), ScalarAttributeType::S)];
    if let Some(sort) = &def.sort_key {
        req = req.key_schema(key(sort, KeyType::Range)?);
        attributes.push((sort, ScalarAttributeType::S));
    }
    for index in &def.indexes {
        let sort_type = if index.sort_key_type == "N" {
            ScalarAttributeType::N
        } else {
            ScalarAttributeType::S
        };
        attributes.push((&index.partition_key, ScalarAttributeType::S));
        attributes.push((&index.sort_key, sort_type));
    }
    let mut defined = std::collections::HashSet::new();
    for (name, kind) in attributes {
        if defined.insert(name) {
            req = req.attribute_definitions(attribute(name, kind)?);
        }
    }
    for index in &def.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .key_schema(key(&index.partition_key, KeyType::Hash)?)
                .key_schema(key(&index.sort_key, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) => {}
        Err(e) => return Err(Box::new(e)),
    }
    if let Some(ttl) = &def.ttl_attribute {
        // DynamoDB Local accepts the setting and never expires items; the code checks expiry.
        let _ = ddb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(ttl)
                    .build()?,
            )
            .send()
            .await;
    }
    Ok(())
}

async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, Error> {
    if let Ok(found) = sqs.get_queue_url().queue_name(name).send().await {
        if let Some(url) = found.queue_url {
            if !attributes.is_empty() {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await?;
            }
            return Ok(url);
        }
    }
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await?;
    created
        .queue_url
        .ok_or_else(|| format!("queue {name} has no URL").into())
}

/// A queue and its DLQ, from the definition; returns (queue URL, DLQ URL).
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    def: &QueueDef,
    visibility: Option<u32>,
) -> Result<(String, String), Error> {
    let dlq = ensure_queue(
        sqs,
        &format!("{prefix}{}", def.dlq),
        HashMap::from([(QueueAttributeName::MessageRetentionPeriod, "1209600".into())]),
    )
    .await?;
    let dlq_arn = queue_arn(sqs, &dlq).await?;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": def.max_receive_count});
    let url = ensure_queue(
        sqs,
        &format!("{prefix}{}", def.name),
        HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility
                    .unwrap_or(def.visibility_timeout_secs)
                    .to_string(),
            ),
            (QueueAttributeName::MessageRetentionPeriod, "1209600".into()),
        ]),
    )
    .await?;
    Ok((url, dlq))
}
