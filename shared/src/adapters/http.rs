//! The HTTP machinery every client shares: one `reqwest::Client` per process (no redirects,
//! https only but for loopback, bounded bodies), the token cache, the concurrency budgets
//! learnt per tenant and service, and bounded retries of throttling and transient failures.

use crate::adapters::budget::{Budgets, Feedback, KeyedLimits, LimitSnapshot};
use crate::adapters::token_cache::TokenCache;
use crate::config::{HttpSettings, Secret, GRAPH_MAILBOX_CONCURRENCY};
use crate::error::{ErrorKind, RemoteError};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Request, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Built once per process and shared by every client.
pub struct HttpCore {
    client: reqwest::Client,
    settings: HttpSettings,
    pub(crate) tokens: TokenCache,
    budgets: Budgets,
    graph_mailboxes: KeyedLimits,
    waits: Mutex<HashMap<&'static str, Instant>>,
    /// What PSA clients learn once and reuse across connections (a HaloPSA token, an
    /// Autotask zone), until the instant stored with it.
    sessions: Mutex<HashMap<String, (Secret, Instant)>>,
}

/// Whether a request may be sent again after it may have reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, and writes whose repetition is harmless (removing or adding a grant): retried
    /// on every transient failure. A reply then says whether an earlier attempt may already
    /// have taken effect ([`Reply::replayed`]).
    Safe,
    /// Creating a ticket or a note, sending mail: sent again only when the service surely did
    /// not act on it (429, 503 with `Retry-After`, a refused connection), never blindly.
    Once,
}

/// What one logical call is, for limits, spans and error messages.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: &'static str,
    /// What is being done and with what id, e.g. `Get-MailboxPermission ceo@acme.com`.
    pub operation: String,
    /// Calls to a tenant share its budget per service; `None` for the token endpoint.
    pub tenant: Option<String>,
    /// Graph calls about one mailbox also take one of its few per-mailbox slots.
    pub mailbox: Option<String>,
    pub replay: Replay,
}

/// A finished exchange whose status was not retried: the caller maps it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    /// An earlier attempt of this call may have reached the service (a timeout, 502, 503,
    /// 504 before this answer): a write's "nothing to remove" then means it was this call
    /// that removed it.
    pub replayed: bool,
}

#[cfg(test)]
impl Reply {
    /// A reply as a server would give it, for the adapters' mapping tests.
    pub(crate) fn with(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.into(),
            replayed: false,
        }
    }
}

impl Call {
    pub fn new(service: &'static str, operation: impl Into<String>, tenant: Option<&str>) -> Call {
        Call {
            service,
            operation: operation.into(),
            tenant: tenant.map(str::to_string),
            mailbox: None,
            replay: Replay::Safe,
        }
    }

    pub fn about_mailbox(mut self, mailbox: &str) -> Call {
        self.mailbox = Some(mailbox.to_ascii_lowercase());
        self
    }

    pub fn once(mut self) -> Call {
        self.replay = Replay::Once;
        self
    }

    pub fn error(&self, kind: ErrorKind) -> RemoteError {
        RemoteError::new(self.service, self.operation.clone(), kind)
    }

    pub fn not_found(&self, message: impl Into<String>) -> RemoteError {
        self.error(ErrorKind::NotFound {
            message: message.into(),
        })
    }

    /// An error answer; 5xx (but 501) may succeed later, anything else will not.
    pub fn api(
        &self,
        status: StatusCode,
        code: Option<String>,
        message: impl Into<String>,
    ) -> RemoteError {
        let transient = status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED;
        self.api_with(status, code, message, transient)
    }

    pub fn api_with(
        &self,
        status: StatusCode,
        code: Option<String>,
        message: impl Into<String>,
        transient: bool,
    ) -> RemoteError {
        self.error(ErrorKind::Api {
            status: status.as_u16(),
            code,
            message: message.into(),
            transient,
        })
    }

    pub fn protocol(&self, message: impl Into<String>) -> RemoteError {
        self.error(ErrorKind::Protocol {
            message: message.into(),
        })
    }

    pub fn auth(&self, message: impl Into<String>) -> RemoteError {
        self.error(ErrorKind::Auth {
            message: message.into(),
        })
    }

    pub fn invalid(&self, field: &'static str, message: impl Into<String>) -> RemoteError {
        self.error(ErrorKind::InvalidInput {
            field,
            message: message.into(),
        })
    }

    fn throttled(
        &self,
        status: StatusCode,
        attempts: u32,
        retry_after: Option<Duration>,
    ) -> RemoteError {
        self.error(ErrorKind::Throttled {
            status: status.as_u16(),
            attempts,
            retry_after,
        })
    }

    fn transport(&self, message: String) -> RemoteError {
        self.error(ErrorKind::Transport { message })
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

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The start of the body, for error messages when it has no known error shape.
    pub fn body_snippet(&self) -> String {
        let text = self
            .body
            .trim_matches(|c: char| c.is_whitespace() || c == '\0');
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

    /// Exchange's (and AAD's) "maximum number of concurrent requests" answer, which comes in
    /// any status and content type.
    fn is_concurrency_refusal(&self) -> bool {
        !self.status.is_success()
            && self
                .body
                .to_ascii_lowercase()
                .contains("maximum number of concurrent requests")
    }
}

/// Attempts of a read that the service answers with a transient server error (and not 502,
/// 503, 504, which every call retries within the policy): the service did answer, so a few
/// tries tell a hiccup from a lasting fault.
pub const SERVER_ERROR_ATTEMPTS: u32 = 4;

/// How an answer is treated by the retry loop.
enum Verdict {
    /// The caller maps it (success or a definite error answer).
    Final,
    /// Refused before any work: 429, "too many concurrent requests". Always safe to resend.
    Refused,
    /// 502/503/504/408: the service may or may not have acted.
    Unavailable,
}

fn verdict(reply: &Reply) -> Verdict {
    if reply.status == StatusCode::TOO_MANY_REQUESTS || reply.is_concurrency_refusal() {
        return Verdict::Refused;
    }
    match reply.status {
        StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT
        | StatusCode::REQUEST_TIMEOUT => Verdict::Unavailable,
        _ => Verdict::Final,
    }
}

/// Attempts of a notification at a host that cannot be reached before it is reported
/// `unreachable`, and the longest pause between them (as `revoke365 run` checks its
/// endpoints).
const UNREACHABLE_ATTEMPTS: u32 = 3;
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(500);

/// One attempt's transport failure.
enum Failure {
    /// The request never left (DNS, refused connection): always safe to resend.
    NotSent(String),
    /// Timed out or broken after sending: the service may have acted.
    MaybeSent(String),
    /// The answer broke a safety limit.
    Refused(RemoteError),
}

impl HttpCore {
    pub fn new(settings: HttpSettings) -> Result<Arc<HttpCore>, RemoteError> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            // A redirect would re-send the client secret or a bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Revoke365/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                RemoteError::new(
                    "http",
                    "build client",
                    ErrorKind::Transport {
                        message: error_chain(&e),
                    },
                )
            })?;
        Ok(Arc::new(HttpCore {
            client,
            settings,
            tokens: TokenCache::default(),
            budgets: Budgets::default(),
            graph_mailboxes: KeyedLimits::new(GRAPH_MAILBOX_CONCURRENCY),
            waits: Mutex::default(),
            sessions: Mutex::default(),
        }))
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// A value a client kept under `key` with [`HttpCore::remember`], while it is still good.
    pub fn remembered(&self, key: &str) -> Option<Secret> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(value, _)| value.clone())
    }

    /// Keeps `value` under `key` for `lifetime` (clients built later in this process reuse it).
    pub fn remember(&self, key: &str, value: Secret, lifetime: Duration) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.insert(key.to_string(), (value, Instant::now() + lifetime));
    }

    /// Drops what is kept under `key` (a token the service refused, a zone that moved).
    pub fn forget(&self, key: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(key);
    }

    /// Mailboxes one discovery shard should hold: what one permit of each service reads in
    /// about `target` (a mailbox is one Exchange call, and Graph calls that have twice the
    /// permits) at this tenant's latencies. The tenant's budget is then shared by as many
    /// shards as it has permits, and the last shards, fewer than the permits, take what the
    /// others gave back and finish early: no shard is left reading alone at a small share.
    /// 200 before a latency was measured; 25 to [`crate::messages::MAX_SHARD_MAILBOXES`].
    pub fn shard_size(&self, tenant: &str, target: Duration) -> usize {
        let latency = |service: &'static str| {
            self.budgets
                .snapshot(tenant, service)
                .and_then(|s| s.latency)
                .map(|latency| latency.as_secs_f64())
        };
        match [latency("exchange"), latency("graph")]
            .into_iter()
            .flatten()
            .reduce(f64::max)
        {
            None => 200,
            Some(per_mailbox) => ((target.as_secs_f64() / per_mailbox.max(1e-6)) as usize)
                .clamp(25, crate::messages::MAX_SHARD_MAILBOXES),
        }
    }

    /// Holds `service`'s calls to `tenant` to the `permits` this invocation leased from the
    /// budget all invocations share.
    pub fn lease(&self, tenant: &str, service: &'static str, permits: usize) {
        self.budgets
            .lease(tenant, service, self.settings.budget(service), permits);
    }

    /// Starts `service`'s limit for `tenant` at what an earlier read learnt (`exchange`,
    /// `graph`; other names are ignored), unless it has learnt something already.
    pub fn seed(&self, tenant: &str, service: &str, limit: usize) {
        let service = match service {
            "exchange" => "exchange",
            "graph" => "graph",
            _ => return,
        };
        self.budgets
            .seed(tenant, service, self.settings.budget(service), limit);
    }

    /// The lease of `service`'s calls to `tenant` changed size while held.
    pub fn resize(&self, tenant: &str, service: &'static str, permits: usize) {
        if let Some(limit) = self.budgets.existing(tenant, service) {
            limit.resize(permits);
        }
    }

    /// `service`'s calls to `tenant` in flight now.
    pub fn in_flight(&self, tenant: &str, service: &'static str) -> usize {
        self.budgets
            .existing(tenant, service)
            .map_or(0, |l| l.in_flight())
    }

    /// The most of `service`'s calls to `tenant` in flight and waiting at once since the
    /// last time this was asked.
    pub fn take_demand(&self, tenant: &str, service: &'static str) -> usize {
        self.budgets
            .existing(tenant, service)
            .map_or(0, |l| l.take_demand())
    }

    /// What `service`'s budget for `tenant` has learnt so far.
    pub fn learned(&self, tenant: &str, service: &'static str) -> Option<LimitSnapshot> {
        self.budgets.snapshot(tenant, service)
    }

    /// What each (tenant, service) budget has learnt so far.
    pub fn learned_limits(&self) -> Vec<(String, &'static str, LimitSnapshot)> {
        self.budgets.learned()
    }

    /// Services this process is waiting on because they asked it to (`Retry-After`), with the
    /// time left: what progress output shows while a run waits.
    pub fn throttle_waits(&self) -> Vec<(&'static str, Duration)> {
        let now = Instant::now();
        let mut waits: Vec<_> = self
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(service, until)| (*service, *until - now))
            .collect();
        waits.sort();
        waits
    }

    /// Sends the request `build` makes, retrying what the call's [`Replay`] allows within the
    /// retry policy. `build` is called once per attempt, so every attempt is a fresh request.
    /// Any other answer comes back as a `Reply` for the caller to map.
    pub async fn send<F>(&self, call: &Call, build: F) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.send_traced(call, &|_| false, build).await
    }

    /// [`HttpCore::send`] for an idempotent read (a GET, a `Get-*` cmdlet): a server error
    /// that `transient` says may pass (Graph's 500 `ErrorInternalServerTransientError`, a
    /// cmdlet's transient exception) is asked again too, with the same backoff, at most
    /// [`SERVER_ERROR_ATTEMPTS`] times in all, so that one hiccup does not cost a mailbox. A
    /// permanent failure that also comes as 500 (a cmdlet's `ManagementObjectNotFoundException`)
    /// comes back at once.
    pub async fn read<F>(
        &self,
        call: &Call,
        transient: &(dyn Fn(&Reply) -> bool + Sync),
        build: F,
    ) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.send_traced(call, transient, build).await
    }

    async fn send_traced<F>(
        &self,
        call: &Call,
        transient: &(dyn Fn(&Reply) -> bool + Sync),
        build: F,
    ) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let span =
            tracing::debug_span!("http", service = call.service, operation = %call.operation);
        self.send_with_retry(call, transient, build)
            .instrument(span)
            .await
    }

    async fn send_with_retry<F>(
        &self,
        call: &Call,
        transient: &(dyn Fn(&Reply) -> bool + Sync),
        build: F,
    ) -> Result<Reply, RemoteError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let policy = self.settings.retry;
        let mut attempt = 1;
        let mut server_errors = 0;
        let mut maybe_sent = false;
        loop {
            let request = build(&self.client)
                .build()
                .map_err(|e| call.invalid("request", error_chain(&e)))?;
            check_scheme(request.url(), call)?;
            let started = Instant::now();
            let outcome = self.attempt(call, request).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let last = !policy.allows_another(attempt);
            let retry_after = match outcome {
                Ok(reply) => {
                    tracing::debug!(
                        attempt,
                        status = reply.status.as_u16(),
                        elapsed_ms,
                        "answered"
                    );
                    if reply.status.is_redirection() {
                        return Err(call.protocol(format!(
                            "HTTP {} redirect to '{}' refused",
                            reply.status.as_u16(),
                            reply.header(LOCATION.as_str()).unwrap_or_default()
                        )));
                    }
                    match verdict(&reply) {
                        Verdict::Final
                            if reply.status.is_server_error()
                                && !last
                                && server_errors + 1 < SERVER_ERROR_ATTEMPTS
                                && transient(&reply) =>
                        {
                            server_errors += 1;
                            maybe_sent = true;
                            retry_after(&reply)
                        }
                        Verdict::Final => {
                            return Ok(Reply {
                                replayed: maybe_sent,
                                ..reply
                            })
                        }
                        Verdict::Refused if last => {
                            return Err(call.throttled(reply.status, attempt, retry_after(&reply)))
                        }
                        Verdict::Refused => retry_after(&reply),
                        // A 503 with Retry-After refused the request before any work: even a
                        // write that must not repeat may be sent again.
                        Verdict::Unavailable
                            if call.replay == Replay::Once
                                && !last
                                && reply.status == StatusCode::SERVICE_UNAVAILABLE
                                && reply.headers.contains_key(RETRY_AFTER) =>
                        {
                            retry_after(&reply)
                        }
                        Verdict::Unavailable if last || call.replay == Replay::Once => {
                            if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                                return Err(call.throttled(
                                    reply.status,
                                    attempt,
                                    retry_after(&reply),
                                ));
                            }
                            return Ok(Reply {
                                replayed: maybe_sent,
                                ..reply
                            });
                        }
                        Verdict::Unavailable => {
                            maybe_sent = true;
                            retry_after(&reply)
                        }
                    }
                }
                // Stopped before a retry of an attempt that may have been carried out: not
                // "not sent", which would say the write surely did nothing.
                Err(Failure::Refused(e)) if e.is_stopped() && maybe_sent => {
                    return Err(call.transport(format!(
                        "stopped before retrying (after {} attempts; the request may have been carried out)",
                        attempt - 1
                    )));
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::NotSent(message)) => {
                    tracing::debug!(attempt, elapsed_ms, error = %message, "not sent");
                    // A host that does not resolve or refuses connections is not throttling:
                    // it is never shown as a throttling wait. A notification (a write made
                    // once: ticket, note, email, post) gives up after a few quick tries, as
                    // nothing waits on it; reads and removals, which the run needs, ride out
                    // an outage for the whole retry budget.
                    let notification = call.replay == Replay::Once;
                    if last || (notification && attempt >= UNREACHABLE_ATTEMPTS) {
                        return Err(call.error(ErrorKind::Unreachable {
                            message: format!("{message} (after {attempt} attempts)"),
                        }));
                    }
                    let pause = policy.delay(attempt, None);
                    tokio::time::sleep(match notification {
                        true => pause.min(UNREACHABLE_PAUSE),
                        false => pause,
                    })
                    .await;
                    attempt += 1;
                    continue;
                }
                Err(Failure::MaybeSent(message)) => {
                    tracing::debug!(attempt, elapsed_ms, error = %message, "no answer");
                    if last || call.replay == Replay::Once {
                        return Err(call.transport(format!(
                            "{message} (after {attempt} attempts; the request may have been carried out)"
                        )));
                    }
                    maybe_sent = true;
                    None
                }
            };
            let delay = policy.delay(attempt, retry_after);
            self.wait(call.service, delay).await;
            attempt += 1;
        }
    }

    /// Sleeps before a retry; a long wait is posted where progress output can show it.
    async fn wait(&self, service: &'static str, delay: Duration) {
        if delay >= Duration::from_secs(1) {
            tracing::info!(
                service,
                wait_ms = delay.as_millis() as u64,
                "waiting on throttling"
            );
            let until = Instant::now() + delay;
            let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = waits.entry(service).or_insert(until);
            *entry = (*entry).max(until);
        }
        tokio::time::sleep(delay).await;
    }

    /// One request and its whole body, holding the call's budget slots only for that long.
    async fn attempt(&self, call: &Call, request: Request) -> Result<Reply, Failure> {
        let _mailbox = match (&call.tenant, &call.mailbox) {
            (Some(tenant), Some(mailbox)) if call.service == "graph" => Some(
                self.graph_mailboxes
                    .acquire(&format!("{tenant}/{mailbox}"))
                    .await,
            ),
            _ => None,
        };
        let mut permit = match &call.tenant {
            Some(tenant) => Some(
                self.budgets
                    .limit(tenant, call.service, self.settings.budget(call.service))
                    .acquire_by(crate::work::stop_at())
                    .await
                    .ok_or_else(|| Failure::Refused(call.error(ErrorKind::Stopped)))?,
            ),
            None => None,
        };
        if crate::work::past_stop() {
            return Err(Failure::Refused(call.error(ErrorKind::Stopped)));
        }
        let outcome = self.exchange(call, request).await;
        if let Some(permit) = permit.as_mut() {
            permit.feedback(match &outcome {
                Ok(reply) => match verdict(reply) {
                    Verdict::Refused => Feedback::Throttled,
                    Verdict::Unavailable => Feedback::Neutral,
                    Verdict::Final => Feedback::Success,
                },
                Err(_) => Feedback::Neutral,
            });
        }
        outcome
    }

    async fn exchange(&self, call: &Call, request: Request) -> Result<Reply, Failure> {
        let mut response = self.client.execute(request).await.map_err(|e| {
            if e.is_connect() {
                Failure::NotSent(error_chain(&e))
            } else {
                Failure::MaybeSent(error_chain(&e))
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let cap = self.settings.max_body_bytes;
        let too_large = || {
            Failure::Refused(call.protocol(format!(
                "HTTP {}: response body larger than {cap} bytes",
                status.as_u16()
            )))
        };
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::MaybeSent(error_chain(&e)))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            replayed: false,
        })
    }
}

/// `Retry-After` of an answer.
fn retry_after(reply: &Reply) -> Option<Duration> {
    parse_retry_after(&reply.headers, chrono::Utc::now())
}

/// Only https leaves the machine; plain http is for the simulator and tests on loopback.
fn check_scheme(url: &Url, call: &Call) -> Result<(), RemoteError> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => Err(call.invalid(
            "url",
            format!(
                "'{}://{}' is not allowed: only https URLs (http only on loopback)",
                scheme,
                url.host_str().unwrap_or_default()
            ),
        )),
    }
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
    use crate::config::{RetryPolicy, ServiceBudget};
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
    fn backoff_grows_with_jitter_and_retry_after_is_honoured_in_full() {
        let p = policy(100, 1_000, 8);
        for _ in 0..200 {
            assert!(p.delay(1, None) <= Duration::from_millis(100));
            assert!(p.delay(3, None) <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_millis(1_000));
            let honoured = p.delay(1, Some(Duration::from_millis(500)));
            assert!(
                honoured >= Duration::from_millis(500) && honoured <= Duration::from_millis(600)
            );
            // No cap on what the server asked for: Exchange's micro delays can exceed 30 s.
            let long = p.delay(1, Some(Duration::from_secs(90)));
            assert!(long >= Duration::from_secs(90) && long <= Duration::from_millis(90_100));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.delay(4, None)).collect();
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

    #[test]
    fn only_https_leaves_the_machine() {
        let call = Call::new("graph", "test", None);
        let ok = |u: &str| check_scheme(&Url::parse(u).unwrap(), &call).is_ok();
        assert!(ok("https://graph.microsoft.com/v1.0"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(ok("http://[::1]:8080/x"));
        assert!(ok("http://localhost:1/x"));
        assert!(!ok("http://graph.microsoft.com/v1.0"));
        assert!(!ok("http://10.0.0.1/x"));
        assert!(!ok("ftp://127.0.0.1/x"));
    }

    /// A loopback server that answers each connection with the next canned response.
    async fn scripted_server(
        responses: Vec<String>,
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
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (url, served)
    }

    fn answer(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn throttled() -> String {
        answer("429 Too Many Requests", "Retry-After: 0\r\n", "")
    }
    fn unavailable() -> String {
        answer("503 Service Unavailable", "", "")
    }
    fn gateway_timeout() -> String {
        answer("504 Gateway Timeout", "", "")
    }
    fn ok() -> String {
        answer("200 OK", "", "ok")
    }

    fn core(attempts: u32) -> Arc<HttpCore> {
        HttpCore::new(HttpSettings {
            retry: policy(1, 5, attempts),
            ..HttpSettings::default()
        })
        .unwrap()
    }

    fn served(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn throttling_and_gateway_errors_are_retried_until_an_answer() {
        let (url, count) =
            scripted_server(vec![throttled(), unavailable(), gateway_timeout(), ok()]).await;
        let call = Call::new("test", "GET /", Some("tenant"));
        let reply = core(5).send(&call, |c| c.get(&url)).await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
        assert!(
            reply.replayed,
            "a 503/504 attempt may have been carried out"
        );
        assert_eq!(served(&count), 4);
    }

    #[tokio::test]
    async fn a_refused_request_is_not_a_replay() {
        let (url, _) = scripted_server(vec![throttled(), ok()]).await;
        let reply = core(5)
            .send(&Call::new("test", "POST /", None), |c| c.post(&url))
            .await
            .unwrap();
        assert!(!reply.replayed);
    }

    #[tokio::test]
    async fn concurrency_refusals_in_any_status_and_content_type_are_throttling() {
        let text = answer(
            "500 Internal Server Error",
            "Content-Type: text/plain\r\n",
            "You have reached the maximum number of concurrent requests per tenant.",
        );
        let (url, count) = scripted_server(vec![text.clone(), text, ok()]).await;
        let reply = core(5)
            .send(&Call::new("exchange", "Get-Mailbox", Some("t")), |c| {
                c.post(&url)
            })
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(served(&count), 3);
    }

    #[tokio::test]
    async fn throttling_gives_up_after_max_attempts() {
        let (url, count) = scripted_server(vec![throttled(), throttled(), throttled(), ok()]).await;
        let call = Call::new("test", "GET /", None);
        let err = core(3).send(&call, |c| c.get(&url)).await.unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::Throttled { status: 429, attempts: 3, retry_after: Some(d) } if d.is_zero()),
            "{err:?}"
        );
        assert_eq!(served(&count), 3);
    }

    #[tokio::test]
    async fn writes_that_must_not_repeat_are_sent_once_after_a_gateway_error() {
        let (url, count) = scripted_server(vec![gateway_timeout(), ok()]).await;
        let call = Call::new("graph", "sendMail", None).once();
        let reply = core(5).send(&call, |c| c.post(&url)).await.unwrap();
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(served(&count), 1);
        // ... but a 429 (refused before any work) is sent again.
        let (url, count) = scripted_server(vec![throttled(), ok()]).await;
        let reply = core(5).send(&call, |c| c.post(&url)).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(served(&count), 2);
    }

    #[tokio::test]
    async fn other_statuses_go_back_to_the_caller_unretried() {
        let (url, count) = scripted_server(vec![
            answer("404 Not Found", "", ""),
            answer("500 Internal Server Error", "", "{}"),
            ok(),
        ])
        .await;
        let c = core(5);
        let reply = c
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let reply = c
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(served(&count), 2);
    }

    #[tokio::test]
    async fn reads_ask_again_on_transient_server_errors_a_few_times_only() {
        let transient_500 = || answer("500 Internal Server Error", "", "transient");
        let is_transient = |reply: &Reply| reply.body == "transient";
        let call = Call::new("graph", "GET calendarPermissions a@b.c", Some("t"));
        let (url, count) = scripted_server(vec![transient_500(), transient_500(), ok()]).await;
        let reply = core(10)
            .read(&call, &is_transient, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!((reply.status, served(&count)), (StatusCode::OK, 3));

        // Bounded: the fourth transient answer goes back to the caller.
        let (url, count) = scripted_server(vec![transient_500(); 5]).await;
        let reply = core(10)
            .read(&call, &is_transient, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(served(&count), SERVER_ERROR_ATTEMPTS as usize);

        // A permanent 500, and any 500 of a call that is not a read, come back at once.
        let permanent = answer("500 Internal Server Error", "", "permanent");
        let (url, count) = scripted_server(vec![permanent, transient_500(), ok()]).await;
        let c = core(10);
        let reply = c.read(&call, &is_transient, |c| c.get(&url)).await.unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        let reply = c.send(&call, |c| c.get(&url)).await.unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(served(&count), 2);
    }

    #[tokio::test]
    async fn redirects_are_refused_not_followed() {
        let (url, count) = scripted_server(vec![
            answer("302 Found", "Location: https://evil.example/token\r\n", ""),
            ok(),
        ])
        .await;
        let err = core(5)
            .send(&Call::new("login", "token", None), |c| {
                c.post(&url).body("client_secret=s")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::Protocol { message } if message.contains("redirect") && message.contains("evil.example")),
            "{err:?}"
        );
        assert_eq!(served(&count), 1);
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let big = "x".repeat(2048);
        let (url, _) = scripted_server(vec![answer("200 OK", "", &big)]).await;
        let core = HttpCore::new(HttpSettings {
            max_body_bytes: 1024,
            ..HttpSettings::default()
        })
        .unwrap();
        let err = core
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::Protocol { message } if message.contains("larger than 1024 bytes")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn transport_failures_are_retried_then_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let core = core(2);
        let err = core
            .send(&Call::new("test", "GET /", None), |c| c.get(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::Unreachable { message } if message.contains("after 2 attempts")),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert!(core.throttle_waits().is_empty(), "not shown as throttling");
    }

    #[tokio::test]
    async fn a_notification_gives_up_on_an_unreachable_host_after_a_few_quick_tries() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let core = HttpCore::new(HttpSettings {
            retry: policy(5_000, 30_000, 8),
            ..HttpSettings::default()
        })
        .unwrap();
        let started = Instant::now();
        let err = core
            .send(&Call::new("teams", "POST", None).once(), |c| c.post(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::Unreachable { message } if message.contains("after 3 attempts")),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(core.throttle_waits().is_empty(), "not shown as throttling");
    }

    #[tokio::test]
    async fn budgets_are_per_tenant_and_service() {
        let core = HttpCore::new(HttpSettings {
            exchange: ServiceBudget {
                initial: 2,
                ceiling: 2,
            },
            ..HttpSettings::default()
        })
        .unwrap();
        let limit = |tenant: &str, service: &'static str| {
            core.budgets
                .limit(tenant, service, core.settings.budget(service))
        };
        let _a1 = limit("a", "exchange").acquire().await;
        let _a2 = limit("A", "exchange").acquire().await;
        let third =
            tokio::time::timeout(Duration::from_millis(50), limit("a", "exchange").acquire()).await;
        assert!(third.is_err(), "tenant a's Exchange budget is used up");
        let _graph = limit("a", "graph").acquire().await;
        let _b = limit("b", "exchange").acquire().await;
        let learned: Vec<_> = core
            .learned_limits()
            .into_iter()
            .map(|(t, s, l)| (t, s, l.limit))
            .collect();
        assert_eq!(
            learned,
            [
                ("a".to_string(), "exchange", 2),
                ("a".into(), "graph", 16),
                ("b".into(), "exchange", 2)
            ]
        );
    }
}
