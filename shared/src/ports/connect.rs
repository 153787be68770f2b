//! One company's connections, and progress for people watching.

use super::alerts::AlertSource;
use super::folders::{Calendars, MailboxFolders};
use super::identity::IdentityActions;
use super::m365::{Directory, Exchange};
use super::notify::{Mailer, Notifier, Psa};
use crate::config::Recheck;
use crate::error::StepError;
use crate::model::OrgSettings;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The M365 tenant of one company: Graph and the Exchange admin API.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    pub directory: &'a dyn Directory,
    pub exchange: &'a dyn Exchange,
    /// Folder permissions (Exchange).
    pub folders: &'a dyn MailboxFolders,
    /// Every calendar and its permissions (Graph).
    pub calendars: &'a dyn Calendars,
    /// Entra ID: sessions, sign-in, consents (a contain run's identity actions).
    pub identity: &'a dyn IdentityActions,
    /// How verification gives a just-removed grant that still shows a second look.
    pub recheck: Recheck,
    /// Starts the tenant's per-service limits at levels learnt before (see
    /// [`Connections::seed_limits`]).
    pub seed_limits: &'a (dyn Fn(&BTreeMap<String, usize>) + Send + Sync),
}

/// Where the outcome is reported: the PSA ticket, the notification email, Teams and webhooks.
#[derive(Clone, Copy)]
pub struct Notify<'a> {
    pub psa: &'a dyn Psa,
    pub mailer: &'a dyn Mailer,
    pub notifier: &'a dyn Notifier,
}

/// Progress for people watching (the CLI's progress bars); Lambda ignores it.
pub trait ProgressObserver: Send + Sync {
    fn discovery(&self, _scanned: u64, _total: u64) {}
    fn removal(&self, _done: u64, _total: u64) {}
}

pub struct NoProgress;
impl ProgressObserver for NoProgress {}

/// The external systems of one company.
#[derive(Clone)]
pub struct Connections {
    pub directory: Arc<dyn Directory>,
    pub exchange: Arc<dyn Exchange>,
    pub folders: Arc<dyn MailboxFolders>,
    pub calendars: Arc<dyn Calendars>,
    /// Entra ID: sessions, sign-in, consents (a contain run's identity actions).
    pub identity: Arc<dyn IdentityActions>,
    pub psa: Arc<dyn Psa>,
    pub mailer: Arc<dyn Mailer>,
    /// Teams and webhook posts of a run's outcome.
    pub notifier: Arc<dyn Notifier>,
    /// The tenant's security alerts (the alert poller's).
    pub alerts: Arc<dyn AlertSource>,
    pub recheck: Recheck,
    /// Mailboxes per discovery scan shard, sized to the tenant's pace as learnt so far (ask
    /// after the listing: it teaches the pace).
    pub shard_size: ShardSizer,
    /// Starts this tenant's per-service limits (`exchange`, `graph`) at what a sweep learnt,
    /// where they have learnt nothing yet; a no-op without adaptive limits.
    pub seed_limits: LimitSeeder,
}

/// See [`Connections::seed_limits`].
pub type LimitSeeder = Arc<dyn Fn(&BTreeMap<String, usize>) + Send + Sync>;

/// See [`Connections::shard_size`].
pub type ShardSizer = Arc<dyn Fn() -> usize + Send + Sync>;

impl Connections {
    pub fn tenant(&self) -> Tenant<'_> {
        Tenant {
            directory: self.directory.as_ref(),
            exchange: self.exchange.as_ref(),
            folders: self.folders.as_ref(),
            calendars: self.calendars.as_ref(),
            identity: self.identity.as_ref(),
            recheck: self.recheck,
            seed_limits: self.seed_limits.as_ref(),
        }
    }

    pub fn notify(&self) -> Notify<'_> {
        Notify {
            psa: self.psa.as_ref(),
            mailer: self.mailer.as_ref(),
            notifier: self.notifier.as_ref(),
        }
    }
}

/// Builds (or reuses) the clients for a company's tenant and PSA.
/// How many calls in flight a step can use per Microsoft 365 service (`usize::MAX`: as many
/// as the tenant allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetWant {
    pub exchange: usize,
    pub graph: usize,
}

impl BudgetWant {
    pub const ALL: BudgetWant = BudgetWant {
        exchange: usize::MAX,
        graph: usize::MAX,
    };

    pub fn of(&self, service: &str) -> usize {
        match service {
            "exchange" => self.exchange,
            "graph" => self.graph,
            _ => usize::MAX,
        }
    }
}

#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError>;

    /// A service rejected the credentials: fetch them again before the next connection (a
    /// rotated secret).
    async fn credentials_rejected(&self) {}

    /// Takes this delivery's share (up to `want` calls in flight per service) of the tenant's
    /// budget shared by every invocation (Lambda); nothing to do in one process.
    /// [`StepError::Saturated`] when no permit came free in time.
    async fn hold_budget(
        &self,
        _org: &OrgSettings,
        _delivery: &crate::work::Delivery,
        _want: BudgetWant,
    ) -> Result<(), StepError> {
        Ok(())
    }

    /// Returns the share [`Connector::hold_budget`] took, with what it learnt.
    async fn return_budget(&self, _org: &OrgSettings, _delivery: &crate::work::Delivery) {}
}
