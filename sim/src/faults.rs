//! Request accounting and fault injection: per-endpoint counters, in-flight
//! tracking with concurrency caps (429) for all services together, per
//! service and per Graph mailbox, a seeded 503 rate and a per-request latency.
//! These faults apply to Graph and Exchange routes only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::fixture::{SimSettings, ThrottleBody};
use crate::snapshot::Counters;
use crate::wire::throttled;
use crate::{exo, Sim};

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
}

impl Key {
    async fn resolve(self, request: Request) -> (Request, Arrival) {
        let (mut parts, body) = request.into_parts();
        let user = RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "user")
                    .map(|(_, value)| value.to_string())
            });
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
                };
                (Request::from_parts(parts, body), arrival)
            }
            Key::Cmdlet => {
                let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
                let (name, _identity) = exo::cmdlet_label(&bytes);
                let arrival = Arrival {
                    key: format!("exo {name}"),
                    service: Service::Exchange,
                    user,
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
    sim.faults.count(arrival.key);
    next.run(request).await
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
    next.run(request).await
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
        }
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
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, EXCHANGE_CONCURRENCY_TEXT).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(header::RETRY_AFTER, self.retry_after_secs.into());
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
