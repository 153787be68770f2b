//! Certificate credentials on AWS: the assertion signed by an asymmetric KMS key (LocalStack's
//! KMS), its certificate made from the key's public half and signed through KMS, a token from
//! the simulator, and a whole run through the Lambda handlers with no client secret anywhere.

use crate::aws_kit::{require_emulators, secret_json, Env};
use revoke365::adapters::aws::kms_signer::KmsSigner;
use revoke365::adapters::aws::secrets::SecretsProvider;
use revoke365::adapters::http::HttpCore;
use revoke365::adapters::m365::certificate::{self_signed_for_key, AssertionSigner, Certificate};
use revoke365::adapters::m365::token::GRAPH_SCOPE;
use revoke365::config::{AppCredentials, ClientCredential, PsaUrls, ServiceUrls};
use revoke365::lambda::connector::SecretConnector;
use revoke365_testkit::{fast_http, fixture, JOHN};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A new RSA_2048 signing key in the emulator's KMS and a self-signed certificate for it,
/// signed by the key through kms:Sign (as docs/deploy.md makes the deployment's).
async fn kms_key_and_certificate() -> (aws_sdk_kms::Client, String, Certificate) {
    require_emulators();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .description("revoke365 test: m365 client assertions")
        .send()
        .await
        .expect("KMS creates an RSA signing key");
    let key_id = key.key_metadata.unwrap().key_id;
    let public = KmsSigner::public_key(&kms, &key_id).await.unwrap();
    // rcgen signs synchronously: the KMS call runs on this runtime meanwhile.
    let bare = KmsSigner::new(kms.clone(), &key_id, placeholder_certificate());
    let sign = |tbs: &[u8]| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(bare.sign_rs256(tbs))
        })
    };
    let cert = self_signed_for_key("revoke365-kms", 365, &public, &sign).unwrap();
    assert_eq!(cert.rsa_public_key(), public.as_slice());
    (kms, key_id, cert)
}

/// Any certificate: the signer's own is not used to make a new one.
fn placeholder_certificate() -> Certificate {
    revoke365::adapters::m365::certificate::self_signed("placeholder", 1)
        .unwrap()
        .certificate
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_signed_assertion_gets_a_token_and_another_key_does_not() {
    let (kms, key_id, cert) = kms_key_and_certificate().await;
    let tenant = fixture("acme-tenant.json");
    let sim = revoke365_sim::start(
        revoke365_sim::Fixture::from_json(&tenant.to_string()).unwrap(),
        revoke365_sim::SimOptions {
            certificates: vec![cert.der().to_vec()],
            refuse_client_secrets: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let creds = |signer: KmsSigner| AppCredentials {
        tenant_id: tenant["tenant_id"].as_str().unwrap().into(),
        client_id: "lambda-app".into(),
        credential: ClientCredential::Certificates(vec![Arc::new(signer)]),
    };
    let core = HttpCore::new(fast_http(4)).unwrap();
    let token = core
        .token(
            &sim.base_url,
            &creds(KmsSigner::new(kms.clone(), &key_id, cert.clone())),
            GRAPH_SCOPE,
        )
        .await
        .expect("a token for the KMS-signed assertion");
    assert!(!token.expose().is_empty());

    // The same certificate with another KMS key: the signature does not verify.
    let (_, other_key, _) = kms_key_and_certificate().await;
    let err = HttpCore::new(fast_http(4))
        .unwrap()
        .token(
            &sim.base_url,
            &creds(KmsSigner::new(kms, &other_key, cert)),
            GRAPH_SCOPE,
        )
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(text.contains(&format!("KMS key {other_key}")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_through_the_handlers_signs_in_with_the_kms_key_and_no_secret() {
    let (kms, key_id, cert) = kms_key_and_certificate().await;
    let mut env = Env::start(fixture("acme-tenant.json"), 10).await;
    env.sim.register_certificate(cert.der()).unwrap();
    // The app's secret is gone (the tenant's is now one nobody has); the credentials secret
    // holds the certificate (public) and no client secret.
    env.sim.rotate_client_secret("nobody-has-this");
    let mut doc = secret_json("unused");
    doc.as_object_mut().unwrap().remove("m365_client_secret");
    doc["m365_certificate"] = json!(cert.pem());
    env.sm
        .put_secret_value()
        .secret_id(&env.names.secret_id)
        .secret_string(doc.to_string())
        .send()
        .await
        .unwrap();
    let connector = Arc::new(
        SecretConnector::new(
            fast_http(10),
            ServiceUrls::all_at(&env.sim.base_url),
            SecretsProvider::new(env.sm.clone(), env.names.secret_id.clone()),
            Duration::from_secs(10),
        )
        .with_psa_urls(PsaUrls::all_at(&env.sim.base_url))
        .with_signing_key(kms, &key_id),
    );
    for (_, deps) in env.steps.iter_mut() {
        deps.connector = connector.clone();
    }
    env.intake.connector = Some(connector);

    let request =
        json!({"user_email": JOHN, "company_id": "acme", "requested_by": "hr@acmecorp.com"});
    let (status, accepted) = env.http("POST", "/revocations", Some(request), None).await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    env.pump_steps(1).await;
    env.assert_acme_run_done(&run_id).await;
    assert!(env.sim.snapshot().direct_grants_of(JOHN).is_empty());
}

/// The signing key's policy and the functions' roles: the four functions that reach tenants
/// may kms:Sign with the key (PKCS #1 v1.5 SHA-256 over a digest) and nothing else with it;
/// the account administers it without signing; a brought key is the only one the roles may
/// sign with.
#[test]
fn the_functions_may_only_sign_with_the_signing_key() {
    use crate::least_authority::template;
    let t = template::load();
    let key = &t["Resources"]["M365SigningKey"]["Properties"];
    assert_eq!(key["KeySpec"], "RSA_2048");
    assert_eq!(key["KeyUsage"], "SIGN_VERIFY");
    let roles: Vec<serde_json::Value> = [
        "IntakeRole",
        "DiscoveryRole",
        "RemovalRole",
        "VerificationRole",
    ]
    .iter()
    .map(|r| json!({"!GetAtt": format!("{r}.Arn")}))
    .collect();
    let functions = template::by_sid(&key["KeyPolicy"], "FunctionsSignAssertions");
    assert_eq!(functions["Principal"]["AWS"], json!(roles));
    assert_eq!(template::actions(functions), ["kms:Sign"]);
    let condition = &functions["Condition"]["StringEquals"];
    assert_eq!(
        condition["kms:SigningAlgorithm"],
        "RSASSA_PKCS1_V1_5_SHA_256"
    );
    assert_eq!(condition["kms:MessageType"], "DIGEST");
    for s in template::statements(&key["KeyPolicy"]) {
        let actions = template::actions(s);
        let names_a_role = roles.iter().any(|r| {
            s["Principal"]["AWS"] == *r
                || s["Principal"]["AWS"]
                    .as_array()
                    .is_some_and(|a| a.contains(r))
        });
        if names_a_role {
            assert_eq!(actions, ["kms:Sign"], "{s}");
        }
        // Nobody gets every action, or a grant to hand out uses.
        assert!(
            actions
                .iter()
                .all(|a| a != "kms:*" && a != "kms:CreateGrant"),
            "{s}"
        );
        if s["Sid"] == "AccountAdministersWithoutUse" {
            assert!(!actions.iter().any(|a| a.starts_with("kms:Sign")), "{s}");
        }
    }
    // In the roles: kms:Sign only on the brought key, and no other KMS right on it.
    for role in [
        "IntakeRole",
        "DiscoveryRole",
        "RemovalRole",
        "VerificationRole",
    ] {
        let policies = t["Resources"][role]["Properties"]["Policies"]
            .as_array()
            .unwrap();
        let signing: Vec<&serde_json::Value> = policies
            .iter()
            .flat_map(|p| template::statements(&p["PolicyDocument"]))
            .filter(|s| {
                template::actions(s)
                    .iter()
                    .any(|a| a.starts_with("kms:Sign"))
            })
            .collect();
        assert_eq!(signing.len(), 1, "{role}");
        assert_eq!(
            signing[0]["Resource"],
            json!({"!Ref": "M365SigningKeyArn"}),
            "{role}"
        );
        assert_eq!(template::actions(signing[0]), ["kms:Sign"], "{role}");
    }
    // Every function is told which key to sign with.
    assert!(t["Globals"]["Function"]["Environment"]["Variables"]
        .get(revoke365::adapters::aws::kms_signer::SIGNING_KEY_VAR)
        .is_some());
}
