//! Concurrency budgets learnt from the tenant: one adaptive limit per (tenant, service), and
//! Graph's fixed limit per mailbox.
//!
//! The limit starts at the budget's `initial` value and grows by half a request per success
//! (×1.5 per round trip: faster, the first overshoot is a whole round of 429s). A throttling
//! answer marks the level just below what was in flight as the service's known limit and cuts
//! the limit to 90 % of it; from there it grows fast again up to the known limit and, past it,
//! by one request per hundred round trips, probing whether the service allows more (each probe
//! throttled at the level already known makes the next one come twice as late, up to eight
//! times). Only one cut per round of requests: answers to requests sent before the last cut
//! say nothing about the new limit. So a tenant whose limit nobody knows is used close to its
//! limit with few 429s, and a limit that drops (another client, a busy hour) is followed down.

use crate::config::ServiceBudget;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Cut applied on a throttling answer, relative to the level found to be too much.
const DECREASE: f64 = 0.9;
/// Past the known limit, one more request per this many round trips (ten seconds at 100 ms a
/// call): each probe that finds the limit where it was costs throttled calls, and each of them
/// waits its `Retry-After`.
const PROBE_ROUNDS: f64 = 100.0;
/// At most this many doublings of the probing interval after probes that failed.
const MAX_PROBE_BACKOFF: u32 = 3;

#[derive(Debug)]
struct LimitState {
    limit: f64,
    in_flight: usize,
    /// The most the service took without throttling, as last measured; `None` until the first
    /// throttling answer.
    known: Option<f64>,
    /// Probes past the known limit that were throttled at about the same level, one after
    /// another: each makes the next probe come twice as late (at most [`MAX_PROBE_BACKOFF`]
    /// doublings), so a service whose limit holds is not asked again and again.
    failed_probes: u32,
    /// Incremented by every cut; a permit remembers the epoch it was taken in.
    epoch: u64,
    throttled: u64,
    peak_in_flight: usize,
    /// Calls waiting for a slot now.
    waiting: usize,
    /// The most calls in flight and waiting at once since [`AdaptiveLimit::take_demand`] last
    /// asked.
    peak_demand: usize,
    /// Moving average of answered calls' durations.
    latency: Option<Duration>,
    ceiling: f64,
    initial: f64,
    /// Its permits are leased from a budget shared with other processes, which learns the
    /// tenant's limit: throttling cuts this process's limit but teaches it no known level of
    /// its own (what it holds is only its part of the tenant's).
    leased: bool,
}

/// One adaptive limit.
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<LimitState>,
    slot_freed: Notify,
}

/// What a call's answer says about the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Answered (whatever the status): the service had room for it.
    Success,
    /// 429 or "too many concurrent requests".
    Throttled,
    /// Nothing learnt (transport failure, gateway error).
    Neutral,
}

/// A slot of an [`AdaptiveLimit`]; report the answer with [`LimitPermit::feedback`].
#[derive(Debug)]
pub struct LimitPermit {
    limit: Arc<AdaptiveLimit>,
    epoch: u64,
    in_flight_at_start: usize,
    feedback: Feedback,
    started: Instant,
}

impl AdaptiveLimit {
    pub fn new(budget: ServiceBudget) -> Arc<AdaptiveLimit> {
        let ceiling = budget.ceiling.max(1) as f64;
        let initial = (budget.initial.max(1) as f64).min(ceiling);
        Arc::new(AdaptiveLimit {
            state: Mutex::new(LimitState {
                limit: initial,
                initial,
                in_flight: 0,
                known: None,
                failed_probes: 0,
                epoch: 0,
                throttled: 0,
                peak_in_flight: 0,
                waiting: 0,
                peak_demand: 0,
                latency: None,
                ceiling,
                leased: false,
            }),
            slot_freed: Notify::new(),
        })
    }

    /// Permits leased from the tenant's budget shared by every invocation: this process uses
    /// at most `permits`. The shared budget learns the tenant's limit, so what this process
    /// learnt under an earlier lease (its part of it then) is forgotten; it grows from where it
    /// was (its initial limit at least) as usual, a few round trips, so a budget that has not
    /// met the service's limit does not start with a burst of 429s.
    pub fn lease(&self, permits: usize) {
        let permits = permits.max(1) as f64;
        {
            let mut s = self.lock();
            s.ceiling = permits;
            s.leased = true;
            s.known = None;
            s.failed_probes = 0;
            s.limit = s.limit.max(s.initial).min(permits);
            // What this lease teaches is counted from here.
            s.throttled = 0;
            s.peak_in_flight = s.in_flight;
        }
        self.slot_freed.notify_waiters();
    }

    /// Where a limit that has learnt nothing yet starts, from what an earlier read of the same
    /// tenant learnt (a permission-index sweep's limits, for a contain run): a run that must be
    /// fast does not spend its first round trips climbing to a level known to work. A limit
    /// already in use keeps what it learnt; the service's answers still move it either way.
    pub fn seed(&self, limit: usize) {
        {
            let mut s = self.lock();
            let untouched = s.known.is_none() && s.throttled == 0 && s.limit == s.initial;
            if !untouched {
                return;
            }
            s.limit = (limit.max(1) as f64).min(s.ceiling);
        }
        self.slot_freed.notify_waiters();
    }

    /// The lease changed size while held (others wait, it gave back what it did not use, or
    /// permits came free): the limit is what it holds now. Calls already in flight above a
    /// smaller limit finish; no new one starts until they fit (none while it holds no permit).
    pub fn resize(&self, permits: usize) {
        let permits = permits as f64;
        {
            let mut s = self.lock();
            // Permits that came free were in use a moment ago: the tenant takes them at once.
            s.limit = match s.leased && permits > s.ceiling {
                true => permits,
                false => s.limit.min(permits),
            };
            s.ceiling = permits;
        }
        self.slot_freed.notify_waiters();
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most calls this process had in flight and waiting at once since it last asked:
    /// what it wanted of the service (a leased process gives back what it did not).
    pub fn take_demand(&self) -> usize {
        let mut s = self.lock();
        let now = s.in_flight + s.waiting;
        std::mem::replace(&mut s.peak_demand, now).max(now)
    }

    fn lock(&self) -> MutexGuard<'_, LimitState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot under the current limit.
    pub async fn acquire(self: &Arc<Self>) -> LimitPermit {
        let mut queued = Queued::join(self);
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                // A leased process may hold no permit (it gave them back): its calls wait.
                let slots = match s.leased {
                    true => s.limit.floor(),
                    false => s.limit.floor().max(1.0),
                };
                if (s.in_flight as f64) < slots {
                    queued.leave(&mut s);
                    s.in_flight += 1;
                    s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
                    return LimitPermit {
                        limit: self.clone(),
                        epoch: s.epoch,
                        in_flight_at_start: s.in_flight,
                        feedback: Feedback::Neutral,
                        started: Instant::now(),
                    };
                }
            }
            freed.await;
        }
    }

    /// Waits for a slot until `stop` (if there is one); `None` when the time came first (a
    /// leased process that gave back its permits waits for the budget to give it some, and
    /// never past its time).
    pub async fn acquire_by(self: &Arc<Self>, stop: Option<Instant>) -> Option<LimitPermit> {
        match stop {
            Some(stop) => tokio::time::timeout_at(stop.into(), self.acquire())
                .await
                .ok(),
            None => Some(self.acquire().await),
        }
    }

    /// The limit as it stands (what was learnt so far).
    pub fn current(&self) -> usize {
        self.lock().limit.floor().max(1.0) as usize
    }

    pub fn snapshot(&self) -> LimitSnapshot {
        let s = self.lock();
        LimitSnapshot {
            limit: s.limit.floor().max(1.0) as usize,
            throttled: s.throttled,
            peak_in_flight: s.peak_in_flight,
            latency: s.latency,
        }
    }

    fn release(
        &self,
        permit_epoch: u64,
        in_flight_at_start: usize,
        feedback: Feedback,
        took: Duration,
    ) {
        let grown = {
            let mut s = self.lock();
            s.in_flight -= 1;
            let before = s.limit.floor();
            match feedback {
                Feedback::Success => {
                    s.latency = Some(match s.latency {
                        Some(avg) => avg.mul_f64(0.8) + took.mul_f64(0.2),
                        None => took,
                    });
                    let step = match s.known {
                        Some(known) if s.limit >= known => {
                            let backoff = f64::from(1u32 << s.failed_probes.min(MAX_PROBE_BACKOFF));
                            1.0 / (s.limit * PROBE_ROUNDS * backoff)
                        }
                        _ => 0.5,
                    };
                    // A probe got through: the service allows more than was known.
                    if s.known.is_some_and(|known| s.limit >= known + 2.0) {
                        s.failed_probes = 0;
                    }
                    s.limit = (s.limit + step).min(s.ceiling);
                }
                Feedback::Throttled => {
                    s.throttled += 1;
                    if permit_epoch == s.epoch {
                        // What was in flight around this request, this one included, was
                        // too much: one less was the most the service took.
                        let around = in_flight_at_start.max(s.in_flight + 1) as f64;
                        let known = (around.min(s.limit.floor() + 1.0) - 1.0).max(1.0);
                        // Throttled at about the level known before: the probe failed.
                        s.failed_probes = match s.known {
                            Some(before) if (known - before).abs() <= 1.0 => s.failed_probes + 1,
                            _ => 0,
                        };
                        if !s.leased {
                            s.known = Some(known);
                        }
                        s.limit = (known * DECREASE).max(1.0);
                        s.epoch += 1;
                    }
                }
                Feedback::Neutral => {}
            }
            (s.limit.floor() - before).max(0.0) as usize
        };
        for _ in 0..=grown {
            self.slot_freed.notify_one();
        }
    }
}

/// A call counted as waiting for a slot until it gets one or gives up (its future dropped).
struct Queued<'a> {
    limit: &'a AdaptiveLimit,
    waiting: bool,
}

impl<'a> Queued<'a> {
    fn join(limit: &'a AdaptiveLimit) -> Queued<'a> {
        let mut s = limit.lock();
        s.waiting += 1;
        s.peak_demand = s.peak_demand.max(s.in_flight + s.waiting);
        Queued {
            limit,
            waiting: true,
        }
    }

    fn leave(&mut self, s: &mut LimitState) {
        if std::mem::take(&mut self.waiting) {
            s.waiting -= 1;
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.waiting {
            self.limit.lock().waiting -= 1;
        }
    }
}

/// What a limit has learnt, for benches and progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSnapshot {
    pub limit: usize,
    pub throttled: u64,
    pub peak_in_flight: usize,
    /// How long an answered call takes, on average (`None` before the first).
    pub latency: Option<Duration>,
}

impl LimitPermit {
    pub fn feedback(&mut self, feedback: Feedback) {
        self.feedback = feedback;
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        self.limit.release(
            self.epoch,
            self.in_flight_at_start,
            self.feedback,
            self.started.elapsed(),
        );
    }
}

/// Fixed-size limits keyed by name (Graph's per-mailbox limit); an idle key is forgotten, so
/// the map holds only mailboxes with calls in flight.
#[derive(Debug)]
pub struct KeyedLimits {
    size: usize,
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A slot of one key of a [`KeyedLimits`].
#[derive(Debug)]
pub struct KeyedPermit {
    key: String,
    semaphore: Arc<Semaphore>,
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl KeyedLimits {
    pub fn new(size: usize) -> KeyedLimits {
        KeyedLimits {
            size: size.max(1),
            slots: Arc::default(),
        }
    }

    pub async fn acquire(&self, key: &str) -> KeyedPermit {
        let key = key.to_ascii_lowercase();
        let semaphore = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.size)))
            .clone();
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = semaphore.clone().acquire_owned().await.ok();
        KeyedPermit {
            key,
            semaphore,
            slots: self.slots.clone(),
            permit,
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyedPermit {
    fn drop(&mut self) {
        self.permit.take();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this permit hold the semaphore: nobody else waits on the key.
        if Arc::strong_count(&self.semaphore) == 2 {
            slots.remove(&self.key);
        }
    }
}

/// The limits of every (tenant, service) this process talks to.
#[derive(Debug, Default)]
pub struct Budgets {
    limits: Mutex<HashMap<(String, &'static str), Arc<AdaptiveLimit>>>,
}

impl Budgets {
    pub fn limit(
        &self,
        tenant: &str,
        service: &'static str,
        budget: ServiceBudget,
    ) -> Arc<AdaptiveLimit> {
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((tenant.to_ascii_lowercase(), service))
            .or_insert_with(|| AdaptiveLimit::new(budget))
            .clone()
    }

    /// Holds the limit of `(tenant, service)` to `permits` leased from the shared budget.
    pub fn lease(
        &self,
        tenant: &str,
        service: &'static str,
        budget: ServiceBudget,
        permits: usize,
    ) {
        self.limit(tenant, service, budget).lease(permits);
    }

    /// Starts the limit of `(tenant, service)` at `limit` if it has learnt nothing yet.
    pub fn seed(&self, tenant: &str, service: &'static str, budget: ServiceBudget, limit: usize) {
        self.limit(tenant, service, budget).seed(limit);
    }

    /// The limit of `(tenant, service)`, if it was used.
    pub fn existing(&self, tenant: &str, service: &'static str) -> Option<Arc<AdaptiveLimit>> {
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.to_ascii_lowercase(), service))
            .cloned()
    }

    /// What the limit of `(tenant, service)` has learnt, if it was used.
    pub fn snapshot(&self, tenant: &str, service: &'static str) -> Option<LimitSnapshot> {
        self.existing(tenant, service).map(|l| l.snapshot())
    }

    /// `(tenant, service, what was learnt)` for every limit in use, sorted.
    pub fn learned(&self) -> Vec<(String, &'static str, LimitSnapshot)> {
        let mut out: Vec<_> = self
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((tenant, service), limit)| (tenant.clone(), *service, limit.snapshot()))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(initial: usize, ceiling: usize) -> ServiceBudget {
        ServiceBudget { initial, ceiling }
    }

    #[tokio::test]
    async fn grows_on_success_up_to_the_ceiling() {
        let limit = AdaptiveLimit::new(budget(2, 5));
        for _ in 0..40 {
            let mut p = limit.acquire().await;
            p.feedback(Feedback::Success);
        }
        assert_eq!(limit.current(), 5);
    }

    #[tokio::test]
    async fn a_seed_starts_an_untouched_limit_below_its_ceiling_and_never_moves_a_used_one() {
        let limit = AdaptiveLimit::new(budget(8, 128));
        limit.seed(20);
        assert_eq!(limit.current(), 20, "starts where the sweep left it");
        let high = AdaptiveLimit::new(budget(8, 16));
        high.seed(40);
        assert_eq!(high.current(), 16, "never above the ceiling");
        let used = AdaptiveLimit::new(budget(8, 128));
        let mut p = used.acquire().await;
        p.feedback(Feedback::Throttled);
        drop(p);
        let before = used.current();
        used.seed(60);
        assert_eq!(used.current(), before, "what it learnt stands");
    }

    #[tokio::test]
    async fn a_throttled_round_cuts_the_limit_once() {
        let limit = AdaptiveLimit::new(budget(20, 100));
        let mut permits = Vec::new();
        for _ in 0..20 {
            permits.push(limit.acquire().await);
        }
        // Every request of the round is throttled: one cut, not twenty. Twenty was too much,
        // so nineteen is the known limit and the new limit 90 % of it.
        for mut p in permits {
            p.feedback(Feedback::Throttled);
        }
        assert_eq!(limit.current(), 17);
        let s = limit.snapshot();
        assert_eq!((s.throttled, s.peak_in_flight), (20, 20));
    }

    #[tokio::test]
    async fn after_a_cut_it_climbs_back_fast_to_the_known_limit_then_probes_slowly() {
        let limit = AdaptiveLimit::new(budget(20, 100));
        let mut round = Vec::new();
        for _ in 0..20 {
            round.push(limit.acquire().await);
        }
        round[0].feedback(Feedback::Throttled);
        drop(round);
        let cut = limit.current();
        assert_eq!(cut, 17, "90 % of the 19 the service took");
        for _ in 0..10 {
            let mut p = limit.acquire().await;
            p.feedback(Feedback::Success);
        }
        let known = limit.snapshot().limit;
        assert!(
            known >= 19,
            "back near the known limit after a few successes: {known}"
        );
        for _ in 0..100 {
            let mut p = limit.acquire().await;
            p.feedback(Feedback::Success);
        }
        assert!(
            limit.current() <= 21,
            "slow past the known limit: {}",
            limit.current()
        );
    }

    #[tokio::test]
    async fn a_leased_limit_leaves_the_known_level_to_the_shared_budget() {
        let limit = AdaptiveLimit::new(budget(4, 32));
        limit.lease(4);
        throttle_at(&limit, 4).await;
        assert_eq!(
            limit.current(),
            2,
            "throttled: cut to 90 % of the 3 it took"
        );
        // Its 4 were only its part of the tenant's budget: no known level holds it back, so
        // it climbs at the fast rate up to what it holds.
        assert!(successes_to(&limit, 4).await <= 6);
        // A bigger lease later: it grows into it without a level from the old part.
        limit.lease(20);
        assert!(successes_to(&limit, 20).await <= 40);
        assert_eq!(limit.current(), 20, "never past the lease");
    }

    /// `n` requests in flight, the first of them throttled.
    async fn throttle_at(limit: &Arc<AdaptiveLimit>, n: usize) {
        let mut round = Vec::new();
        for _ in 0..n {
            round.push(limit.acquire().await);
        }
        round[0].feedback(Feedback::Throttled);
    }

    /// Successes until the limit reaches `target`.
    async fn successes_to(limit: &Arc<AdaptiveLimit>, target: usize) -> usize {
        let mut n = 0;
        while limit.current() < target {
            let mut p = limit.acquire().await;
            p.feedback(Feedback::Success);
            n += 1;
        }
        n
    }

    #[tokio::test]
    async fn a_limit_that_holds_is_probed_less_and_less_often() {
        let limit = AdaptiveLimit::new(budget(20, 100));
        throttle_at(&limit, 20).await;
        let first = successes_to(&limit, 20).await;
        // The probe past the known limit is throttled at the same level, twice.
        throttle_at(&limit, 20).await;
        let second = successes_to(&limit, 20).await;
        throttle_at(&limit, 20).await;
        let third = successes_to(&limit, 20).await;
        assert!(
            second > first * 3 / 2 && third > second * 3 / 2,
            "probing slows down: {first}, {second}, {third}"
        );
    }

    #[tokio::test]
    async fn waiters_get_slots_as_they_free_up() {
        let limit = AdaptiveLimit::new(budget(1, 1));
        let first = limit.acquire().await;
        let l2 = limit.clone();
        let second = tokio::spawn(async move { l2.acquire().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "the limit is 1");
        drop(first);
        let p = tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .expect("second gets the freed slot")
            .unwrap();
        drop(p);
    }

    #[tokio::test]
    async fn a_leased_process_that_gave_back_its_permits_waits_for_more_but_not_past_its_time() {
        let limit = AdaptiveLimit::new(budget(8, 32));
        limit.lease(4);
        limit.resize(0);
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(
            limit.acquire_by(Some(soon)).await.is_none(),
            "it holds no permit"
        );
        assert_eq!(limit.take_demand(), 1, "the call waited");
        assert_eq!(limit.take_demand(), 0, "and waits no more");
        // Given permits again, it uses them at once (they were in use a moment ago).
        limit.resize(3);
        let later = Instant::now() + Duration::from_secs(1);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limit.acquire_by(Some(later)).await.expect("a permit"));
        }
        assert_eq!((limit.in_flight(), limit.take_demand()), (3, 3));
    }

    #[tokio::test]
    async fn keyed_limits_forget_idle_keys() {
        let limits = KeyedLimits::new(2);
        let a1 = limits.acquire("a@x").await;
        let _a2 = limits.acquire("A@X").await;
        let third = tokio::time::timeout(Duration::from_millis(30), limits.acquire("a@x")).await;
        assert!(third.is_err(), "a@x is at its limit");
        let b = limits.acquire("b@x").await;
        drop(b);
        assert_eq!(limits.tracked_keys(), 1);
        drop(a1);
        drop(_a2);
        assert_eq!(limits.tracked_keys(), 0);
    }
}
