//! The one definition of queue, table, index, secret and rule names (`infra/resources.json`),
//! shared by the functions, the emulator provisioning, the tests and (checked by a test)
//! `template.yaml`.

use serde::Deserialize;
use std::sync::OnceLock;

/// The variable that names the audit key (its id, ARN or alias): see `audit_key`.
pub const AUDIT_KEY_VAR: &str = "REVOKE365_AUDIT_KEY_ID";

pub const RESOURCES_JSON: &str = include_str!("../../../../infra/resources.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Resources {
    pub queues: Queues,
    pub failure_queues: FailureQueues,
    pub tables: Tables,
    pub secret: SecretDef,
    /// Per-caller secrets of the HMAC-signed webhook route (JSON: caller -> secret).
    pub webhook_secret: SecretDef,
    pub alert_bus: BusDef,
    pub security_alert_rule: RuleDef,
    pub schedule_rule: ScheduleDef,
}

/// Queues only AWS writes to: where failed EventBridge deliveries and failed asynchronous
/// invocations of the intake function land, and the discovery function's scheduled jobs
/// that were not delivered or failed every try.
#[derive(Debug, Clone, Deserialize)]
pub struct FailureQueues {
    pub security_alert_dlq: String,
    pub intake_async_failures: String,
    pub scheduled_job_failures: String,
}

/// The product's one schedule: it delivers `input` to the discovery function.
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleDef {
    pub name: String,
    pub schedule: String,
    pub input: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Queues {
    pub offboarding: QueueDef,
    pub discovery: QueueDef,
    pub removal: QueueDef,
    pub verification: QueueDef,
}

impl Queues {
    pub fn all(&self) -> [&QueueDef; 4] {
        [
            &self.offboarding,
            &self.discovery,
            &self.removal,
            &self.verification,
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueDef {
    pub name: String,
    pub dlq: String,
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tables {
    pub runs: TableDef,
    pub audit: TableDef,
    pub org_settings: TableDef,
    /// The permission index (see `index_table`).
    pub index: TableDef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub partition_key: String,
    #[serde(default)]
    pub sort_key: Option<String>,
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
}

/// A global secondary index (projecting all attributes).
#[derive(Debug, Clone, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub partition_key: String,
    pub sort_key: String,
    /// `S` or `N`.
    #[serde(default = "string_type")]
    pub sort_key_type: String,
}

fn string_type() -> String {
    "S".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecretDef {
    pub name: String,
}

/// The dedicated EventBridge bus security alerts are put on (the default bus starts nothing).
/// `delivery_queue` exists only in the emulators: LocalStack delivers the rule's events there
/// and the tests hand them to the intake handler, as the rule's Lambda target does in AWS.
#[derive(Debug, Clone, Deserialize)]
pub struct BusDef {
    pub name: String,
    pub delivery_queue: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuleDef {
    pub name: String,
    pub source: String,
    pub detail_type: String,
}

pub fn resources() -> &'static Resources {
    static PARSED: OnceLock<Resources> = OnceLock::new();
    PARSED.get_or_init(|| {
        serde_json::from_str(RESOURCES_JSON).expect("infra/resources.json is valid")
    })
}

/// The names one deployment uses: the definition's, unless the environment (the SAM
/// template's variables) says otherwise.
#[derive(Debug, Clone)]
pub struct AwsNames {
    pub runs_table: String,
    pub audit_table: String,
    pub org_table: String,
    pub index_table: String,
    pub discovery_queue: String,
    pub removal_queue: String,
    pub verification_queue: String,
    pub secret_id: String,
    pub webhook_secret_id: String,
    /// The KMS HMAC key (id, ARN or alias) that seals audit manifests; in a deployment only
    /// the functions that anchor or check a trail are given one.
    pub audit_key_id: String,
}

impl AwsNames {
    /// Names from the definition, each prefixed (tests use a unique prefix per test).
    pub fn prefixed(prefix: &str) -> AwsNames {
        let r = resources();
        AwsNames {
            runs_table: format!("{prefix}{}", r.tables.runs.name),
            audit_table: format!("{prefix}{}", r.tables.audit.name),
            org_table: format!("{prefix}{}", r.tables.org_settings.name),
            index_table: format!("{prefix}{}", r.tables.index.name),
            discovery_queue: format!("{prefix}{}", r.queues.discovery.name),
            removal_queue: format!("{prefix}{}", r.queues.removal.name),
            verification_queue: format!("{prefix}{}", r.queues.verification.name),
            secret_id: format!("{prefix}{}", r.secret.name),
            webhook_secret_id: format!("{prefix}{}", r.webhook_secret.name),
            // The alias `provision` gives the emulators' key; a deployment names its key.
            audit_key_id: format!("alias/{prefix}revoke365-audit-mac"),
        }
    }

    /// `REVOKE365_*` variables win; queue variables may hold a name or a URL.
    pub fn from_env() -> AwsNames {
        AwsNames::from_env_over(AwsNames::prefixed(""))
    }

    /// For callers outside the stack (the CLI's `--aws`): the definition's names with the
    /// stack's `NamePrefix` from `REVOKE365_NAME_PREFIX`; `REVOKE365_*` variables still win.
    pub fn from_env_prefixed() -> AwsNames {
        let prefix = std::env::var("REVOKE365_NAME_PREFIX").unwrap_or_default();
        AwsNames::from_env_over(AwsNames::prefixed(prefix.trim()))
    }

    fn from_env_over(d: AwsNames) -> AwsNames {
        let var = |k: &str, default: String| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        AwsNames {
            runs_table: var("REVOKE365_RUNS_TABLE", d.runs_table),
            audit_table: var("REVOKE365_AUDIT_TABLE", d.audit_table),
            org_table: var("REVOKE365_ORG_TABLE", d.org_table),
            index_table: var("REVOKE365_INDEX_TABLE", d.index_table),
            discovery_queue: var("REVOKE365_DISCOVERY_QUEUE_URL", d.discovery_queue),
            removal_queue: var("REVOKE365_REMOVAL_QUEUE_URL", d.removal_queue),
            verification_queue: var("REVOKE365_VERIFICATION_QUEUE_URL", d.verification_queue),
            secret_id: var("REVOKE365_SECRET_ID", d.secret_id),
            webhook_secret_id: var("REVOKE365_WEBHOOK_SECRET_ID", d.webhook_secret_id),
            audit_key_id: var(AUDIT_KEY_VAR, d.audit_key_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SAM template deploys the same queues, tables, secret and rule as the definition.
    #[test]
    fn template_uses_every_defined_name() {
        let template = include_str!("../../../../template.yaml");
        let r = resources();
        let mut names: Vec<&str> = r
            .queues
            .all()
            .iter()
            .flat_map(|q| [q.name.as_str(), q.dlq.as_str()])
            .collect();
        names.extend(
            [
                &r.tables.runs.name,
                &r.tables.audit.name,
                &r.tables.org_settings.name,
                &r.tables.index.name,
                &r.secret.name,
                &r.webhook_secret.name,
                &r.alert_bus.name,
                &r.security_alert_rule.name,
                &r.schedule_rule.name,
                &r.schedule_rule.schedule,
                &r.failure_queues.security_alert_dlq,
                &r.failure_queues.intake_async_failures,
                &r.failure_queues.scheduled_job_failures,
            ]
            .map(String::as_str),
        );
        for index in r.tables.runs.indexes.iter().chain(&r.tables.index.indexes) {
            names.extend([
                index.name.as_str(),
                index.partition_key.as_str(),
                index.sort_key.as_str(),
            ]);
        }
        names.extend([
            r.security_alert_rule.source.as_str(),
            r.security_alert_rule.detail_type.as_str(),
        ]);
        for name in names {
            assert!(
                template.contains(name),
                "template.yaml does not define {name}"
            );
        }
        for q in r.queues.all() {
            assert!(
                template.contains(&format!("maxReceiveCount: {}", q.max_receive_count)),
                "{}",
                q.name
            );
        }
    }
}
