//! Intake's own guards: a caller's idempotency key is the caller's (company and principal), in
//! both stores; and (feature `aws`) the HTTP intake refuses hostile requests before any AWS
//! call, keeps the webhook secrets it read, and sees a signature once whatever its hex case.

use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::model::OrgSettings;
use revoke365::steps::{intake_as, IntakeError};
use revoke365_testkit::fixture;
use serde_json::{json, Value};

const JOHN: &str = "john.smith@acmecorp.com";

/// Acme, and Globex beside it (on the same tenant, so that one user exists for both).
fn two_companies() -> Vec<OrgSettings> {
    let acme = OrgSettings::from_fixture(&fixture("acme-tenant.json")).unwrap();
    let mut globex = acme.clone();
    globex.company_id = "globex".into();
    globex.company_name = "Globex".into();
    vec![acme, globex]
}

fn request(company: &str, extra: Value) -> Value {
    let mut body = json!({"user_email": JOHN, "company_id": company, "dry_run": true});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// On one machine: Globex's caller giving the key Acme's caller used starts Globex's own run;
/// reusing it for another request is refused naming Globex's run, never Acme's; and Acme's
/// other principal has its own keys too.
#[tokio::test]
async fn on_one_machine_a_key_is_its_companys_and_principals_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRunStore::open(dir.path(), two_companies()).unwrap();
    let queue = MemoryQueue::default();
    let start = |principal: &'static str, body: Value| {
        let (store, queue) = (&store, &queue);
        async move { intake_as(store, queue, Some(principal), &body, Some("K-1")).await }
    };
    let acme = start("os-user:alice", request("acme", json!({})))
        .await
        .unwrap();
    // A key holds while its run is being worked on (SQLite store): hold the runs.
    let _acme_lock = store.lock_run(&acme.run.run_id).unwrap().unwrap();
    let globex = start("os-user:alice", request("globex", json!({})))
        .await
        .unwrap();
    assert!(globex.created, "Globex's own run");
    assert_ne!(globex.run.run_id, acme.run.run_id);
    assert_eq!(globex.run.request.company_id, "globex");
    let _globex_lock = store.lock_run(&globex.run.run_id).unwrap().unwrap();
    let reused = start(
        "os-user:alice",
        request("globex", json!({"remove_from_shared": false})),
    )
    .await;
    let Err(IntakeError::KeyReused { run_id, .. }) = reused else {
        panic!("{reused:?}")
    };
    assert_eq!(run_id, globex.run.run_id.to_string());
    let other = start(
        "os-user:bob",
        request("acme", json!({"remove_from_shared": false})),
    )
    .await
    .unwrap();
    assert!(other.created, "bob's key is bob's");
    assert_ne!(other.run.run_id, acme.run.run_id);
}

#[cfg(feature = "aws")]
mod aws {
    use super::{request, two_companies};
    use crate::aws_kit::{answer, api_request, Env};
    use revoke365::adapters::aws::resources::AwsNames;
    use revoke365::adapters::aws::secrets::SecretsProvider;
    use revoke365::config::{HttpSettings, PsaUrls, ServiceUrls};
    use revoke365::lambda::intake::{handle_intake_event, IntakeDeps};
    use revoke365::lambda::webhook::{self, WebhookSecrets};
    use revoke365::lambda::SecretConnector;
    use revoke365_testkit::{events_dir, fixture};
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP server that counts the requests it gets and answers each 500.
    struct Recorder {
        url: String,
        requests: Arc<AtomicUsize>,
    }

    impl Recorder {
        async fn start() -> Recorder {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(AtomicUsize::new(0));
            let counted = requests.clone();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let _ = socket.read(&mut buf).await;
                        let _ = socket
                            .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    });
                }
            });
            Recorder { url, requests }
        }

        fn count(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// The intake's deps as deployed (`IntakeDeps::new`, and the connector the function
    /// builds), with every AWS client — DynamoDB, SQS, Secrets Manager and any other the deps
    /// make from the config — and every tenant and PSA URL pointed at `recorder`.
    async fn recorded_deps(recorder: &str) -> IntakeDeps {
        use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};
        // Built rather than loaded: the environment's per-service endpoints (the emulators')
        // must not take precedence over the recorder.
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "recorder",
            )))
            .endpoint_url(recorder)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        let mut names = AwsNames::prefixed("rec-");
        // Queue URLs as given are not looked up.
        for queue in [
            &mut names.discovery_queue,
            &mut names.removal_queue,
            &mut names.verification_queue,
        ] {
            *queue = format!("{recorder}/000000000000/{queue}");
        }
        let mut deps = IntakeDeps::new(&config, &names).await.unwrap();
        let secrets = SecretsProvider::new(
            aws_sdk_secretsmanager::Client::new(&config),
            names.secret_id.clone(),
        );
        deps.connector = Some(Arc::new(
            SecretConnector::new(
                HttpSettings::default(),
                ServiceUrls::all_at(recorder),
                secrets,
                Duration::from_secs(10),
            )
            .with_psa_urls(PsaUrls::all_at(recorder)),
        ));
        deps
    }

    fn body_of(v: Value) -> Option<String> {
        Some(v.to_string())
    }

    fn acme(extra: Value) -> Option<String> {
        body_of(request("acme", extra))
    }

    fn without_iam(mut event: Value) -> Value {
        event["requestContext"]["authorizer"] = Value::Null;
        event
    }

    fn with_route_key(mut event: Value, key: &str) -> Value {
        event["routeKey"] = json!(key);
        event["requestContext"]["routeKey"] = json!(key);
        event
    }

    fn signed(timestamp: &str, signature: &str) -> Value {
        let mut event = without_iam(api_request(
            "POST",
            "/hooks/revocations",
            acme(json!({})).as_deref(),
            None,
        ));
        let headers = event["headers"].as_object_mut().unwrap();
        headers.insert(webhook::CALLER_HEADER.into(), json!("sentinel"));
        headers.insert(webhook::TIMESTAMP_HEADER.into(), json!(timestamp));
        headers.insert(webhook::SIGNATURE_HEADER.into(), json!(signature));
        event
    }

    /// The hostile requests of issue 20, each with the status and the field its answer names.
    fn hostile_requests() -> Vec<(&'static str, Value, i64, Option<&'static str>)> {
        let long = "a".repeat(10_000);
        let many: Vec<String> = (0..150_000).map(|i| format!("m{i}@acmecorp.com")).collect();
        let now = chrono::Utc::now().timestamp();
        let good_sig = webhook::sign("s3cret", now, b"{}");
        let get = |path: &str| api_request("GET", path, None, None);
        let post =
            |path: &str, body: Option<String>| api_request("POST", path, body.as_deref(), None);
        vec![
            (
                "150k targets",
                post("/revocations", acme(json!({"target_mailboxes": many}))),
                400,
                Some("target_mailboxes"),
            ),
            (
                "150k targets to restore",
                post(
                    "/revocations/r-1/restore",
                    body_of(json!({"target_mailboxes": many})),
                ),
                400,
                Some("target_mailboxes"),
            ),
            (
                "run id ../x",
                get("/revocations/..%2Fx"),
                400,
                Some("run_id"),
            ),
            (
                "run id of 10k",
                get(&format!("/revocations/{long}")),
                400,
                Some("run_id"),
            ),
            (
                "audit of ../x",
                get("/revocations/..%2Fx/audit"),
                400,
                Some("run_id"),
            ),
            (
                "cancel of 10k",
                post(&format!("/revocations/{long}/cancel"), None),
                400,
                Some("run_id"),
            ),
            (
                "restore of ../x",
                post("/revocations/..%2Fx/restore", None),
                400,
                Some("run_id"),
            ),
            (
                "company ../acme",
                post(
                    "/revocations",
                    body_of(json!({"user_email": super::JOHN, "company_id": "../acme"})),
                ),
                400,
                Some("company_id"),
            ),
            (
                "history of company a b",
                get("/revocations?company_id=a%20b"),
                400,
                Some("company_id"),
            ),
            (
                "history of a 10k company",
                get(&format!("/revocations?company_id={long}")),
                400,
                Some("company_id"),
            ),
            (
                "access of company ../x",
                get(&format!("/access?company_id=..%2Fx&user={}", super::JOHN)),
                400,
                Some("company_id"),
            ),
            (
                "backup of company ../x",
                post(
                    "/backups/restore",
                    body_of(
                        json!({"company_id": "../x", "mailbox": "a@acmecorp.com", "as_of": "2026-11-30"}),
                    ),
                ),
                400,
                Some("company_id"),
            ),
            (
                "access of a 10k user",
                get(&format!("/access?company_id=acme&user={long}")),
                400,
                Some("user"),
            ),
            (
                "history of a 10k user",
                get(&format!("/revocations?company_id=acme&user={long}")),
                400,
                Some("user"),
            ),
            (
                "history of a 10k token",
                get(&format!("/revocations?company_id=acme&next={long}")),
                400,
                Some("next"),
            ),
            (
                "history since 10k",
                get(&format!("/revocations?company_id=acme&since={long}")),
                400,
                Some("since"),
            ),
            (
                "history of a 10k status",
                get(&format!("/revocations?company_id=acme&status={long}")),
                400,
                Some("status"),
            ),
            (
                "a 10k parameter",
                get(&format!("/revocations?company_id=acme&{long}=1")),
                400,
                None,
            ),
            (
                "page of 10k",
                get(&format!("/revocations/r-1?page={long}")),
                400,
                Some("page"),
            ),
            (
                "10k ticket",
                post("/revocations", acme(json!({"ticket_id": long}))),
                400,
                Some("ticket_id"),
            ),
            (
                "ticket with a newline",
                post("/revocations", acme(json!({"ticket_id": "482\n13"}))),
                400,
                Some("ticket_id"),
            ),
            (
                "backup with a 10k ticket",
                post(
                    "/backups/restore",
                    body_of(
                        json!({"company_id": "acme", "mailbox": "a@acmecorp.com", "as_of": "2026-11-30", "ticket_id": long}),
                    ),
                ),
                400,
                Some("ticket_id"),
            ),
            (
                "10k user_email",
                post(
                    "/revocations",
                    body_of(
                        json!({"user_email": format!("{long}@acmecorp.com"), "company_id": "acme"}),
                    ),
                ),
                400,
                Some("user_email"),
            ),
            (
                "10k incident",
                post("/revocations", acme(json!({"incident_id": long}))),
                400,
                Some("incident_id"),
            ),
            (
                "10k idempotency key",
                api_request(
                    "POST",
                    "/revocations",
                    acme(json!({})).as_deref(),
                    Some(&long),
                ),
                400,
                Some("Idempotency-Key"),
            ),
            (
                "digest from the API",
                post("/revocations", acme(json!({"digest": true}))),
                400,
                Some("digest"),
            ),
            (
                "malformed JSON",
                post("/revocations", Some("{\"user_email\":".into())),
                400,
                Some("body"),
            ),
            (
                "an array",
                post("/revocations", Some("[1]".into())),
                400,
                Some("body"),
            ),
            (
                "not base64",
                {
                    let mut e = post("/revocations", Some("%%%".into()));
                    e["isBase64Encoded"] = json!(true);
                    e
                },
                400,
                Some("body"),
            ),
            (
                "restore body not JSON",
                post("/revocations/r-1/restore", Some("restore please".into())),
                400,
                Some("body"),
            ),
            (
                "no IAM identity on POST",
                without_iam(post("/revocations", acme(json!({})))),
                403,
                None,
            ),
            (
                "no IAM identity on GET",
                without_iam(get("/revocations/r-1")),
                403,
                None,
            ),
            (
                "no IAM identity on access",
                without_iam(get(&format!(
                    "/access?company_id=acme&user={}",
                    super::JOHN
                ))),
                403,
                None,
            ),
            (
                "no IAM identity on restore",
                without_iam(post("/revocations/r-1/restore", None)),
                403,
                None,
            ),
            (
                "unknown route key",
                with_route_key(get("/revocations/r-1"), "DELETE /revocations/{run_id}"),
                404,
                None,
            ),
            (
                "default route key",
                with_route_key(post("/revocations", acme(json!({}))), "$default"),
                404,
                None,
            ),
            (
                "signed, stale",
                signed(&(now - 3600).to_string(), &good_sig),
                401,
                Some(webhook::TIMESTAMP_HEADER),
            ),
            (
                "signed, not a timestamp",
                signed(&long, &good_sig),
                401,
                Some(webhook::TIMESTAMP_HEADER),
            ),
            (
                "signed, malformed signature",
                signed(&now.to_string(), "sha256=abc"),
                401,
                Some(webhook::SIGNATURE_HEADER),
            ),
            (
                "signed, 10k signature",
                signed(&now.to_string(), &long),
                401,
                Some(webhook::SIGNATURE_HEADER),
            ),
        ]
    }

    /// Every hostile request answers its 4xx naming the field, and not one request reaches
    /// DynamoDB, SQS, Secrets Manager, a tenant or a PSA (all at a recorder answering 500).
    #[tokio::test(flavor = "multi_thread")]
    async fn hostile_requests_are_refused_before_any_aws_call() {
        let recorder = Recorder::start().await;
        let deps = recorded_deps(&recorder.url).await;
        assert_eq!(recorder.count(), 0, "building the deps calls nothing");
        for (what, event, status, field) in hostile_requests() {
            let started = Instant::now();
            let (answered, body) = answer(&deps, event).await;
            println!("{what}: {answered} in {:?}", started.elapsed());
            assert_eq!(answered, status, "{what}: {body}");
            if let Some(field) = field {
                assert_eq!(body["error"]["field"], field, "{what}: {body}");
            }
            let text = body.to_string();
            assert!(text.len() < 2_000, "{what}: a flood given back: {text}");
            assert_eq!(recorder.count(), 0, "{what} reached AWS");
        }
        // The queue's records too: a request the API refuses is refused there, with no call.
        let mut queued: Value = serde_json::from_str(
            &std::fs::read_to_string(events_dir().join("sqs-offboarding.json")).unwrap(),
        )
        .unwrap();
        queued["Records"][0]["body"] = json!(request("acme", json!({"digest": true})).to_string());
        let failed = handle_intake_event(&deps, queued).await.unwrap();
        assert_eq!(failed["batchItemFailures"].as_array().unwrap().len(), 1);
        assert_eq!(recorder.count(), 0, "the queued digest reached AWS");
        // The recorder does count: a good request reaches the store.
        let (status, _) = answer(
            &deps,
            api_request("POST", "/revocations", acme(json!({})).as_deref(), None),
        )
        .await;
        assert_eq!(status, 503);
        assert!(recorder.count() > 0);
    }

    /// Acme's caller and Globex's use the same `Idempotency-Key`: each gets its own run, and a
    /// reuse is refused naming the caller's own run, never the other company's.
    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_a_key_is_its_companys_and_principals_own() {
        let env = Env::start(fixture("acme-tenant.json"), 10).await;
        for org in two_companies() {
            env.intake.store.put_org_settings(&org).await.unwrap();
        }
        let post = |company: &str, extra: Value, principal: Option<&str>| {
            let mut event = api_request(
                "POST",
                "/revocations",
                Some(&request(company, extra).to_string()),
                Some("K-1"),
            );
            if let Some(p) = principal {
                event["requestContext"]["authorizer"]["iam"]["userArn"] = json!(p);
            }
            answer(&env.intake, event)
        };
        let (status, acme) = post("acme", json!({}), None).await;
        assert_eq!(status, 202, "{acme}");
        let (status, globex) = post("globex", json!({}), None).await;
        assert_eq!(status, 202, "{globex}");
        assert_ne!(globex["run_id"], acme["run_id"], "Globex's own run");
        let (status, reused) = post("globex", json!({"remove_from_shared": false}), None).await;
        assert_eq!(status, 409, "{reused}");
        let text = reused.to_string();
        assert!(text.contains(globex["run_id"].as_str().unwrap()), "{text}");
        assert!(!text.contains(acme["run_id"].as_str().unwrap()), "{text}");
        let other = "arn:aws:sts::123456789012:assumed-role/revoke365-api-caller/other";
        let (status, own) = post("acme", json!({"remove_from_shared": false}), Some(other)).await;
        assert_eq!(status, 202, "{own}");
        assert_ne!(
            own["run_id"], acme["run_id"],
            "another principal's key is its own"
        );
    }

    /// The signature's hex in upper case is the same signature: refused as a replay. The
    /// secrets read for the first request are kept: a rotation reaches a request only once
    /// they are older than the refresh floor (30 seconds as deployed) and a signature does not
    /// match them.
    #[tokio::test(flavor = "multi_thread")]
    async fn on_aws_a_signature_in_upper_case_is_a_replay_and_the_secrets_are_kept() {
        let mut env = Env::start(fixture("acme-tenant.json"), 10).await;
        let sm = env.sm.clone();
        let secret_id = env.names.webhook_secret_id.clone();
        let put_secret = |secret: &str| {
            sm.put_secret_value()
                .secret_id(&secret_id)
                .secret_string(json!({"sentinel": secret}).to_string())
                .send()
        };
        put_secret("s3cret").await.unwrap();
        // Each signed request its own body (the reason tells them apart).
        let signed_event = |reason: &str, secret: &str| {
            let now = chrono::Utc::now().timestamp();
            let body = request("acme", json!({"reason": reason})).to_string();
            let mut event =
                without_iam(api_request("POST", "/hooks/revocations", Some(&body), None));
            let headers = event["headers"].as_object_mut().unwrap();
            headers.insert(webhook::CALLER_HEADER.into(), json!("sentinel"));
            headers.insert(webhook::TIMESTAMP_HEADER.into(), json!(now.to_string()));
            let sig = webhook::sign(secret, now, body.as_bytes());
            headers.insert(webhook::SIGNATURE_HEADER.into(), json!(sig));
            event
        };
        let sent = signed_event("first", "s3cret");
        let (status, first) = answer(&env.intake, sent.clone()).await;
        assert_eq!(status, 202, "{first}");
        let mut upper = sent;
        let sig = upper["headers"][webhook::SIGNATURE_HEADER]
            .as_str()
            .unwrap()
            .to_ascii_uppercase();
        upper["headers"][webhook::SIGNATURE_HEADER] = json!(sig);
        let (status, replay) = answer(&env.intake, upper).await;
        assert_eq!(status, 409, "{replay}");
        assert!(
            replay["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already received"),
            "{replay}"
        );
        assert_eq!(env.run_count().await, 1);

        put_secret("rotated").await.unwrap();
        let (status, kept) = answer(&env.intake, signed_event("kept", "s3cret")).await;
        assert_eq!(status, 202, "signed with the kept secret: {kept}");
        let (status, _) = answer(&env.intake, signed_event("too soon", "rotated")).await;
        assert_eq!(status, 401, "the kept secrets are younger than the floor");

        // With no floor, a mismatch reads the secrets again: a rotated secret signs at once,
        // and the one it replaced no longer does.
        env.intake.webhook = WebhookSecrets::with_ttl(
            env.sm.clone(),
            env.names.webhook_secret_id.clone(),
            webhook::SECRETS_TTL,
            Duration::ZERO,
        );
        let (status, read) = answer(&env.intake, signed_event("read", "rotated")).await;
        assert_eq!(status, 202, "{read}");
        put_secret("rotated-again").await.unwrap();
        let (status, taken) = answer(&env.intake, signed_event("taken", "rotated-again")).await;
        assert_eq!(status, 202, "a mismatch read the rotated secret: {taken}");
        let (status, _) = answer(&env.intake, signed_event("replaced", "rotated")).await;
        assert_eq!(status, 401, "the replaced secret no longer signs");
    }
}

/// The intake function answers exactly the routes the template gives it (route key `METHOD
/// /path`): a route added on one side only is a 404 or a dead route.
#[cfg(feature = "aws")]
#[test]
fn the_intake_routes_are_the_templates() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut template: Vec<String> = lines
        .windows(2)
        .filter_map(|pair| {
            let path = pair[0].strip_prefix("Path: /")?;
            let method = pair[1].strip_prefix("Method: ")?;
            Some(format!("{method} /{path}"))
        })
        .collect();
    let mut answered: Vec<String> = revoke365::lambda::intake::route_keys()
        .map(str::to_string)
        .collect();
    template.sort();
    answered.sort();
    assert_eq!(answered, template);
}
