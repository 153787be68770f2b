//! Fixtures under `events/`, the simulator's credentials and the client settings that match them.

use revoke365::config::{
    AutotaskSettings, ConnectWiseCredentials, HaloSettings, HttpSettings, PsaAccounts, Recheck,
    RetryPolicy, Secret,
};
use revoke365_sim::SimOptions;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const CLIENT_SECRET: &str = "test-client-secret";
/// Signs the posts to the simulator's webhooks (the harness's connector).
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const CW_PRIVATE_KEY: &str = "test-cw-private";
pub const HALO_CLIENT_SECRET: &str = "test-halo-secret";
pub const AUTOTASK_SECRET: &str = "test-autotask-secret";
pub const AUTOTASK_USERNAME: &str = "api@msp.example";

/// The simulator checks every credential the clients present.
pub fn sim_options() -> SimOptions {
    SimOptions {
        client_secret: Some(CLIENT_SECRET.into()),
        cw_private_key: Some(CW_PRIVATE_KEY.into()),
        halo_client_secret: Some(HALO_CLIENT_SECRET.into()),
        autotask_secret: Some(AUTOTASK_SECRET.into()),
        autotask_username: Some(AUTOTASK_USERNAME.into()),
        ..Default::default()
    }
}

/// Credentials of every PSA, pointed at the simulator at `base`.
pub fn psa_accounts(base: &str) -> PsaAccounts {
    PsaAccounts {
        connectwise: Some(ConnectWiseCredentials {
            company: "msp".into(),
            public_key: "pub".into(),
            private_key: Secret::new(CW_PRIVATE_KEY),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
        }),
        halo: Some(halo_settings(base, HALO_CLIENT_SECRET)),
        autotask: Some(autotask_settings(base, AUTOTASK_SECRET)),
    }
}

pub fn halo_settings(base: &str, secret: &str) -> HaloSettings {
    HaloSettings {
        auth_url: format!("{base}/halo/auth"),
        api_url: format!("{base}/halo/api"),
        client_id: "revoke365-test".into(),
        client_secret: Secret::new(secret),
        tenant: None,
        ids: Default::default(),
    }
}

pub fn autotask_settings(base: &str, secret: &str) -> AutotaskSettings {
    AutotaskSettings {
        zone_url: format!("{base}/atservicesrest"),
        integration_code: Secret::new("TEST-INTEGRATION"),
        username: AUTOTASK_USERNAME.into(),
        secret: Secret::new(secret),
        ids: Default::default(),
    }
}

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

/// What a sweep would have journaled for `mailboxes` of `snapshot`: their Full Access and
/// calendar grants (the per-mailbox reads), each with its trustee — an interrupted sweep's
/// journal, made up from a whole one.
pub fn journaled_reads(
    snapshot: &revoke365::model::Snapshot,
    mailboxes: &[&str],
) -> Vec<(String, revoke365::model::SweptMailbox)> {
    use revoke365::model::PermissionType;
    let trustee = |id: &str| {
        snapshot
            .trustees
            .iter()
            .find(|t| t.trustee_id == id)
            .expect("every grant's trustee is in the snapshot")
            .clone()
    };
    mailboxes
        .iter()
        .map(|m| {
            let grants = snapshot
                .grants
                .iter()
                .filter(|g| {
                    g.mailbox == *m
                        && matches!(
                            g.right,
                            PermissionType::FullAccess | PermissionType::Calendar
                        )
                })
                .map(|g| (trustee(&g.trustee_id), g.clone()))
                .collect();
            let read = revoke365::model::SweptMailbox {
                grants,
                errors: Vec::new(),
            };
            (m.to_string(), read)
        })
        .collect()
}
