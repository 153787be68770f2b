//! Progress on stderr: which step the run is at, counted in grants (removed, failed, left),
//! verification, and which service throttles the run and for how long. On a terminal it is a
//! live line; otherwise (CI logs, cron mail) a plain line at each change of step and every
//! few seconds.

use indicatif::{ProgressBar, ProgressStyle};
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::model::{Run, RunId, RunStatus};
use revoke365::ports::{ProgressObserver, RunRecords};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the live line is refreshed.
const LIVE_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Progress {
    scanned: AtomicU64,
    to_scan: AtomicU64,
}

/// Stops the progress output when dropped or finished.
pub struct Watch {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Watch {
    pub fn finish(self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress {
    /// Follows `run_id` in the store until [`Watch::finish`].
    pub fn watch(
        self: &Arc<Self>,
        store: Arc<SqliteRunStore>,
        run_id: RunId,
        core: Arc<HttpCore>,
    ) -> Watch {
        let live = std::io::stderr().is_terminal();
        let bar = live.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("template"),
            );
            bar
        });
        let progress = self.clone();
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last: Option<(String, Instant)> = None;
            loop {
                if let Some(line) = progress.line(&store, &run_id, &core).await {
                    match &shown {
                        Some(bar) => bar.set_message(line),
                        None => {
                            // A new line at once when the step changes or throttling starts.
                            let step = format!(
                                "{} {}",
                                line.split(':').next().unwrap_or_default(),
                                line.contains("is throttling")
                            );
                            let due = last
                                .as_ref()
                                .is_none_or(|(s, at)| *s != step || at.elapsed() >= PLAIN_EVERY);
                            if due {
                                eprintln!("[{:>4}s] {line}", started.elapsed().as_secs());
                                last = Some((step, Instant::now()));
                            }
                        }
                    }
                }
                tokio::time::sleep(LIVE_EVERY).await;
            }
        });
        Watch { task, bar }
    }

    /// One line saying where the run is.
    async fn line(
        &self,
        store: &SqliteRunStore,
        run_id: &RunId,
        core: &HttpCore,
    ) -> Option<String> {
        let run = store.get_run(run_id).await.ok()??;
        let counts = store.item_counts(run_id).ok()?;
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        if run.restore.is_some() {
            return Some(restore_line(&run, &n));
        }
        let removed = n("removed") + n("already_gone");
        let (failed, pending) = (n("failed"), n("pending"));
        let total = removed + failed + pending + n("would_remove");
        let mut line = match run.status {
            RunStatus::Accepted => "starting: resolving the user".to_string(),
            RunStatus::Discovering => {
                let (scanned, of) = (
                    self.scanned.load(Ordering::Relaxed),
                    self.to_scan.load(Ordering::Relaxed),
                );
                if of > 0 {
                    format!("discovering: {scanned}/{of} mailboxes read, {total} grants found")
                } else {
                    format!("discovering: listing mailboxes, {total} grants found")
                }
            }
            RunStatus::Removing => format!(
                "removing: {removed}/{total} grants removed, {failed} failed, {pending} to go"
            ),
            RunStatus::Verifying => format!(
                "verifying: re-reading the tenant ({removed}/{total} grants removed, {failed} failed)"
            ),
            other => format!("{}: {removed}/{total} grants removed", other.as_str()),
        };
        for (service, left) in core.throttle_waits() {
            line.push_str(&format!(
                "; waiting {}s: {service} is throttling",
                left.as_secs() + 1
            ));
        }
        Some(line)
    }
}

/// Where a restore run is: reading the run it restores, putting grants back, re-reading.
fn restore_line(run: &Run, n: &dyn Fn(&str) -> u64) -> String {
    let back = n("restored") + n("already_present");
    let (failed, pending) = (n("failed"), n("pending"));
    let total = back + failed + pending;
    match run.status {
        RunStatus::Accepted | RunStatus::Discovering => {
            "starting: reading what the run removed from its audit trail".to_string()
        }
        RunStatus::Removing => {
            format!("restoring: {back}/{total} grants back, {failed} failed, {pending} to go")
        }
        RunStatus::Verifying => format!(
            "verifying: re-reading the tenant ({back}/{total} grants back, {failed} failed)"
        ),
        other => format!("{}: {back}/{total} grants back", other.as_str()),
    }
}

impl ProgressObserver for Progress {
    fn discovery(&self, scanned: u64, total: u64) {
        self.scanned.store(scanned, Ordering::Relaxed);
        self.to_scan.store(total, Ordering::Relaxed);
    }

    fn removal(&self, _done: u64, _total: u64) {}
}
