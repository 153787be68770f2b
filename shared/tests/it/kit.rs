//! Fixtures and client settings shared by the tests.

use revoke365::config::{HttpSettings, Recheck, RetryPolicy};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const CLIENT_SECRET: &str = "test-client-secret";
pub const CW_PRIVATE_KEY: &str = "test-cw-private";

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(events_dir().join(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Sets `sim.<key>` in a fixture.
pub fn with_sim(mut fixture: Value, knobs: Value) -> Value {
    let sim = fixture
        .as_object_mut()
        .unwrap()
        .entry("sim")
        .or_insert_with(|| json!({}));
    for (k, v) in knobs.as_object().unwrap() {
        sim[k] = v.clone();
    }
    fixture
}

/// Retries fast enough for tests; the bounds stay the production ones in shape. `ceiling`
/// caps each Microsoft 365 service's requests in flight.
pub fn fast_http(ceiling: usize) -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        },
        ..HttpSettings::default()
    }
    .with_ceiling(ceiling)
}

/// A second look at lagging grants that keeps tests quick.
pub fn fast_recheck() -> Recheck {
    Recheck {
        attempts: 2,
        delay: Duration::from_millis(200),
    }
}
