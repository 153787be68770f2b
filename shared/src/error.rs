//! Typed errors at the boundaries.

use std::time::Duration;

/// An error talking to an external system (Graph, Exchange, the PSA, the mail service): which
/// service, what was being done with what id, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation}: {kind}")]
pub struct RemoteError {
    pub service: &'static str,
    /// What was being done and with what id, e.g. `Get-MailboxPermission Identity=ceo@acme.com`.
    pub operation: String,
    pub kind: ErrorKind,
}

/// The `code` of an [`ErrorKind::Api`] error saying the entry a call names is not on its
/// object (see [`RemoteError::is_entry_not_found`]).
pub const ENTRY_NOT_FOUND: &str = "entry_not_found";
/// The `code` of an [`ErrorKind::Api`] error saying the entry a call adds is there already.
pub const ENTRY_EXISTS: &str = "entry_exists";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Still throttled (429, "too many concurrent requests") after the bounded retries.
    #[error("throttled (HTTP {status}) after {attempts} attempts")]
    Throttled {
        status: u16,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// The object does not exist (HTTP 404, or Exchange's ManagementObjectNotFoundException).
    #[error("not found: {message}")]
    NotFound { message: String },
    /// A write asked again after an answer was lost is told its object is not there: the
    /// lost attempt may have been the one that took it away (a trustee nothing resolves to
    /// any more, once its entry is gone).
    #[error("not found when asked again: {message}")]
    GoneOnReplay { message: String },
    /// The service answered with an error. `transient` says whether trying again later can
    /// succeed; for Exchange it comes from the exception type, not from the HTTP status.
    #[error("HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
        transient: bool,
    },
    /// Credentials rejected or token not obtainable.
    #[error("authentication failed: {message}")]
    Auth { message: String },
    /// Timeouts and connections broken after the request was sent, after the bounded retries.
    #[error("{message}")]
    Transport { message: String },
    /// The request never left: the host name does not resolve, or nothing accepts the
    /// connection. Retried only briefly (it is not throttling: waiting does not help soon).
    #[error("unreachable: {message}")]
    Unreachable { message: String },
    /// The answer did not have the documented shape, or broke a safety limit (redirect, size).
    #[error("unexpected response: {message}")]
    Protocol { message: String },
    /// A value was refused before any call was made (e.g. a non-numeric ConnectWise ticket id).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// Not sent: the step's time was up when the call's turn came (see
    /// [`crate::steps::Deadline::bound`]); the step continues it in a new message.
    #[error("not started: the step's time is up")]
    Stopped,
}

impl RemoteError {
    pub fn new(service: &'static str, operation: impl Into<String>, kind: ErrorKind) -> Self {
        RemoteError {
            service,
            operation: operation.into(),
            kind,
        }
    }

    /// Whether trying again later can succeed (drives SQS redelivery in Lambda).
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Throttled { .. }
            | ErrorKind::Transport { .. }
            | ErrorKind::Unreachable { .. }
            | ErrorKind::Stopped => true,
            ErrorKind::Api { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Not sent because the step's time was up.
    pub fn is_stopped(&self) -> bool {
        matches!(self.kind, ErrorKind::Stopped)
    }

    /// Throttling, an unreachable service, or the step's time up: the whole step should wait
    /// and try again, rather than one object being reported as failed.
    pub fn is_service_unavailable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled { .. }
                | ErrorKind::Transport { .. }
                | ErrorKind::Unreachable { .. }
                | ErrorKind::Stopped
        )
    }

    /// The host could not be reached at all (DNS, refused connection).
    pub fn is_unreachable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unreachable { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NotFound { .. } | ErrorKind::GoneOnReplay { .. }
        )
    }

    /// The entry a call names is not on its object, which is there (a folder permission
    /// entry of a user on a folder that exists).
    /// The app may not make this call at all (HTTP 403: a missing role or permission), whatever
    /// it names: asking again, or about another object, does not help.
    pub fn is_forbidden(&self) -> bool {
        matches!(self.kind, ErrorKind::Api { status: 403, .. })
    }

    pub fn is_entry_not_found(&self) -> bool {
        matches!(&self.kind, ErrorKind::Api { code: Some(c), .. } if c == ENTRY_NOT_FOUND)
    }

    /// The entry a call adds is on its object already.
    pub fn is_entry_exists(&self) -> bool {
        matches!(&self.kind, ErrorKind::Api { code: Some(c), .. } if c == ENTRY_EXISTS)
    }

    /// `self`, for a write that was asked again after an answer was lost: a "not found" then
    /// may be that earlier attempt's doing.
    pub fn after_replay(self) -> RemoteError {
        let gone = self.is_entry_not_found();
        match self.kind {
            ErrorKind::NotFound { message } => RemoteError {
                kind: ErrorKind::GoneOnReplay { message },
                ..self
            },
            ErrorKind::Api { message, .. } if gone => RemoteError {
                kind: ErrorKind::GoneOnReplay { message },
                ..self
            },
            _ => self,
        }
    }

    /// The credentials were rejected.
    pub fn is_auth(&self) -> bool {
        matches!(self.kind, ErrorKind::Auth { .. })
    }

    /// What the service said, for people: reports, ticket notes and emails show this, never
    /// the exception type or the HTTP plumbing.
    pub fn reason(&self) -> String {
        match &self.kind {
            ErrorKind::NotFound { message }
            | ErrorKind::GoneOnReplay { message }
            | ErrorKind::Api { message, .. } => message.clone(),
            ErrorKind::Throttled { .. } => {
                format!("{} kept throttling: {}", self.service, self.kind)
            }
            other => format!("{}: {other}", self.service),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run store: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("run store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A history query this store cannot answer as asked (a page token it did not give out,
    /// a filter it needs and lacks): the caller's mistake, named by the field.
    #[error("{field} {reason}")]
    BadQuery { field: &'static str, reason: String },
    /// An audit record's place in its chain (`chain`, `seq`) holds another record already: a
    /// twin delivery of the same batch wrote there first. The writer reads the chain's head
    /// again and links the record after it.
    #[error("audit chain {chain}: place {seq} is taken")]
    ChainPlaceTaken { chain: String, seq: u64 },
}

impl StoreError {
    pub fn backend(message: impl Into<String>) -> StoreError {
        StoreError::Backend {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("queue: {message}")]
pub struct QueueError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl QueueError {
    pub fn new(message: impl Into<String>) -> QueueError {
        QueueError {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> QueueError {
        QueueError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Why a step could not finish handling a message.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A tenant call that may succeed on retry (the message should be redelivered).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The message cannot be handled, ever (unknown run, malformed message).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Another live delivery holds the run's step: this message must come back later (a
    /// batch-item failure), never be acknowledged and dropped.
    #[error("run is held by {holder} until {until}; try again later")]
    Busy {
        holder: String,
        until: chrono::DateTime<chrono::Utc>,
    },
    /// Every permit of the tenant's budget for a service is leased to live invocations: the
    /// message is queued again to start later (a new message, so waiting never counts toward
    /// the dead-letter queue).
    #[error(
        "the {service} budget of tenant {tenant} is in use by other invocations; queued again"
    )]
    Saturated { tenant: String, service: String },
}

impl StepError {
    /// A service rejected the credentials (worth reading the secret again).
    pub fn is_auth(&self) -> bool {
        matches!(self, StepError::Remote(e) if e.is_auth())
    }

    pub fn is_transient(&self) -> bool {
        match self {
            StepError::Store(StoreError::RunNotFound(_)) | StepError::Permanent(_) => false,
            StepError::Store(_)
            | StepError::Queue(_)
            | StepError::Busy { .. }
            | StepError::Saturated { .. } => true,
            StepError::Remote(e) => e.is_transient(),
        }
    }
}
