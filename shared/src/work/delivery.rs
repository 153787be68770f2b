//! What one delivery of a message brings and when its work must stop: the deadline, the
//! holder id, and the stop flags the HTTP clients ask before they send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When the current invocation must have stopped (Lambda's deadline), if there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<(Instant, Duration)>);

impl Deadline {
    /// No deadline (the CLI): work is never cut short.
    pub const NONE: Deadline = Deadline(None);

    /// Stop by `at`, keeping a safety margin of a third of the time left (0.5 s to 30 s) for
    /// the calls in flight and for saving progress (a function's 150 s keep 30 s; a short
    /// deadline keeps more than a fifth, as saving does not get faster with it).
    pub fn at(at: Instant) -> Deadline {
        let left = at.saturating_duration_since(Instant::now());
        let margin = (left / 3).clamp(Duration::from_millis(500), Duration::from_secs(30));
        Deadline(Some((at, margin)))
    }

    /// Time to stop taking new work.
    pub fn near(&self) -> bool {
        self.0
            .is_some_and(|(at, margin)| Instant::now() + margin >= at)
    }

    /// When to stop taking new work (the deadline less its margin); `None` without one.
    pub fn stop_at(&self) -> Option<Instant> {
        self.0
            .map(|(at, margin)| at.checked_sub(margin).unwrap_or(at))
    }

    /// Runs `work` so that none of its calls to a service is sent once it is time to stop: a
    /// call whose turn comes later (every call queues for the tenant's budget) fails with
    /// [`crate::error::ErrorKind::Stopped`] instead, while calls already sent finish.
    pub async fn bound<F: std::future::Future>(&self, work: F) -> F::Output {
        match self.stop_at() {
            Some(stop) => STOP_AT.scope(stop, work).await,
            None => work.await,
        }
    }

    /// The time left before the margin; `None` without a deadline.
    pub fn left(&self) -> Option<Duration> {
        self.0
            .map(|(at, margin)| at.saturating_duration_since(Instant::now() + margin))
    }
}

tokio::task_local! {
    /// When calls made inside [`Deadline::bound`] stop being sent.
    static STOP_AT: Instant;
}

tokio::task_local! {
    /// Set when the process is asked to stop (Ctrl-C): see [`stoppable`].
    static STOP_FLAG: Arc<AtomicBool>;
}

/// Runs `work` so that once `flag` is set none of its calls to a service is sent (they fail
/// with [`crate::error::ErrorKind::Stopped`]) and no removal batch starts another grant;
/// calls already sent finish. The CLI sets the flag on Ctrl-C.
pub async fn stoppable<F: std::future::Future>(flag: Arc<AtomicBool>, work: F) -> F::Output {
    STOP_FLAG.scope(flag, work).await
}

/// Whether the calling task was asked to stop (see [`stoppable`]).
pub fn stop_requested() -> bool {
    STOP_FLAG
        .try_with(|f| f.load(Ordering::SeqCst))
        .unwrap_or(false)
}

/// When the calling task's calls stop being sent (see [`Deadline::bound`]), if it has a time.
pub fn stop_at() -> Option<Instant> {
    STOP_AT.try_with(|stop| *stop).ok()
}

/// Whether the calling task's time to stop has come (see [`Deadline::bound`] and
/// [`stoppable`]): the HTTP clients ask before they send.
pub fn past_stop() -> bool {
    stop_requested()
        || STOP_AT
            .try_with(|stop| Instant::now() >= *stop)
            .unwrap_or(false)
}

/// What one delivery of a message brings: who it is (the lease holder) and when it must stop.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub holder: String,
    pub deadline: Deadline,
}

impl Delivery {
    /// A delivery with no deadline and a fresh holder id (the CLI).
    pub fn local() -> Delivery {
        Delivery {
            holder: uuid::Uuid::new_v4().to_string(),
            deadline: Deadline::NONE,
        }
    }
}
