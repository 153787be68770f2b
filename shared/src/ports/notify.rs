//! Where a run is reported: the PSA ticket, the mail, Teams and webhooks.

use crate::error::RemoteError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub summary: String,
    pub board: String,
    pub company: String,
    pub initial_description: String,
}

/// A company as the PSA knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaCompany {
    /// The PSA's numeric id, as text.
    pub id: String,
    pub identifier: String,
    pub name: String,
}

impl PsaCompany {
    /// Whether this is the company an org's `psa_company` names: by identifier (in any case)
    /// or by numeric id.
    pub fn is(&self, psa_company: &str) -> bool {
        let wanted = psa_company.trim();
        !wanted.is_empty() && (self.identifier.eq_ignore_ascii_case(wanted) || self.id == wanted)
    }
}

#[async_trait]
pub trait Psa: Send + Sync {
    /// Checks a ticket id's format without any call (ConnectWise ids are integers).
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError>;
    /// Creates a ticket and returns its id.
    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError>;
    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError>;
    /// The ticket whose summary contains `marker` (a run id), if there is one.
    async fn find_ticket(&self, marker: &str) -> Result<Option<String>, RemoteError>;
    /// Whether a note on the ticket contains `marker` (a run id).
    async fn has_note(&self, ticket_id: &str, marker: &str) -> Result<bool, RemoteError>;
    /// The company ticket `ticket_id` belongs to; `None` when the PSA has no such ticket.
    async fn ticket_company(&self, ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError>;
    /// The company `psa_company` names (identifier or numeric id); `None` when there is none.
    async fn find_company(&self, psa_company: &str) -> Result<Option<PsaCompany>, RemoteError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html_body: String,
    pub attachments: Vec<Attachment>,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), RemoteError>;
}

/// Where a run's outcome is posted besides the email: a Teams channel or a company's own
/// signed webhook (`[company.notify]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Teams,
    Webhook,
}

impl HookKind {
    /// The hook's name in reports and logs (its URL carries a token and is never shown).
    pub fn label(self) -> &'static str {
        match self {
            HookKind::Teams => "Teams webhook",
            HookKind::Webhook => "webhook",
        }
    }
}

/// A finished run as posted to Teams and to a webhook; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunNotice {
    /// `revocation.finished` or `restore.finished`.
    pub event: String,
    pub run_id: String,
    pub company_id: String,
    pub company_name: String,
    pub user_email: String,
    pub success: bool,
    /// The run's status (`completed`, `completed_with_errors`, ...).
    pub status: String,
    /// Grants removed (a revocation) or put back (a restore).
    pub total_permissions_removed: u32,
    /// What went wrong, in the report's words (`errors`, failed restores).
    pub failures: u32,
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
}

/// Posts a run's outcome to a Teams channel or a webhook, once per call (no retry of a
/// write that may have landed; no redirects).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn post(&self, kind: HookKind, url: &str, notice: &RunNotice) -> Result<(), RemoteError>;
}
