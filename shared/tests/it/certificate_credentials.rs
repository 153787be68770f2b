//! Certificate credentials end to end: the real token client (reqwest) signs client
//! assertions that the simulator verifies as Entra does; a whole run with a certificate and
//! no secret; the refusals (a key that is not the certificate's, a certificate the app does
//! not hold, an expired or replayed assertion, a secret at a certificate-only tenant) as
//! errors with the AADSTS code and no key material.

use async_trait::async_trait;
use revoke365::adapters::connect::{HttpConnector, DEFAULT_SHARD_TIME};
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::m365::assertion::{self, Claims, ASSERTION_TYPE};
use revoke365::adapters::m365::certificate::{
    self_signed, AssertionSigner, CertError, Certificate, NewCertificate, PemSigner,
};
use revoke365::adapters::m365::token::GRAPH_SCOPE;
use revoke365::adapters::memory_queue::MemoryQueue;
use revoke365::adapters::sqlite_store::SqliteRunStore;
use revoke365::config::{AppCredentials, ClientCredential, Secret, ServiceUrls};
use revoke365::engine::LocalEngine;
use revoke365::error::{ErrorKind, RemoteError};
use revoke365::model::{OrgSettings, RunStatus};
use revoke365::steps::NoProgress;
use revoke365_sim::{Fixture, SimHandle, SimOptions};
use revoke365_testkit::harness::Harness;
use revoke365_testkit::{fast_http, fixture, sim_options};
use serde_json::{json, Value};
use std::sync::Arc;

const CLIENT_ID: &str = "revoke365-app";
const JOHN: &str = "john.smith@acmecorp.com";

fn new_pair() -> (NewCertificate, Arc<dyn AssertionSigner>) {
    let made = self_signed("revoke365-test", 30).expect("certificate");
    let signer = PemSigner::from_pem(&made.key_and_certificate_pem, "test.pem").expect("pem");
    (made, Arc::new(signer))
}

/// The acme tenant with `registered` on the app; client secrets refused.
async fn certificate_only_sim(registered: &[&Certificate]) -> (SimHandle, Value) {
    let tenant = fixture("acme-tenant.json");
    let options = SimOptions {
        certificates: registered.iter().map(|c| c.der().to_vec()).collect(),
        refuse_client_secrets: true,
        ..sim_options()
    };
    let sim = revoke365_sim::start(Fixture::from_json(&tenant.to_string()).unwrap(), options)
        .await
        .expect("simulator starts");
    (sim, tenant)
}

fn credentials(tenant: &Value, credential: ClientCredential) -> AppCredentials {
    AppCredentials {
        tenant_id: tenant["tenant_id"].as_str().unwrap().to_string(),
        client_id: CLIENT_ID.into(),
        credential,
    }
}

async fn graph_token(sim: &SimHandle, creds: &AppCredentials) -> Result<Secret, RemoteError> {
    let core = HttpCore::new(fast_http(4)).unwrap();
    core.token(&sim.base_url, creds, GRAPH_SCOPE).await
}

/// What an error shows anywhere (Display and Debug): never key material.
fn assert_no_key_material(err: &RemoteError, made: &NewCertificate) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let key_body: String = made
        .key_and_certificate_pem
        .lines()
        .skip(1)
        .take(3)
        .collect();
    assert!(!shown.contains(&key_body[..40]), "key material in: {shown}");
    assert!(!shown.contains("eyJ"), "an assertion (JWT) in: {shown}");
}

fn auth_message(err: &RemoteError) -> &str {
    match &err.kind {
        ErrorKind::Auth { message } => message,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_run_with_only_a_certificate_removes_exactly_what_a_secret_run_removes() {
    // With a client secret, as before.
    let by_secret = Harness::start(fixture("acme-tenant.json"), fast_http(10)).await;
    let request = json!({"user_email": JOHN, "company_id": "acme",
        "requested_by": "hr.manager@acmecorp.com", "reason": "Leaver"});
    let secret_run = by_secret.run(request.clone()).await;
    assert_eq!(
        secret_run.status,
        RunStatus::Completed,
        "{:?}",
        secret_run.failure
    );

    // With a certificate only, at a tenant that refuses every secret.
    let (made, signer) = new_pair();
    let (sim, tenant) = certificate_only_sim(&[&made.certificate]).await;
    let org = OrgSettings::from_fixture(&tenant).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteRunStore::open(dir.path(), vec![org]).unwrap());
    let engine = LocalEngine {
        store,
        queue: Arc::new(MemoryQueue::default()),
        connector: Arc::new(HttpConnector {
            core: HttpCore::new(fast_http(10)).unwrap(),
            urls: ServiceUrls::all_at(&sim.base_url),
            m365_client_id: CLIENT_ID.into(),
            m365_credential: ClientCredential::Certificates(vec![signer]),
            psa: revoke365_testkit::tenant::psa_accounts(&sim.base_url),
            recheck: revoke365_testkit::tenant::fast_recheck(),
            shard_time: DEFAULT_SHARD_TIME,
            webhook_secret: None,
        }),
        progress: Arc::new(NoProgress),
        stop: Default::default(),
    };
    let cert_run = engine.run(&request, None).await.expect("request accepted");
    assert_eq!(
        cert_run.status,
        RunStatus::Completed,
        "{:?}",
        cert_run.failure
    );

    let removed = |run: &revoke365::model::Run| {
        let mut v = serde_json::to_value(run.result.as_ref().unwrap()).unwrap();
        let p = v["permissions_removed"].take();
        p.to_string()
    };
    assert_eq!(removed(&cert_run), removed(&secret_run));
    assert!(sim.snapshot().direct_grants_of(JOHN).is_empty());
    assert_eq!(
        sim.snapshot().direct_grants_of("jane.doe@acmecorp.com"),
        by_secret
            .snapshot()
            .direct_grants_of("jane.doe@acmecorp.com"),
        "nobody else's grants touched"
    );
}

/// A signer presenting the registered certificate but signing with another key.
struct WrongKey {
    shown: Certificate,
    key: Arc<dyn AssertionSigner>,
}

#[async_trait]
impl AssertionSigner for WrongKey {
    fn certificate(&self) -> &Certificate {
        &self.shown
    }
    fn describe(&self) -> String {
        "wrong-key.pem".into()
    }
    async fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, CertError> {
        self.key.sign_rs256(message).await
    }
}

#[tokio::test]
async fn a_wrong_key_with_the_right_certificate_is_refused_with_aadsts700027() {
    let (registered, _) = new_pair();
    let (other, other_signer) = new_pair();
    let (sim, tenant) = certificate_only_sim(&[&registered.certificate]).await;
    let wrong = WrongKey {
        shown: registered.certificate.clone(),
        key: other_signer,
    };
    let creds = credentials(
        &tenant,
        ClientCredential::Certificates(vec![Arc::new(wrong)]),
    );
    let err = graph_token(&sim, &creds).await.expect_err("refused");
    let message = auth_message(&err);
    assert!(message.contains("AADSTS700027"), "{message}");
    assert!(message.contains("signature validation"), "{message}");
    assert!(
        message.contains("wrong-key.pem"),
        "names the certificate: {message}"
    );
    assert_no_key_material(&err, &other);
    assert_eq!(sim.snapshot().requests("token"), 3, "bounded: three rounds");
}

#[tokio::test]
async fn a_certificate_the_app_does_not_hold_is_tried_a_bounded_number_of_times() {
    let (registered, _) = new_pair();
    let (unknown, unknown_signer) = new_pair();
    let (sim, tenant) = certificate_only_sim(&[&registered.certificate]).await;
    let creds = credentials(
        &tenant,
        ClientCredential::Certificates(vec![unknown_signer]),
    );
    let err = graph_token(&sim, &creds).await.expect_err("refused");
    let message = auth_message(&err);
    assert!(message.contains("AADSTS700027"), "{message}");
    assert!(message.contains("not registered"), "{message}");
    assert!(
        message.contains(&unknown.certificate.sha256_thumbprint()),
        "names the certificate by thumbprint: {message}"
    );
    assert_no_key_material(&err, &unknown);
    // Three rounds of the one certificate, then the refusal stands.
    assert_eq!(sim.snapshot().requests("token"), 3);
}

#[tokio::test]
async fn after_a_rotation_the_next_certificate_gets_the_token() {
    let (old, old_signer) = new_pair();
    let (new, new_signer) = new_pair();
    // The app now holds only the new certificate; the config still lists the old one first.
    let (sim, tenant) = certificate_only_sim(&[&new.certificate]).await;
    let creds = credentials(
        &tenant,
        ClientCredential::Certificates(vec![old_signer, new_signer]),
    );
    let token = graph_token(&sim, &creds)
        .await
        .expect("token from the next certificate");
    assert!(!token.expose().is_empty());
    assert_eq!(sim.snapshot().requests("token"), 2);

    // The old one registered again and the new one removed: the first one serves.
    sim.register_certificate(old.certificate.der()).unwrap();
    assert!(sim.remove_certificate(&new.certificate.sha256_thumbprint()));
    let creds2 = credentials(&tenant, creds.credential.clone());
    graph_token(&sim, &creds2)
        .await
        .expect("token from the first certificate");
    assert_eq!(sim.snapshot().requests("token"), 3);

    // Neither registered any more: both refusals are told, each naming its certificate.
    assert!(sim.remove_certificate(&old.certificate.sha256_thumbprint()));
    let creds3 = credentials(&tenant, creds.credential.clone());
    let err = graph_token(&sim, &creds3).await.expect_err("refused");
    let message = auth_message(&err);
    assert!(
        message.contains(&old.certificate.sha256_thumbprint())
            && message.contains(&new.certificate.sha256_thumbprint())
            && message.matches("AADSTS700027").count() == 2,
        "{message}"
    );
    // Three rounds of both.
    assert_eq!(sim.snapshot().requests("token"), 3 + 6);
}

#[tokio::test]
async fn a_secret_at_a_certificate_only_tenant_is_refused() {
    let (registered, _) = new_pair();
    let (sim, tenant) = certificate_only_sim(&[&registered.certificate]).await;
    let creds = credentials(
        &tenant,
        ClientCredential::Secret(Secret::new(revoke365_testkit::CLIENT_SECRET)),
    );
    let err = graph_token(&sim, &creds).await.expect_err("refused");
    let message = auth_message(&err);
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(!format!("{err} {err:?}").contains(revoke365_testkit::CLIENT_SECRET));
}

/// A raw token request with `assertion`, as Entra's wire shows it.
async fn post_assertion(sim: &SimHandle, url: &str, assertion: &Secret) -> (u16, Value) {
    let reply = reqwest::Client::new()
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.expose()),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    let _ = sim;
    (reply.status().as_u16(), reply.json().await.unwrap())
}

fn assert_aadsts(answer: &(u16, Value), code: u64) {
    let (status, body) = answer;
    assert_eq!(*status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
}

#[tokio::test]
async fn expired_replayed_and_misaddressed_assertions_get_entras_codes() {
    let (made, signer) = new_pair();
    let (sim, tenant) = certificate_only_sim(&[&made.certificate]).await;
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.base_url,
        tenant["tenant_id"].as_str().unwrap()
    );
    let now = chrono::Utc::now().timestamp();

    // Good: a token; the same assertion again: refused (jti seen).
    let good = assertion::sign(signer.as_ref(), &Claims::new(&url, CLIENT_ID, now))
        .await
        .unwrap();
    let (status, body) = post_assertion(&sim, &url, &good).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some());
    let replayed = post_assertion(&sim, &url, &good).await;
    assert_aadsts(&replayed, 50027);
    assert!(replayed.1["error_description"]
        .as_str()
        .unwrap()
        .contains("jti"));

    // Expired an hour ago (well past the five minutes of clock skew).
    let mut expired = Claims::new(&url, CLIENT_ID, now - 4000);
    expired.exp = now - 3600;
    let expired = assertion::sign(signer.as_ref(), &expired).await.unwrap();
    assert_aadsts(&post_assertion(&sim, &url, &expired).await, 700024);

    // Not yet valid.
    let future = assertion::sign(signer.as_ref(), &Claims::new(&url, CLIENT_ID, now + 3600))
        .await
        .unwrap();
    assert_aadsts(&post_assertion(&sim, &url, &future).await, 700024);

    // Another audience (the v1 endpoint of another tenant).
    let elsewhere = Claims::new(
        "https://login.microsoftonline.com/other/oauth2/token",
        CLIENT_ID,
        now,
    );
    let elsewhere = assertion::sign(signer.as_ref(), &elsewhere).await.unwrap();
    assert_aadsts(&post_assertion(&sim, &url, &elsewhere).await, 700023);

    // Issued by another app.
    let mut stranger = Claims::new(&url, CLIENT_ID, now);
    stranger.iss = "another-app".into();
    stranger.sub = "another-app".into();
    let stranger = assertion::sign(signer.as_ref(), &stranger).await.unwrap();
    assert_aadsts(&post_assertion(&sim, &url, &stranger).await, 700021);

    // A tampered payload no longer matches the signature.
    let parts: Vec<&str> = good.expose().split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string()
        ),
        parts[2]
    );
    assert_aadsts(
        &post_assertion(&sim, &url, &Secret::new(tampered)).await,
        700027,
    );
    // Every refusal was a refusal: one token issued in all.
    assert_eq!(sim.snapshot().requests("token"), 7);
}

/// The endpoint issued a token but its answer was lost (a 504 after the work): the retry
/// carries a new assertion, so the `jti` is never presented twice and the token comes.
#[tokio::test]
async fn a_lost_answer_is_retried_with_a_new_assertion() {
    let (made, signer) = new_pair();
    let mut tenant = fixture("acme-tenant.json");
    tenant["sim"]["faults"] =
        json!([{"endpoint": "token", "answer": "504_after_write", "times": 1}]);
    let sim = revoke365_sim::start(
        Fixture::from_json(&tenant.to_string()).unwrap(),
        SimOptions {
            certificates: vec![made.certificate.der().to_vec()],
            refuse_client_secrets: true,
            ..sim_options()
        },
    )
    .await
    .unwrap();
    let creds = credentials(&tenant, ClientCredential::Certificates(vec![signer]));
    graph_token(&sim, &creds)
        .await
        .expect("a token on the second try");
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.requests("token"), 2);
    assert_eq!(snapshot.counters.injected_faults, 1);
}
