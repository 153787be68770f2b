//! Helpers: start a simulator in-process and talk to it with raw request bodies.

use reqwest::{Method, Response};
use revoke365_sim::{start, Fixture, SimHandle, SimOptions, SimSettings};
use serde_json::{json, Value};

pub const ACME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/acme-tenant.json");
pub const HARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/hard-tenant.json");
pub const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/real-tenant.json");
pub const GRAPH_SCOPE: &str = "https%3A%2F%2Fgraph.microsoft.com%2F.default";
pub const EXO_SCOPE: &str = "https%3A%2F%2Foutlook.office365.com%2F.default";
/// `base64("AcmeMSP+pub:priv")`.
pub const CW_AUTH: &str = "Basic QWNtZU1TUCtwdWI6cHJpdg==";

pub fn fixture(path: &str) -> Fixture {
    Fixture::from_path(std::path::Path::new(path)).expect("fixture loads")
}

/// The real tenant's directory and grants, with none of its `sim` knobs but
/// the page size and `fail_mailboxes`: no faults, caps, lag or revocation.
pub fn real_quiet() -> Fixture {
    let mut tenant = fixture(REAL);
    tenant.sim = SimSettings {
        page_size: tenant.sim.page_size,
        fail_mailboxes: tenant.sim.fail_mailboxes.clone(),
        ..SimSettings::default()
    };
    tenant
}

pub const PETER: &str = "peter.gibbons@initech.onmicrosoft.com";
pub const PETER2: &str = "peter.gibbons2@initech.onmicrosoft.com";

/// An InvokeCommand body.
pub fn cmdlet(name: &str, parameters: Value) -> String {
    json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}}).to_string()
}

/// One string field of every item.
pub fn field<'a>(items: &'a [Value], name: &str) -> Vec<&'a str> {
    items
        .iter()
        .map(|i| i[name].as_str().unwrap_or_default())
        .collect()
}

pub struct TestSim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
    pub tenant: String,
    graph_token: String,
    exo_token: String,
}

/// A decoded answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body (`Null` if empty, a JSON string if not JSON).
    pub body: Value,
    /// The raw body.
    pub text: String,
}

impl Answer {
    async fn read(response: Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `details[0].message` of an Exchange error.
    pub fn exo_detail(&self) -> &str {
        self.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.body["@adminapi.warnings"]
            .as_array()
            .map_or(Vec::new(), |w| w.iter().filter_map(Value::as_str).collect())
    }

    pub fn values(&self) -> &Vec<Value> {
        self.body["value"].as_array().expect("value array")
    }
}

impl TestSim {
    pub async fn start(fixture: Fixture) -> TestSim {
        TestSim::start_with(fixture, SimOptions::default()).await
    }

    pub async fn start_with(fixture: Fixture, options: SimOptions) -> TestSim {
        let tenant = fixture.tenant_id.clone();
        let handle = start(fixture, options).await.expect("simulator starts");
        let mut sim = TestSim {
            handle,
            http: reqwest::Client::new(),
            tenant,
            graph_token: String::new(),
            exo_token: String::new(),
        };
        sim.graph_token = sim.token(GRAPH_SCOPE).await;
        sim.exo_token = sim.token(EXO_SCOPE).await;
        sim
    }

    pub async fn acme() -> TestSim {
        TestSim::start(fixture(ACME)).await
    }

    pub async fn hard() -> TestSim {
        TestSim::start(fixture(HARD)).await
    }

    pub async fn real() -> TestSim {
        TestSim::start(real_quiet()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url)
    }

    pub async fn token_request(&self, tenant: &str, form: &str) -> Answer {
        let response = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .expect("token request");
        Answer::read(response).await
    }

    pub async fn token(&self, scope: &str) -> String {
        let form = format!(
            "grant_type=client_credentials&client_id=app-1&client_secret=s3cret&scope={scope}"
        );
        let answer = self.token_request(&self.tenant, &form).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn graph(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.graph_token);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        Answer::read(request.send().await.expect("graph request")).await
    }

    pub async fn graph_get(&self, path: &str) -> Answer {
        self.graph(Method::GET, path, None).await
    }

    pub fn invoke_url(&self) -> String {
        self.url(&format!("/adminapi/beta/{}/InvokeCommand", self.tenant))
    }

    /// POST a raw InvokeCommand body to `url`.
    pub async fn exo_at(&self, url: &str, body: &str) -> Answer {
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.exo_token)
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "X-AnchorMailbox",
                format!(
                    "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{}",
                    self.tenant
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .expect("exo request");
        Answer::read(response).await
    }

    pub async fn exo(&self, body: &str) -> Answer {
        self.exo_at(&self.invoke_url(), body).await
    }

    /// Get fresh tokens for the helpers (after the old ones were revoked).
    pub async fn renew_tokens(&mut self) {
        self.graph_token = self.token(GRAPH_SCOPE).await;
        self.exo_token = self.token(EXO_SCOPE).await;
    }

    /// The Exchange and Graph tokens the helpers use.
    pub fn tokens(&self) -> (&str, &str) {
        (&self.exo_token, &self.graph_token)
    }

    /// Every item of a paged Get-* answer, following `@odata.nextLink`.
    pub async fn exo_all(&self, body: &str) -> (Vec<Value>, usize) {
        let (mut items, mut pages) = (Vec::new(), 0);
        let mut url = self.invoke_url();
        loop {
            let answer = self.exo_at(&url, body).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            pages += 1;
            items.extend(answer.values().iter().cloned());
            match answer.body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return (items, pages),
            }
        }
    }

    /// A HaloPSA API request (`/halo/api{path}`) with a token just issued.
    pub async fn halo(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let token: Value = self
            .http
            .post(self.url("/halo/auth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=test&client_secret=s&scope=all")
            .send()
            .await
            .expect("halo token")
            .json()
            .await
            .expect("token JSON");
        let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));
        let mut request = self
            .http
            .request(method, self.url(&format!("/halo/api{path}")))
            .header("Authorization", bearer);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        Answer::read(request.send().await.expect("halo request")).await
    }

    /// An Autotask request to the simulator's zone (`/ww5/atservicesrest/v1.0{path}`).
    pub async fn autotask(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(&format!("/ww5/atservicesrest/v1.0{path}")))
            .header("ApiIntegrationCode", "TEST")
            .header("UserName", "api@msp.example")
            .header("Secret", "s");
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        Answer::read(request.send().await.expect("autotask request")).await
    }

    pub async fn cw(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(&format!("/v4_6_release/apis/3.0{path}")))
            .header("Authorization", CW_AUTH)
            .header("clientId", "5f0c1c9e-3b0b-4a51-9a7c-111111111111");
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        Answer::read(request.send().await.expect("cw request")).await
    }

    pub fn state(&self) -> Value {
        self.handle.state()
    }

    /// The `/_sim/state` entry of one mailbox.
    pub fn mailbox_state(&self, upn: &str) -> Value {
        let state = self.state();
        let mailboxes = state["mailboxes"].as_array().expect("mailboxes").clone();
        mailboxes
            .into_iter()
            .find(|m| m["upn"] == upn)
            .unwrap_or_else(|| panic!("no mailbox {upn}"))
    }

    pub fn requests(&self, key: &str) -> u64 {
        self.state()["requests"][key].as_u64().unwrap_or(0)
    }
}

/// Users (`user` fields or strings) of a grant list.
pub fn users(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|e| {
            e.get("user")
                .unwrap_or(e)
                .as_str()
                .expect("user")
                .to_string()
        })
        .collect()
}

/// Run futures concurrently (no extra dependency).
pub async fn futures_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}
