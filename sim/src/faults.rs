//! Request accounting and fault injection: per-endpoint counters, in-flight
//! tracking with concurrency caps (429) for all services together, per
//! service and per Graph mailbox, a seeded 503 rate and a per-request latency
//! (Graph and Exchange routes only), and scripted one-off faults (every
//! counted route).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::cmdlets;
use crate::directory::{Directory, Scope};
use crate::fixture::{FaultAnswer, ScriptedFault, SimSettings, ThrottleBody};
use crate::snapshot::{Counters, InjectedFault};
use crate::wire::{odata_error, throttled};
use crate::{exo, Sim};

/// Endpoint keys of the `requests` counters, besides `exo <CmdletName>`.
const ENDPOINTS: &[&str] = &[
    "token",
    "graph GET /users/{id}",
    "graph GET /users?$filter",
    "graph GET transitiveMemberOf",
    "graph GET calendars",
    "graph GET calendarPermissions",
    "graph POST calendarPermissions",
    "graph DELETE calendarPermissions",
    "graph POST sendMail",
    "graph GET mailboxSettings",
    "graph POST $batch",
    "graph GET alerts_v2",
    "graph GET riskyUsers",
    "exo InvokeCommand",
    "exo POST $batch",
    "cw POST tickets",
    "cw GET tickets",
    "cw GET ticket",
    "cw POST notes",
    "cw GET notes",
    "cw GET companies",
    "halo POST token",
    "halo POST tickets",
    "halo GET tickets",
    "halo GET ticket",
    "halo POST actions",
    "halo GET actions",
    "halo GET clients",
    "halo GET client",
    "autotask GET zoneInformation",
    "autotask POST tickets",
    "autotask GET tickets query",
    "autotask GET ticket",
    "autotask POST notes",
    "autotask GET notes",
    "autotask GET companies query",
    "autotask GET company",
];

/// Is `name` an endpoint key (case-insensitive)?
pub(crate) fn is_endpoint(name: &str) -> bool {
    let cmdlet = name
        .get(..4)
        .filter(|prefix| prefix.eq_ignore_ascii_case("exo "))
        .map(|_| &name[4..]);
    ENDPOINTS.iter().any(|e| e.eq_ignore_ascii_case(name))
        || crate::identity::ENDPOINTS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(name))
        || cmdlet.is_some_and(|c| cmdlets::canonical_name(c).is_some())
}

/// The text of the plain-text throttling answer a scripted `concurrent_text` fault gives.
const CONCURRENT_TEXT: &str =
    "The request was throttled: you have reached the maximum number of concurrent requests per tenant.";

/// The text of Exchange's plain-text concurrency answer.
pub(crate) const EXCHANGE_CONCURRENCY_TEXT: &str =
    "You have reached the maximum number of concurrent requests per tenant. Please wait and try again.";

/// How a route's requests are named in the `requests` counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    Fixed(&'static str),
    /// `exo <CmdletName>`, read from the InvokeCommand body.
    Cmdlet,
}

/// The service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Graph,
    Exchange,
    Other,
}

/// What the guard knows of a request before it runs.
pub(crate) struct Arrival {
    pub key: String,
    pub service: Service,
    /// The `{user}` path segment of a Graph route.
    pub user: Option<String>,
    /// What a scripted fault's `identity` is matched against: the cmdlet's
    /// `Identity`, the Graph `{user}` segment, the ConnectWise ticket id.
    pub target: Option<String>,
}

impl Key {
    async fn resolve(self, request: Request) -> (Request, Arrival) {
        let (mut parts, body) = request.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok();
        let param = |wanted: &str| {
            params.as_ref().and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == wanted)
                    .map(|(_, value)| value.to_string())
            })
        };
        let user = param("user");
        let target = user.clone().or_else(|| param("id"));
        match self {
            Key::Fixed(key) => {
                let service = if key.starts_with("graph ") {
                    Service::Graph
                } else if key.starts_with("exo ") {
                    Service::Exchange
                } else {
                    Service::Other
                };
                let arrival = Arrival {
                    key: key.to_string(),
                    service,
                    user,
                    target,
                };
                (Request::from_parts(parts, body), arrival)
            }
            Key::Cmdlet => {
                let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
                let (name, identity) = exo::cmdlet_label(&bytes);
                let arrival = Arrival {
                    key: format!("exo {name}"),
                    service: Service::Exchange,
                    user,
                    target: identity,
                };
                (Request::from_parts(parts, Body::from(bytes)), arrival)
            }
        }
    }
}

/// Wrap a route so its requests are counted (no faults).
pub(crate) fn counted(
    sim: &Arc<Sim>,
    key: &'static str,
    route: MethodRouter<Arc<Sim>>,
) -> MethodRouter<Arc<Sim>> {
    route.layer(from_fn_with_state((sim.clone(), Key::Fixed(key)), count))
}

/// Wrap a route so its requests are counted and subject to fault injection.
pub(crate) fn guarded(
    sim: &Arc<Sim>,
    key: Key,
    route: MethodRouter<Arc<Sim>>,
) -> MethodRouter<Arc<Sim>> {
    route.layer(from_fn_with_state((sim.clone(), key), guard))
}

async fn count(
    State((sim, key)): State<(Arc<Sim>, Key)>,
    request: Request,
    next: Next,
) -> Response {
    let (request, arrival) = key.resolve(request).await;
    sim.faults.count(arrival.key.clone());
    scripted(&sim, &arrival, request, next).await
}

async fn guard(
    State((sim, key)): State<(Arc<Sim>, Key)>,
    request: Request,
    next: Next,
) -> Response {
    let (request, arrival) = key.resolve(request).await;
    let faults = &sim.faults;
    faults.count(arrival.key.clone());
    let mailbox = match (arrival.service, &arrival.user) {
        (Service::Graph, Some(user)) => Some(
            sim.directory
                .graph_user(user)
                .map_or_else(|| user.to_lowercase(), |p| p.upn.clone()),
        ),
        _ => None,
    };
    let (_in_flight, admission) = faults.arrive(arrival.service, mailbox);
    if admission == Admission::Throttled {
        return faults.throttled(arrival.service);
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if admission == Admission::Unavailable {
        return throttled(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            faults.retry_after_secs,
        );
    }
    scripted(&sim, &arrival, request, next).await
}

/// Run the request, unless a scripted fault claims it.
async fn scripted(sim: &Sim, arrival: &Arrival, request: Request, next: Next) -> Response {
    let Some(fault) = sim.faults.take(&sim.directory, arrival) else {
        return next.run(request).await;
    };
    let retry_after = sim.faults.retry_after_secs;
    let hang = Duration::from_millis(fault.hang_ms.unwrap_or_default());
    let mut response = match fault.answer {
        FaultAnswer::Error500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        FaultAnswer::Transient500 => transient_error(arrival),
        FaultAnswer::Permanent500 => {
            exo::ExoError::not_found(arrival.target.as_deref().unwrap_or_default()).into_response()
        }
        FaultAnswer::BadGateway => gateway(StatusCode::BAD_GATEWAY),
        FaultAnswer::GatewayTimeout => gateway(StatusCode::GATEWAY_TIMEOUT),
        FaultAnswer::TooManyRequests => throttled(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            retry_after,
        ),
        FaultAnswer::Unavailable => throttled(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            retry_after,
        ),
        FaultAnswer::ConcurrentText => {
            plain_text(StatusCode::INTERNAL_SERVER_ERROR, CONCURRENT_TEXT)
        }
        FaultAnswer::UnavailableAfterWrite => {
            drop(next.run(request).await);
            throttled(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                retry_after,
            )
        }
        FaultAnswer::GatewayTimeoutAfterWrite => {
            drop(next.run(request).await);
            gateway(StatusCode::GATEWAY_TIMEOUT)
        }
        FaultAnswer::Hang => {
            tokio::time::sleep(hang).await;
            next.run(request).await
        }
        FaultAnswer::HangAfterWrite => {
            let response = next.run(request).await;
            tokio::time::sleep(hang).await;
            response
        }
    };
    if let Some(status) = fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        *response.status_mut() = status;
    }
    response
}

/// The service's own 500 for a failure that passes: a cmdlet's transient exception on
/// Exchange, `ErrorInternalServerTransientError` elsewhere (Graph's Outlook-backed routes).
fn transient_error(arrival: &Arrival) -> Response {
    let identity = arrival.target.as_deref().unwrap_or_default();
    match arrival.service {
        Service::Exchange => exo::ExoError::transient(identity).into_response(),
        _ => odata_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ErrorInternalServerTransientError",
            "An internal server error occurred. The operation failed, please try again.",
        ),
    }
}

/// A load balancer's answer: a small HTML page.
fn gateway(status: StatusCode) -> Response {
    let title = match status {
        StatusCode::BAD_GATEWAY => "502 Bad Gateway",
        _ => "504 Gateway Time-out",
    };
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = (status, page).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

fn plain_text(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Admitted,
    /// Over a concurrency cap: 429.
    Throttled,
    /// Drawn by the seeded 503 rate.
    Unavailable,
}

struct Tracking {
    snapshot: Counters,
    in_flight: u64,
    exchange: u64,
    graph: u64,
    /// Graph requests in flight by mailbox (lowercase UPN, else the path segment).
    mailboxes: HashMap<String, u64>,
    rng: fastrand::Rng,
}

pub(crate) struct Faults {
    latency: Duration,
    cap: Option<u64>,
    exchange_cap: Option<u64>,
    graph_cap: Option<u64>,
    mailbox_cap: Option<u64>,
    exchange_body: ThrottleBody,
    rate_503: f64,
    pub retry_after_secs: u64,
    counters: Mutex<Tracking>,
    /// Scripted faults and how many more requests each one claims.
    script: Mutex<Vec<(ScriptedFault, u32)>>,
}

impl Faults {
    pub fn new(settings: &SimSettings) -> Faults {
        Faults {
            latency: Duration::from_millis(settings.latency_ms),
            cap: settings.concurrency_cap.map(u64::from),
            exchange_cap: settings.exchange_concurrency_cap.map(u64::from),
            graph_cap: settings.graph_concurrency_cap.map(u64::from),
            mailbox_cap: settings.graph_mailbox_concurrency_cap.map(u64::from),
            exchange_body: settings.exchange_throttle_body,
            rate_503: settings.rate_503,
            retry_after_secs: settings.retry_after_secs,
            counters: Mutex::new(Tracking {
                snapshot: Counters::default(),
                in_flight: 0,
                exchange: 0,
                graph: 0,
                mailboxes: HashMap::new(),
                rng: fastrand::Rng::with_seed(settings.seed),
            }),
            script: Mutex::new(
                settings
                    .faults
                    .iter()
                    .map(|f| (f.clone(), f.times))
                    .collect(),
            ),
        }
    }

    /// Claim the first scripted fault that matches the request, if any.
    fn take(&self, directory: &Directory, arrival: &Arrival) -> Option<ScriptedFault> {
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        let (fault, remaining) = script.iter_mut().find(|(fault, remaining)| {
            *remaining > 0
                && fault.endpoint.eq_ignore_ascii_case(&arrival.key)
                && match (fault.identity.as_deref(), arrival.target.as_deref()) {
                    (None, _) => true,
                    (Some(wanted), Some(given)) => same_identity(directory, wanted, given),
                    (Some(_), None) => false,
                }
        })?;
        *remaining -= 1;
        let fault = fault.clone();
        drop(script);
        let mut tracking = self.lock();
        tracking.snapshot.injected_faults += 1;
        tracking.snapshot.injected_fault_log.push(InjectedFault {
            endpoint: arrival.key.clone(),
            identity: arrival.target.clone(),
            answer: fault.answer.as_str().to_string(),
        });
        Some(fault)
    }

    fn lock(&self) -> MutexGuard<'_, Tracking> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, key: String) {
        *self.lock().snapshot.requests.entry(key).or_default() += 1;
    }

    /// Register an arriving request. The returned guard keeps it in flight
    /// until the answer is sent (or the request is dropped).
    fn arrive(&self, service: Service, mailbox: Option<String>) -> (InFlight<'_>, Admission) {
        let mut tracking = self.lock();
        let Tracking {
            snapshot,
            in_flight,
            exchange,
            graph,
            mailboxes,
            rng,
        } = &mut *tracking;
        let over = |count: u64, cap: Option<u64>| cap.is_some_and(|cap| count > cap);
        *in_flight += 1;
        snapshot.peak_in_flight = snapshot.peak_in_flight.max(*in_flight);
        let mut throttled = over(*in_flight, self.cap);
        match service {
            Service::Exchange => {
                *exchange += 1;
                snapshot.peak_in_flight_exchange = snapshot.peak_in_flight_exchange.max(*exchange);
                throttled |= over(*exchange, self.exchange_cap);
            }
            Service::Graph => {
                *graph += 1;
                snapshot.peak_in_flight_graph = snapshot.peak_in_flight_graph.max(*graph);
                throttled |= over(*graph, self.graph_cap);
            }
            Service::Other => {}
        }
        if let Some(mailbox) = &mailbox {
            let count = mailboxes.entry(mailbox.clone()).or_default();
            *count += 1;
            snapshot.peak_in_flight_graph_mailbox =
                snapshot.peak_in_flight_graph_mailbox.max(*count);
            throttled |= over(*count, self.mailbox_cap);
        }
        let admission = if throttled {
            snapshot.throttled_429 += 1;
            match service {
                Service::Exchange => snapshot.throttled_429_exchange += 1,
                Service::Graph => snapshot.throttled_429_graph += 1,
                Service::Other => {}
            }
            Admission::Throttled
        } else if rng.f64() < self.rate_503 {
            snapshot.injected_503 += 1;
            Admission::Unavailable
        } else {
            Admission::Admitted
        };
        drop(tracking);
        let guard = InFlight {
            faults: self,
            service,
            mailbox,
        };
        (guard, admission)
    }

    /// The 429 of a concurrency cap.
    fn throttled(&self, service: Service) -> Response {
        if service == Service::Exchange && self.exchange_body == ThrottleBody::Text {
            let mut response = plain_text(StatusCode::TOO_MANY_REQUESTS, EXCHANGE_CONCURRENCY_TEXT);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, self.retry_after_secs.into());
            return response;
        }
        throttled(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            self.retry_after_secs,
        )
    }

    pub fn snapshot(&self) -> Counters {
        self.lock().snapshot.clone()
    }

    /// Exchange and Graph requests in flight now.
    pub fn in_flight(&self) -> (u64, u64) {
        let tracking = self.lock();
        (tracking.exchange, tracking.graph)
    }

    /// Continues counting from saved counters (a simulator restarted from a saved state).
    pub fn restore(&self, counters: Counters) {
        self.lock().snapshot = counters;
    }
}

struct InFlight<'a> {
    faults: &'a Faults,
    service: Service,
    mailbox: Option<String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut tracking = self.faults.lock();
        tracking.in_flight -= 1;
        match self.service {
            Service::Exchange => tracking.exchange -= 1,
            Service::Graph => tracking.graph -= 1,
            Service::Other => {}
        }
        if let Some(mailbox) = &self.mailbox {
            if let Some(count) = tracking.mailboxes.get_mut(mailbox) {
                *count -= 1;
                if *count == 0 {
                    tracking.mailboxes.remove(mailbox);
                }
            }
        }
    }
}

/// Do two identity strings designate the same object (or are they equal)?
/// A folder identity `<mailbox>:\<folder>` counts as its mailbox.
fn same_identity(directory: &Directory, wanted: &str, given: &str) -> bool {
    // A fault for one folder (`bob@x.com:\Inbox\Projects`) matches that folder only.
    if wanted.contains(":\\") {
        return wanted.trim().eq_ignore_ascii_case(given.trim());
    }
    let given = given.split(":\\").next().unwrap_or(given);
    if wanted.trim().eq_ignore_ascii_case(given.trim()) {
        return true;
    }
    match (
        directory.resolve(wanted, Scope::All),
        directory.resolve(given, Scope::All),
    ) {
        (Ok(a), Ok(b)) => a.id() == b.id(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_endpoint;

    #[test]
    fn endpoint_keys() {
        for key in [
            "exo Remove-MailboxPermission",
            "EXO get-mailbox",
            "graph DELETE calendarPermissions",
            "cw POST notes",
            "token",
        ] {
            assert!(is_endpoint(key), "{key}");
        }
        for key in [
            "exo Remove-Mailbox",
            "graph GET calendar",
            "Remove-MailboxPermission",
        ] {
            assert!(!is_endpoint(key), "{key}");
        }
    }
}
