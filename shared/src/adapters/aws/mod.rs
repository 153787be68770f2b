//! AWS adapters: the run store and the permission index on DynamoDB, the step queues on SQS,
//! secrets from Secrets Manager, and the one definition of their names.

pub mod alert_ledger;
pub mod audit_key;
pub mod budget_hold;
mod dynamo;
pub mod dynamodb;
pub mod index_table;
pub mod kms_signer;
pub mod org_table;
pub mod provision;
pub mod resources;
pub mod run_history;
pub mod secrets;
pub mod sqs;
pub mod sweep_journal;
pub mod tenant_budget;
