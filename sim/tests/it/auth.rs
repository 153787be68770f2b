use reqwest::Method;
use revoke365_sim::SimOptions;

use crate::common::{fixture, TestSim, ACME, EXO_SCOPE, GRAPH_SCOPE};

#[tokio::test]
async fn issues_tokens_for_graph_and_exchange() {
    let sim = TestSim::acme().await;
    for scope in [GRAPH_SCOPE, EXO_SCOPE] {
        let form =
            format!("grant_type=client_credentials&client_id=app-1&client_secret=x&scope={scope}");
        let answer = sim.token_request(&sim.tenant, &form).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["token_type"], "Bearer");
        assert_eq!(answer.body["expires_in"], 3599);
        assert!(answer.body["access_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32));
    }
    // The tenant's domain is accepted as tenant identifier too.
    let form =
        format!("grant_type=client_credentials&client_id=a&client_secret=x&scope={GRAPH_SCOPE}");
    assert_eq!(sim.token_request("acmecorp.com", &form).await.status, 200);
    assert_eq!(sim.requests("token"), 5);
}

#[tokio::test]
async fn token_errors() {
    let options = SimOptions {
        client_secret: Some("s3cret".into()),
        cw_private_key: None,
        ..Default::default()
    };
    let sim = TestSim::start_with(fixture(ACME), options).await;
    let tenant = sim.tenant.clone();
    let cases = [
        ("contoso.example", format!("grant_type=client_credentials&client_id=a&client_secret=s3cret&scope={GRAPH_SCOPE}"), 400, "invalid_request", "AADSTS90002"),
        (tenant.as_str(), format!("grant_type=password&client_id=a&client_secret=s3cret&scope={GRAPH_SCOPE}"), 400, "unsupported_grant_type", "AADSTS70003"),
        (tenant.as_str(), "grant_type=client_credentials&client_id=a&client_secret=s3cret".to_string(), 400, "invalid_request", "'scope'"),
        (tenant.as_str(), "grant_type=client_credentials&client_id=a&client_secret=s3cret&scope=https%3A%2F%2Fexample.com%2F.default".to_string(), 400, "invalid_scope", "AADSTS1002012"),
        (tenant.as_str(), format!("grant_type=client_credentials&client_id=a&client_secret=wrong&scope={GRAPH_SCOPE}"), 401, "invalid_client", "AADSTS7000215"),
    ];
    for (tenant, form, status, error, description) in cases {
        let answer = sim.token_request(tenant, &form).await;
        assert_eq!(answer.status, status, "{form}: {}", answer.body);
        assert_eq!(answer.body["error"], error);
        let text = answer.body["error_description"].as_str().unwrap();
        assert!(text.contains(description), "{text}");
    }
}

#[tokio::test]
async fn routes_require_a_token_of_their_audience() {
    let sim = TestSim::acme().await;
    let user_url = sim.url("/v1.0/users/john.smith@acmecorp.com");

    let missing = sim.http.get(&user_url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");

    let exo_token = sim.token(crate::common::EXO_SCOPE).await;
    let graph_token = sim.token(crate::common::GRAPH_SCOPE).await;
    let wrong_audience = sim
        .http
        .get(&user_url)
        .bearer_auth(&exo_token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_audience.status(), 401);
    let garbage = sim
        .http
        .get(&user_url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    let ok = sim
        .http
        .get(&user_url)
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let body =
        r#"{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"ResultSize":"Unlimited"}}}"#;
    let exo_with_graph_token = sim
        .http
        .request(Method::POST, sim.invoke_url())
        .bearer_auth(&graph_token)
        .header("X-AnchorMailbox", "UPN:ceo@acmecorp.com")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(exo_with_graph_token.status(), 401);
    // Rejected requests are not counted.
    assert_eq!(sim.requests("graph GET /users/{id}"), 1);
    assert_eq!(sim.requests("exo Get-Mailbox"), 0);
}
