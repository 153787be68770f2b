//! The HTTP machinery every client shares: one `reqwest::Client` per process, the token cache,
//! a concurrency limit per tenant, and bounded retries of throttling and transport failures.

use crate::adapters::token::TokenCache;
use crate::config::{AppCredentials, HttpSettings, RetryPolicy, Secret};
use crate::error::RemoteError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// Built once per process and shared by every client.
pub struct HttpCore {
    client: reqwest::Client,
    settings: HttpSettings,
    tokens: TokenCache,
    tenant_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// What one logical call is, for limits, spans and error messages.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: &'static str,
    /// What is being done and with what id, e.g. `Get-MailboxPermission ceo@acme.com`.
    pub operation: String,
    /// Calls to a tenant share its concurrency limit; `None` for the PSA and the token endpoint.
    pub tenant: Option<String>,
}

/// A finished exchange whose status was not retried: the caller maps it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

#[cfg(test)]
impl Reply {
    /// A reply as a server would give it, for the adapters' mapping tests.
    pub(crate) fn with(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.into(),
        }
    }
}

impl Call {
    pub fn new(service: &'static str, operation: impl Into<String>, tenant: Option<&str>) -> Call {
        Call {
            service,
            operation: operation.into(),
            tenant: tenant.map(str::to_string),
        }
    }

    pub fn not_found(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::NotFound {
            service: self.service,
            operation: self.operation.clone(),
            message: message.into(),
        }
    }

    pub fn api(
        &self,
        status: StatusCode,
        code: Option<String>,
        message: impl Into<String>,
    ) -> RemoteError {
        RemoteError::Api {
            service: self.service,
            operation: self.operation.clone(),
            status: status.as_u16(),
            code,
            message: message.into(),
        }
    }

    pub fn protocol(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Protocol {
            service: self.service,
            operation: self.operation.clone(),
            message: message.into(),
        }
    }

    pub fn auth(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Auth {
            service: self.service,
            message: format!("{}: {}", self.operation, message.into()),
        }
    }

    fn throttled(
        &self,
        status: StatusCode,
        attempts: u32,
        retry_after: Option<Duration>,
    ) -> RemoteError {
        RemoteError::Throttled {
            service: self.service,
            operation: self.operation.clone(),
            status: status.as_u16(),
            attempts,
            retry_after,
        }
    }

    fn transport(&self, message: String) -> RemoteError {
        RemoteError::Transport {
            service: self.service,
            operation: self.operation.clone(),
            message,
        }
    }
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`; a mismatch is a protocol error of `call`.
    pub fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, RemoteError> {
        serde_json::from_str(&self.body)
            .map_err(|e| call.protocol(format!("HTTP {}: {e}", self.status.as_u16())))
    }

    /// The start of the body, for error messages when it has no known error shape.
    pub fn body_snippet(&self) -> String {
        let text = self.body.trim();
        match text.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None if text.is_empty() => self
                .status
                .canonical_reason()
                .unwrap_or("no body")
                .to_string(),
            None => text.to_string(),
        }
    }
}

impl HttpCore {
    pub fn new(settings: HttpSettings) -> Result<Arc<HttpCore>, RemoteError> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("Revoke365/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::Transport {
                service: "http",
                operation: "build client".into(),
                message: error_chain(&e),
            })?;
        Ok(Arc::new(HttpCore {
            client,
            settings,
            tokens: TokenCache::default(),
            tenant_limits: Mutex::default(),
        }))
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// A bearer token for `scope`, from the cache or fetched once for all concurrent callers.
    pub async fn token(
        &self,
        login_url: &str,
        creds: &AppCredentials,
        scope: &str,
    ) -> Result<Secret, RemoteError> {
        self.tokens.get(self, login_url, creds, scope).await
    }

    /// Sends the request `build` makes, retrying 429/503 and transport failures within the
    /// retry policy. `build` is called once per attempt, so every attempt is a fresh request.
    /// Any other status comes back as a `Reply` for the caller to map.
    pub async fn send<F>(&self, call: &Call, build: F) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let span =
            tracing::debug_span!("http", service = call.service, operation = %call.operation);
        self.send_with_retry(call, build).instrument(span).await
    }

    async fn send_with_retry<F>(&self, call: &Call, build: F) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let policy = self.settings.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let outcome = self.exchange(call, build(&self.client)).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let retry_after = match outcome {
                Ok((reply, headers)) if is_throttling(reply.status) => {
                    tracing::debug!(
                        attempt,
                        status = reply.status.as_u16(),
                        elapsed_ms,
                        "throttled"
                    );
                    let retry_after = parse_retry_after(&headers, chrono::Utc::now());
                    if attempt >= max_attempts {
                        return Err(call.throttled(reply.status, attempt, retry_after));
                    }
                    retry_after
                }
                Ok((reply, _)) => {
                    tracing::debug!(
                        attempt,
                        status = reply.status.as_u16(),
                        elapsed_ms,
                        "answered"
                    );
                    return Ok(reply);
                }
                Err(e) if e.is_builder() => {
                    // A header or URL that cannot be sent: retrying cannot help.
                    return Err(RemoteError::InvalidInput {
                        service: call.service,
                        field: "request",
                        message: error_chain(&e),
                    });
                }
                Err(e) => {
                    let message = error_chain(&e);
                    tracing::debug!(attempt, elapsed_ms, error = %message, "transport failure");
                    if attempt >= max_attempts {
                        return Err(call.transport(format!("{message} (after {attempt} attempts)")));
                    }
                    None
                }
            };
            tokio::time::sleep(retry_delay(&policy, attempt, retry_after)).await;
            attempt += 1;
        }
    }

    /// One request and its whole body, holding the tenant's permit only for that long.
    async fn exchange(
        &self,
        call: &Call,
        request: RequestBuilder,
    ) -> Result<(Reply, HeaderMap), reqwest::Error> {
        let _permit = self.tenant_permit(call.tenant.as_deref()).await;
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok((Reply { status, body }, headers))
    }

    async fn tenant_permit(&self, tenant: Option<&str>) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut limits = self
                .tenant_limits
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let permits = self.settings.tenant_concurrency.max(1);
            limits
                .entry(tenant?.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(permits)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        semaphore.acquire_owned().await.ok()
    }
}

fn is_throttling(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// `Retry-After` as seconds or as an HTTP-date; `None` when absent or unreadable.
pub(crate) fn parse_retry_after(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// How long to wait before attempt `attempt + 1`: full jitter over an exponential backoff.
/// A `Retry-After` is a floor, with the jitter on top so callers throttled together do not
/// come back together; the whole is capped at `max_delay`.
pub(crate) fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let ceiling = policy
        .base_delay
        .saturating_mul(1 << exponent)
        .min(policy.max_delay);
    let jitter = ceiling.mul_f64(fastrand::f64());
    retry_after
        .unwrap_or(Duration::ZERO)
        .saturating_add(jitter)
        .min(policy.max_delay)
}

/// A reqwest error with its causes ("error sending request ...: connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Resolves a `@odata.nextLink` and refuses one that leaves the service's origin, so a
/// bearer token is never sent elsewhere.
pub(crate) fn same_origin_link(base: &str, link: &str, call: &Call) -> Result<Url, RemoteError> {
    let base = Url::parse(base).map_err(|e| call.protocol(format!("invalid base URL: {e}")))?;
    let next = base
        .join(link)
        .map_err(|e| call.protocol(format!("invalid @odata.nextLink: {e}")))?;
    let origin = |u: &Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    if origin(&base) != origin(&next) {
        return Err(call.protocol(format!(
            "@odata.nextLink points outside {}",
            base.origin().ascii_serialization()
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn policy(base_ms: u64, max_ms: u64, attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        }
    }

    fn headers_with_retry_after(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after(&headers_with_retry_after("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(
                &headers_with_retry_after("Wed, 21 Oct 2015 07:28:05 GMT"),
                now
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after(
                &headers_with_retry_after("Wed, 21 Oct 2015 07:27:00 GMT"),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&headers_with_retry_after("soon"), now),
            None
        );
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let p = policy(100, 1_000, 8);
        for _ in 0..200 {
            assert!(retry_delay(&p, 1, None) <= Duration::from_millis(100));
            assert!(retry_delay(&p, 3, None) <= Duration::from_millis(400));
            assert!(retry_delay(&p, 30, None) <= Duration::from_millis(1_000));
            let honoured = retry_delay(&p, 1, Some(Duration::from_millis(500)));
            assert!(
                honoured >= Duration::from_millis(500) && honoured <= Duration::from_millis(600)
            );
            assert_eq!(
                retry_delay(&p, 1, Some(Duration::from_secs(3600))),
                Duration::from_millis(1_000)
            );
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|_| retry_delay(&p, 4, None)).collect();
        assert!(spread.len() > 10, "full jitter spreads the delays");
    }

    #[test]
    fn next_links_stay_on_the_service_origin() {
        let call = Call::new("graph", "test", None);
        let base = "https://graph.microsoft.com";
        assert!(same_origin_link(
            base,
            "https://graph.microsoft.com:443/v1.0/x?$skiptoken=1",
            &call
        )
        .is_ok());
        assert!(same_origin_link(base, "https://GRAPH.microsoft.com/v1.0/x", &call).is_ok());
        assert!(same_origin_link(base, "https://evil.example/v1.0/x", &call).is_err());
        assert!(same_origin_link(base, "http://graph.microsoft.com/v1.0/x", &call).is_err());
    }

    /// A loopback server that answers each connection with the next canned response.
    async fn scripted_server(
        responses: Vec<&'static str>,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            for response in responses {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                socket.write_all(response.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        (url, served)
    }

    const THROTTLED: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    const NOT_FOUND: &str =
        "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

    fn core(attempts: u32) -> Arc<HttpCore> {
        HttpCore::new(HttpSettings {
            retry: policy(1, 5, attempts),
            ..HttpSettings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn throttling_is_retried_until_an_answer() {
        let (url, served) = scripted_server(vec![THROTTLED, UNAVAILABLE, OK]).await;
        let call = Call::new("test", "GET /", Some("tenant"));
        let reply = core(5).send(&call, |c| c.get(&url)).await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn throttling_gives_up_after_max_attempts() {
        let (url, served) = scripted_server(vec![THROTTLED, THROTTLED, THROTTLED, OK]).await;
        let call = Call::new("test", "GET /", None);
        let err = core(3).send(&call, |c| c.get(&url)).await.unwrap_err();
        assert!(
            matches!(err, RemoteError::Throttled { status: 429, attempts: 3, retry_after: Some(d), .. } if d.is_zero()),
            "{err:?}"
        );
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_statuses_go_back_to_the_caller_unretried() {
        let (url, served) = scripted_server(vec![NOT_FOUND, OK]).await;
        let reply = core(5)
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn transport_failures_are_retried_then_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = core(2)
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RemoteError::Transport { message, .. } if message.contains("after 2 attempts")),
            "{err:?}"
        );
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn one_limiter_per_tenant() {
        let core = HttpCore::new(HttpSettings {
            tenant_concurrency: 2,
            ..HttpSettings::default()
        })
        .unwrap();
        let a1 = core.tenant_permit(Some("a")).await;
        let _a2 = core.tenant_permit(Some("A")).await;
        let third =
            tokio::time::timeout(Duration::from_millis(50), core.tenant_permit(Some("a"))).await;
        assert!(third.is_err(), "tenant a is at its limit");
        assert!(
            core.tenant_permit(Some("b")).await.is_some(),
            "tenant b has its own limit"
        );
        assert!(
            core.tenant_permit(None).await.is_none(),
            "untenanted calls are not limited"
        );
        drop(a1);
        assert!(core.tenant_permit(Some("a")).await.is_some());
    }
}
