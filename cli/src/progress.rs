//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use revoke365::steps::ProgressObserver;
use std::sync::Mutex;

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
                ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed}")
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
