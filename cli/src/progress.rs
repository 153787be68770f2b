//! Progress bars on stderr (hidden when stderr is not a terminal), with what the run is
//! waiting for when a service throttles it.

use indicatif::{ProgressBar, ProgressStyle};
use revoke365::adapters::http::HttpCore;
use revoke365::ports::ProgressObserver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Bars {
    current: Mutex<Option<(&'static str, ProgressBar)>>,
}

impl Bars {
    fn update(&self, phase: &'static str, done: u64, total: u64) {
        let mut current = self.current.lock().expect("progress lock");
        if current.as_ref().map(|(p, _)| *p) != Some(phase) {
            if let Some((_, old)) = current.take() {
                old.finish();
            }
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .expect("progress template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(phase);
            *current = Some((phase, bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Shows, while the run lasts, which service asked it to wait and for how long.
    pub fn show_throttling(self: &Arc<Self>, core: Arc<HttpCore>) {
        let bars = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(bars) = bars.upgrade() {
                let waits = core.throttle_waits();
                let message = waits
                    .iter()
                    .map(|(service, left)| {
                        format!("waiting {}s: {service} is throttling", left.as_secs() + 1)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Some((_, bar)) = bars.current.lock().expect("progress lock").as_ref() {
                    bar.set_message(message);
                }
                drop(bars);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    pub fn finish(&self) {
        if let Some((_, bar)) = self.current.lock().expect("progress lock").take() {
            bar.finish();
        }
    }
}

impl ProgressObserver for Bars {
    fn discovery(&self, scanned: u64, total: u64) {
        self.update("discovering", scanned, total);
    }

    fn removal(&self, done: u64, total: u64) {
        self.update("removing", done, total);
    }
}
