//! Typed errors at the boundaries.

use std::time::Duration;

/// An error talking to an external system (Graph, Exchange, the PSA, the mail service).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// Still throttled (429/503) after the bounded retries.
    #[error("{service} {operation}: throttled (HTTP {status}) after {attempts} attempts")]
    Throttled {
        service: &'static str,
        operation: String,
        status: u16,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// The object does not exist (HTTP 404, or Exchange's "couldn't be found").
    #[error("{service} {operation}: not found: {message}")]
    NotFound {
        service: &'static str,
        operation: String,
        message: String,
    },
    /// The service answered with an error that retrying will not fix.
    #[error("{service} {operation}: HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        service: &'static str,
        operation: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Credentials rejected or token not obtainable.
    #[error("{service}: authentication failed: {message}")]
    Auth {
        service: &'static str,
        message: String,
    },
    /// Connection failures and timeouts, after the bounded retries.
    #[error("{service} {operation}: {message}")]
    Transport {
        service: &'static str,
        operation: String,
        message: String,
    },
    /// The answer did not have the documented shape.
    #[error("{service} {operation}: unexpected response: {message}")]
    Protocol {
        service: &'static str,
        operation: String,
        message: String,
    },
    /// A value was refused before any call was made (e.g. a non-numeric ConnectWise ticket id).
    #[error("{service}: invalid {field}: {message}")]
    InvalidInput {
        service: &'static str,
        field: &'static str,
        message: String,
    },
}

impl RemoteError {
    /// Whether trying again later can succeed (drives SQS redelivery in Lambda).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Throttled { .. } | RemoteError::Transport { .. }
        ) || matches!(self, RemoteError::Api { status, .. } if *status >= 500 && *status != 501)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, RemoteError::NotFound { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run store: {0}")]
    Backend(String),
    #[error("run store I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
#[error("queue: {0}")]
pub struct QueueError(pub String);

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
}

impl StepError {
    pub fn is_transient(&self) -> bool {
        match self {
            StepError::Store(StoreError::RunNotFound(_)) | StepError::Permanent(_) => false,
            StepError::Store(_) | StepError::Queue(_) => true,
            StepError::Remote(e) => e.is_transient(),
        }
    }
}
