//! Command-line flags (docs/cli.md).

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "revoke365",
    version,
    about = "Remove a user's access to other people's Microsoft 365 mailboxes, verify it, audit it, report it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover, remove and verify every grant the user holds on other mailboxes.
    Run(RunArgs),
    /// Go on with a run that was interrupted (Ctrl-C) or whose process died, from its state
    /// in the data directory; the result covers the whole run.
    Resume(ResumeArgs),
    /// Check a company's set-up without removing anything: credentials and app roles, the
    /// Exchange role, the notification sender and recipients, the ticket (exit 0 all ok, 2 not).
    Check(CheckArgs),
    /// Put back exactly what a finished run removed, as a run of its own (audited, verified by
    /// re-reading, noted on the original ticket and mailed). Restoring twice is harmless. With
    /// --as-of, put one mailbox's grants back as a permission-index snapshot held them.
    Restore(RestoreArgs),
    /// Read every grant of every trustee in a company's tenant into the permission index
    /// (a snapshot in the data directory): what `access`, `run --contain` and reviews read.
    Sweep(SweepArgs),
    /// Who can open what, from the newest snapshot (no tenant call): every grant a user
    /// holds, or every trustee of a mailbox; --live re-reads the tenant and marks changes.
    Access(AccessArgs),
    /// Access review from the newest snapshot and a directory read: grants held by disabled
    /// accounts, deleted users, orphaned SIDs, unresolvable names, guests, external addresses
    /// and (--inactive-days) inactive users, grouped by trustee (exit 0 nothing found, 1
    /// something to review; with --revoke or --notify, 0 when every run succeeded and the
    /// digest was delivered).
    Review(ReviewArgs),
    /// Work with the audit trails on disk.
    Audit(AuditArgs),
    /// List runs, newest first: from the data directory, or the AWS tables with --aws.
    Runs(RunsArgs),
    /// Print a run's stored result (a restore's restore result; a run not finished: its
    /// status and failure); exit 2 for an unknown run.
    Show(ShowArgs),
    /// Company settings: write them to the AWS org table, read them there or in a config.
    Org(OrgArgs),
    /// Poll a company's Defender XDR alerts and Entra ID Protection risky users and run a
    /// contain run per compromised user, once per alert (exit 0: every run started succeeded).
    Watch(WatchArgs),
    /// Certificate credentials for the app registration.
    Cert(CertArgs),
    /// A customer's tenant: onboarding.
    Tenant(OnboardingArgs),
}

#[derive(Debug, clap::Args)]
pub struct OnboardingArgs {
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// From "new customer" to "ready": prints the admin-consent URL for the customer's
    /// tenant, waits for the consent (or --check-only), runs check's checks and, once every
    /// one passes, writes the company's [[company]] block (exit 0 all passed, 2 not).
    Onboard(OnboardArgs),
}

#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The company being onboarded.
    #[arg(long, value_name = "ID")]
    pub company_id: String,
    /// A file with the new company's [[company]] block (TOML or JSON, as `org put` reads);
    /// without it the company is the config's (or the sandbox fixture's).
    #[arg(long, value_name = "FILE")]
    pub company: Option<PathBuf>,
    /// Check once, without waiting for the consent.
    #[arg(long)]
    pub check_only: bool,
    /// How long to wait for the consent, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub wait_secs: u64,
    /// Where the company block is appended once every check passes (default: the config,
    /// for a company from --company; otherwise it is printed only).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the company to the deployment's org-settings table once every check
    /// passes (as `org put --aws`).
    #[arg(long)]
    pub aws: bool,
    /// TOML config for a real tenant.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// A sandbox fixture for the simulator.
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct CertArgs {
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// A new RSA key and self-signed certificate: FILE.pem (key and certificate, mode 600,
    /// what `[m365] certificate_file` reads) and FILE.cer (the certificate alone, to upload
    /// to the app registration); prints the SHA-256 and SHA-1 thumbprints.
    New(CertNewArgs),
}

#[derive(Debug, clap::Args)]
pub struct CertNewArgs {
    /// Where the key and certificate go (PEM); the certificate alone goes beside it as .cer.
    #[arg(long, value_name = "FILE.pem")]
    pub out: PathBuf,
    /// How long the certificate is valid, in days (1 to 3650).
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// The certificate's subject common name.
    #[arg(long, value_name = "CN", default_value = "revoke365")]
    pub subject: String,
    /// Replace an existing FILE.pem.
    #[arg(long)]
    pub force: bool,
    /// Make the certificate of this asymmetric KMS key (RSA_2048, SIGN_VERIFY; id, ARN or
    /// alias) instead of a new key: its public key is read and the certificate signed with
    /// kms:Sign; FILE.pem then holds the certificate alone (for the credentials secret's
    /// m365_certificate). Uses the AWS SDK's usual credentials and region.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The company whose tenant's alerts are read.
    #[arg(long, value_name = "ID")]
    pub company_id: String,
    /// Poll once, run what it starts to its end, and exit.
    #[arg(long, conflicts_with = "every")]
    pub once: bool,
    /// Poll at this interval (30s, 5m, 1h; at least 30s) until stopped (Ctrl-C).
    #[arg(long, value_name = "INTERVAL")]
    pub every: Option<String>,
    /// TOML config for a real tenant.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// A sandbox fixture (its `security_alerts` and `risky_users`) for the simulator.
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    /// Where runs, watermarks and the alerts already acted on are kept.
    #[arg(long = "data-dir", visible_alias = "audit-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

/// Where runs are read: the embedded store (the data directory, or the config's) or, with
/// `--aws`, the deployment's tables.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The data directory (default: the config's data_dir, else ./revoke365-audit).
    #[arg(
        long = "data-dir",
        visible_alias = "audit-dir",
        value_name = "DIR",
        conflicts_with = "aws"
    )]
    pub data_dir: Option<PathBuf>,
    /// The config whose data_dir and companies are used.
    #[arg(long, value_name = "FILE", conflicts_with = "aws")]
    pub config: Option<PathBuf>,
    /// Read the AWS tables (names from infra/resources.json with REVOKE365_NAME_PREFIX;
    /// credentials and region from the AWS environment).
    #[arg(long)]
    pub aws: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Runs for this user (the address requested, or the UPN it resolved to).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Runs of this company (required with --aws).
    #[arg(long, value_name = "ID")]
    pub company_id: Option<String>,
    /// Runs created at or after this date (YYYY-MM-DD, UTC) or RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Runs in this status (completed, completed_with_errors, failed, interrupted, ...).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Runs a page holds (1 to 100).
    #[arg(long, value_name = "N", default_value = "50")]
    pub limit: String,
    /// The `next` of the previous page.
    #[arg(long, value_name = "TOKEN")]
    pub next: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// Add the run's audit records.
    #[arg(long)]
    pub audit: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Check a file's companies (TOML [[company]] blocks, as in the config, or JSON) and, with
    /// --aws, write them to the org table; without --aws nothing is written.
    Put(OrgPutArgs),
    /// One company's settings.
    Get(OrgGetArgs),
    /// Every company's settings.
    List(OrgSourceArgs),
}

/// Where company settings are read: the AWS org table or a config file.
#[derive(Debug, clap::Args)]
pub struct OrgSourceArgs {
    /// The org-settings table of the AWS deployment.
    #[arg(long, conflicts_with = "config")]
    pub aws: bool,
    /// The [[company]] blocks of this config (read-only).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct OrgGetArgs {
    #[arg(value_name = "COMPANY_ID")]
    pub company_id: String,
    #[command(flatten)]
    pub source: OrgSourceArgs,
}

#[derive(Debug, clap::Args)]
pub struct OrgPutArgs {
    /// A TOML file with [[company]] blocks (a config file will do) or JSON.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write to the org-settings table of the AWS deployment.
    #[arg(long)]
    pub aws: bool,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The run whose removals are put back (none with --as-of).
    #[arg(
        value_name = "RUN_ID",
        required_unless_present = "as_of",
        conflicts_with = "as_of"
    )]
    pub run_id: Option<String>,
    /// A backup restore: put one mailbox's (--mailbox) grants back as the permission index's
    /// snapshot with this id, or the newest taken on or before this date (YYYY-MM-DD), held
    /// them.
    #[arg(long, value_name = "SNAPSHOT_ID|DATE", requires = "company_id")]
    pub as_of: Option<String>,
    /// The company of a backup restore.
    #[arg(long, value_name = "ID", requires = "as_of")]
    pub company_id: Option<String>,
    /// The ticket a backup restore's note goes on (default: the PSA opens one).
    #[arg(
        long = "ticket",
        alias = "ticket-id",
        value_name = "ID",
        requires = "as_of"
    )]
    pub ticket_id: Option<String>,
    /// Only these permission types: full_access, send_as, send_on_behalf, calendar, folder.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only grants on this mailbox (repeatable); with --as-of, the one mailbox put back.
    #[arg(long = "mailbox", value_name = "EMAIL")]
    pub mailboxes: Vec<String>,
    /// Say what would be put back; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also put back grants whose user a later run revoked again.
    #[arg(long)]
    pub include_revoked: bool,
    /// Also put back what a --victim-mailbox run changed on the user's own mailbox (its
    /// forwarding, the inbox rules it disabled, recent delegates it removed); never implied.
    #[arg(long, conflicts_with = "as_of")]
    pub include_victim_mailbox: bool,
    /// Who asked (a name or an address), recorded with the run and shown in the result, the
    /// ticket note and the email; an address in the sender's domain or the company's
    /// report_domains also gets the report.
    #[arg(long, value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Why (e.g. the offboarding case), recorded with the request like --requested-by.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// TOML config for a real tenant (default: the one the run was started with).
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// The sandbox fixture (default: the one the run was started with, in the state the run
    /// left it).
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// The data directory the run was started with.
    #[arg(long = "data-dir", visible_alias = "audit-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

impl RestoreArgs {
    /// The restore body these flags describe; validated by the library like the API's.
    pub fn request_body(&self) -> Value {
        let mut body = Map::new();
        insert_scope(&mut body, &self.types, &self.mailboxes);
        body.insert("dry_run".into(), json!(self.dry_run));
        body.insert("include_revoked".into(), json!(self.include_revoked));
        if self.include_victim_mailbox {
            body.insert("include_victim_mailbox".into(), json!(true));
        }
        insert_present(
            &mut body,
            [
                ("requested_by", &self.requested_by),
                ("reason", &self.reason),
            ],
        );
        Value::Object(body)
    }

    /// The backup restore body these flags describe (with --as-of): one --mailbox is the
    /// mailbox put back; more than one is refused by the library.
    pub fn backup_body(&self) -> Value {
        let Value::Object(mut body) = self.request_body() else {
            unreachable!("request_body builds an object")
        };
        if let [mailbox] = self.mailboxes.as_slice() {
            body.remove("target_mailboxes");
            body.insert("mailbox".into(), json!(mailbox));
        }
        insert_present(
            &mut body,
            [
                ("company_id", &self.company_id),
                ("as_of", &self.as_of),
                ("ticket_id", &self.ticket_id),
            ],
        );
        Value::Object(body)
    }
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute a run's hash chains and compare them with the manifest anchored when it
    /// verified (exit 0 intact or written before chaining, 1 naming each record changed,
    /// removed or inserted, 2 no such trail).
    Verify(AuditVerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditVerifyArgs {
    /// The run whose audit trail is checked.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// The data directory holding the run's audit files.
    #[arg(
        long = "data-dir",
        visible_alias = "audit-dir",
        value_name = "DIR",
        default_value = "./revoke365-audit"
    )]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// PSA company id; selects the org settings and the M365 tenant.
    #[arg(long, value_name = "ID")]
    pub company_id: String,
    /// A PSA ticket that must belong to this company; without it the company itself is looked
    /// up in the PSA (a new ticket would be created for it).
    #[arg(long, alias = "ticket-id", value_name = "ID")]
    pub ticket: Option<String>,
    /// Also send a test email from the notification sender to the recipients.
    #[arg(long)]
    pub send_test: bool,
    /// TOML config for a real tenant.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// Check against the simulator loaded with this tenant fixture.
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

/// The tenant a command reads: a config's, or a sandbox's; and where its state is.
#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    /// PSA company id; selects the org settings and the M365 tenant.
    #[arg(long, value_name = "ID")]
    pub company_id: String,
    /// TOML config for a real tenant.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// The simulator loaded with this tenant fixture.
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    /// Where run state and the index (revoke365.db) are kept (overrides the config's data_dir).
    #[arg(long = "data-dir", visible_alias = "audit-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ceiling of the requests in flight per tenant and service (learnt below it).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub tenant: TenantArgs,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Also list enabled users who have not signed in for N days (Graph signInActivity: needs
    /// AuditLog.Read.All and Entra ID P1; skipped with a note where absent).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub inactive_days: Option<u32>,
    /// Start a revocation of every listed directory user (disabled accounts, guests, inactive
    /// users) and a cleanup of every trustee that no longer exists (orphaned SIDs, names that
    /// resolve to nothing, external addresses); all reported in one digest: one ticket, one
    /// note, one email.
    #[arg(long)]
    pub revoke: bool,
    /// Send the review's digest (ticket note and email) without revoking anything.
    #[arg(long, conflicts_with = "revoke")]
    pub notify: bool,
    /// The ticket the digest goes on (default: the day's digest ticket, made once).
    #[arg(long, alias = "ticket-id", value_name = "T")]
    pub ticket: Option<String>,
    /// Who asked (an address gets the digest by email when its domain may receive reports).
    #[arg(long, value_name = "R")]
    pub requested_by: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct AccessArgs {
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Every grant this user holds (UPN, address or object id).
    #[arg(
        long,
        value_name = "EMAIL",
        conflicts_with = "mailbox",
        required_unless_present = "mailbox"
    )]
    pub user: Option<String>,
    /// Every trustee that holds a grant on this mailbox.
    #[arg(long, value_name = "EMAIL")]
    pub mailbox: Option<String>,
    /// Re-read the user's grants from the tenant and mark what changed since the snapshot.
    #[arg(long)]
    pub live: bool,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Table,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The user whose access is removed (user_email).
    #[arg(long, value_name = "EMAIL")]
    pub user: String,
    /// PSA company id; selects the org settings and the M365 tenant.
    #[arg(long, value_name = "ID")]
    pub company_id: String,
    /// Comma-separated permission types: full_access, send_as, send_on_behalf, calendar,
    /// folder.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Read every folder of every mailbox for folder permissions, not only the well-known
    /// folders (and those the permission index lists for the user): slower.
    #[arg(long)]
    pub all_folders: bool,
    /// Only this mailbox (repeatable).
    #[arg(long = "mailbox", value_name = "EMAIL")]
    pub mailboxes: Vec<String>,
    /// Leave grants on shared mailboxes alone (reported as skipped).
    #[arg(long)]
    pub keep_shared: bool,
    /// Existing PSA ticket to update; without it a ticket is created.
    #[arg(long, alias = "ticket-id", value_name = "ID")]
    pub ticket: Option<String>,
    /// Discover and report what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: still add the report to the ticket and mail it (a live run always does).
    #[arg(long)]
    pub notify: bool,
    /// Also contain the user's own mailbox: clear forwarding, disable the inbox rules that
    /// forward, redirect or delete, list the delegates on it.
    #[arg(long)]
    pub victim_mailbox: bool,
    /// With --victim-mailbox: remove the recent delegates on it too.
    #[arg(long, requires = "victim_mailbox")]
    pub remove_recent_delegates: bool,
    /// Who asked (a name or an address), recorded with the run and shown in the result, the
    /// ticket note and the email; an address in the sender's domain or the company's
    /// report_domains also gets the report.
    #[arg(long, value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Why (e.g. the offboarding case), recorded with the request like --requested-by.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// TOML config for a real tenant.
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// Run against the simulator loaded with this tenant fixture.
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Where run state (revoke365.db) and audit files go (overrides the config's data_dir).
    #[arg(long = "data-dir", visible_alias = "audit-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ceiling of the requests in flight per tenant and service (learnt below it).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Start a new run even though an interrupted run of this user and company exists.
    #[arg(long)]
    pub new: bool,
    /// Contain first: remove every grant the newest permission-index snapshot (`sweep`) lists
    /// for the user at once, then discover live and verify as usual (`"mode": "contain"`).
    #[arg(long)]
    pub contain: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run id the interrupted run printed.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    /// TOML config for a real tenant (default: the one the run was started with).
    #[arg(long, value_name = "FILE", conflicts_with = "sandbox")]
    pub config: Option<PathBuf>,
    /// The sandbox fixture (default: the one the run was started with).
    #[arg(long, value_name = "FIXTURE")]
    pub sandbox: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// The data directory the run was started with.
    #[arg(long = "data-dir", visible_alias = "audit-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

impl RunArgs {
    /// The §2 request body these flags describe; validated by the library like any other body.
    pub fn request_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("user_email".into(), json!(self.user));
        body.insert("company_id".into(), json!(self.company_id));
        insert_scope(&mut body, &self.types, &self.mailboxes);
        body.insert("remove_from_shared".into(), json!(!self.keep_shared));
        body.insert("dry_run".into(), json!(self.dry_run));
        if self.notify {
            body.insert("notify".into(), json!(true));
        }
        if self.contain {
            body.insert("mode".into(), json!("contain"));
        }
        if self.all_folders {
            body.insert("all_folders".into(), json!(true));
        }
        if self.victim_mailbox {
            body.insert("victim_mailbox".into(), json!(true));
        }
        if self.remove_recent_delegates {
            body.insert("remove_recent_delegates".into(), json!(true));
        }
        insert_present(
            &mut body,
            [
                ("ticket_id", &self.ticket),
                ("requested_by", &self.requested_by),
                ("reason", &self.reason),
            ],
        );
        Value::Object(body)
    }
}

/// `--types` and `--mailbox` as the body's `permission_types` and `target_mailboxes`, when given.
fn insert_scope(body: &mut Map<String, Value>, types: &[String], mailboxes: &[String]) {
    if !types.is_empty() {
        body.insert(
            "permission_types".into(),
            json!(types.iter().map(|t| t.trim()).collect::<Vec<_>>()),
        );
    }
    if !mailboxes.is_empty() {
        body.insert("target_mailboxes".into(), json!(mailboxes));
    }
}

/// The optional text flags that were given.
fn insert_present<const N: usize>(
    body: &mut Map<String, Value>,
    fields: [(&str, &Option<String>); N],
) {
    for (key, value) in fields {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
}
