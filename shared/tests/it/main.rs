//! The library's integration tests, one binary: the real HTTP clients against the tenant
//! simulator on loopback, the engine on one machine, and (feature `aws`) the real handlers
//! against LocalStack and DynamoDB Local. What they share with the other crates' tests is in
//! `revoke365-testkit` (testkit/); one module: `cargo test -p revoke365-shared --test it -- workflow_acme::`.

mod alerts;
mod audit_chain;

#[cfg(feature = "aws")]
mod aws_alerts;
#[cfg(feature = "aws")]
mod aws_audit;
#[cfg(feature = "aws")]
mod aws_certificate;
#[cfg(feature = "aws")]
mod aws_contain;
#[cfg(feature = "aws")]
mod aws_e2e;
#[cfg(feature = "aws")]
mod aws_faults;
#[cfg(feature = "aws")]
mod aws_index;
#[cfg(feature = "aws")]
mod aws_kit;
#[cfg(feature = "aws")]
mod aws_psa;
#[cfg(feature = "aws")]
mod aws_restore;
#[cfg(feature = "aws")]
mod aws_victim;
mod certificate_credentials;
mod clients_autotask;
mod clients_connectwise;
mod clients_folders;
mod clients_halopsa;
mod clients_identity;
mod clients_m365;
mod clients_throttling;
mod intake;
mod invariants;
mod least_authority;
mod notify_webhooks;
mod permission_index;
mod reads_retried;
mod restore;
mod run_history;
mod template_trust;
mod trust_checks;
mod trust_report;
mod trust_resume;
mod trust_verify;
mod victim_mailbox;
mod workflow_acme;
mod workflow_faults;
mod workflow_hard;
mod workflow_psa;
mod workflow_real;
