//! Request accounting and fault injection: per-endpoint counters, in-flight
//! tracking with an optional concurrency cap (429), a seeded 503 rate and a
//! per-request latency. Faults apply to Graph and Exchange routes only.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::MethodRouter;

use crate::fixture::SimSettings;
use crate::snapshot::Counters;
use crate::wire::throttled;
use crate::{exo, Sim};

/// How a route's requests are named in the `requests` counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    Fixed(&'static str),
    /// `exo <CmdletName>`, read from the InvokeCommand body.
    Cmdlet,
}

impl Key {
    async fn resolve(self, request: Request) -> (Request, String) {
        match self {
            Key::Fixed(key) => (request, key.to_string()),
            Key::Cmdlet => {
                let (parts, body) = request.into_parts();
                let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
                let key = format!("exo {}", exo::cmdlet_label(&bytes));
                (Request::from_parts(parts, Body::from(bytes)), key)
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
    let (request, key) = key.resolve(request).await;
    sim.faults.count(key);
    next.run(request).await
}

async fn guard(
    State((sim, key)): State<(Arc<Sim>, Key)>,
    request: Request,
    next: Next,
) -> Response {
    let (request, key) = key.resolve(request).await;
    let faults = &sim.faults;
    faults.count(key);
    let (_in_flight, admission) = faults.arrive();
    if admission == Admission::Throttled {
        return throttled(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            faults.retry_after_secs,
        );
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
    /// Over the concurrency cap: 429.
    Throttled,
    /// Drawn by the seeded 503 rate.
    Unavailable,
}

struct Tracking {
    snapshot: Counters,
    in_flight: u64,
    rng: fastrand::Rng,
}

pub(crate) struct Faults {
    latency: Duration,
    cap: Option<u64>,
    rate_503: f64,
    retry_after_secs: u64,
    counters: Mutex<Tracking>,
}

impl Faults {
    pub fn new(settings: &SimSettings) -> Faults {
        Faults {
            latency: Duration::from_millis(settings.latency_ms),
            cap: settings.concurrency_cap.map(u64::from),
            rate_503: settings.rate_503,
            retry_after_secs: settings.retry_after_secs,
            counters: Mutex::new(Tracking {
                snapshot: Counters::default(),
                in_flight: 0,
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
    fn arrive(&self) -> (InFlight<'_>, Admission) {
        let mut counters = self.lock();
        let Tracking {
            snapshot,
            in_flight,
            rng,
        } = &mut *counters;
        *in_flight += 1;
        snapshot.peak_in_flight = snapshot.peak_in_flight.max(*in_flight);
        let admission = if self.cap.is_some_and(|cap| *in_flight > cap) {
            snapshot.throttled_429 += 1;
            Admission::Throttled
        } else if rng.f64() < self.rate_503 {
            snapshot.injected_503 += 1;
            Admission::Unavailable
        } else {
            Admission::Admitted
        };
        drop(counters);
        (InFlight(self), admission)
    }

    pub fn snapshot(&self) -> Counters {
        self.lock().snapshot.clone()
    }
}

struct InFlight<'a>(&'a Faults);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}
