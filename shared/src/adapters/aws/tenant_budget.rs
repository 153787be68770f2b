//! One tenant's budget across every invocation: a lease semaphore per (tenant, service) in
//! the runs table. The item holds the limit learnt for the tenant and the permits each live
//! invocation leased; a lease expires with its invocation, so a dead invocation's permits come
//! back.
//!
//! The limit is learnt once for the tenant, not once per invocation. A new budget starts at the
//! service's initial limit. While the whole budget is leased and used without throttling (others
//! waiting for permits or not) it grows by half every second until the service first throttles
//! it, and then comes back to the level before that step. From then on a throttling cuts it to
//! 90 %; one less than the limit throttled is the known level, which the limit climbs
//! back to by one a second, and past it the limit grows by one every [`PROBE_EVERY_MS`], never
//! above the ceiling. A holder that saw throttling reports it; one overshoot is one cut, however
//! many holders saw it (one cut per [`CUT_COOLDOWN_MS`]), and every holder comes down to its
//! part of the new limit at its next look.
//!
//! Holders keep the budget in use: each gives back what its calls in flight and waiting do not
//! use, takes free permits when it has calls waiting, and when none is free waits for its fair
//! share (as water fills: what small holders hold stays theirs), so the others come down.
//!
//! (`MaximumConcurrency` on an event source is per function across all tenants, so it cannot
//! be a tenant's budget.)

use super::dynamo::is_condition_failure;
use crate::config::RetryPolicy;
use crate::error::StoreError;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_attribute_value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What an invocation asks of a budget.
#[derive(Debug, Clone)]
pub struct LeaseTerms<'a> {
    pub holder: &'a str,
    /// The most permits it can use.
    pub want: usize,
    /// Where a budget nobody used yet starts.
    pub initial: usize,
    /// The service's ceiling: the budget never grows past it.
    pub ceiling: usize,
    /// The lease ends this long from now unless returned first.
    pub lease_for: Duration,
    /// Waits for a free permit until then.
    pub give_up: Instant,
}

#[derive(Debug, Serialize, Deserialize)]
struct BudgetRow {
    pk: String,
    sk: String,
    limit: usize,
    #[serde(default)]
    version: u64,
    /// Holder → (permits, lease end in epoch milliseconds).
    #[serde(default)]
    leases: BTreeMap<String, (usize, i64)>,
    /// Invocations waiting for permits → until when their wish stands (epoch milliseconds).
    /// Holders shrink to a fair share while anyone waits.
    #[serde(default)]
    waiting: BTreeMap<String, i64>,
    /// One less than the limit when the service last throttled (none: it never did).
    #[serde(default)]
    known: Option<usize>,
    /// When the limit was last cut, and last grown (epoch milliseconds).
    #[serde(default)]
    cut_at: i64,
    #[serde(default)]
    grown_at: i64,
}

/// What a holder saw since it last looked at the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The service throttled one of its calls.
    pub throttled: bool,
    /// Its calls in flight filled what it holds.
    pub full: bool,
}

/// After a cut, throttling is news only this much later: the holders need a look (four a
/// second) to come down, and answers to calls sent before say nothing about the new limit.
pub const CUT_COOLDOWN_MS: i64 = 2_000;
/// Until the service first throttles, and below the known level, the limit grows this often:
/// by half until the first throttling, by one below the known level.
const GROW_EVERY_MS: i64 = 1_000;
const SLOW_START: f64 = 1.5;
/// At or past the known level, one more is tried this often: each probe that finds the limit
/// where it was costs a round of throttled calls and a cut.
pub const PROBE_EVERY_MS: i64 = 30_000;
const DECREASE: f64 = 0.9;

impl BudgetRow {
    fn fresh(tenant: &str, service: &str, initial: usize, ceiling: usize) -> BudgetRow {
        BudgetRow {
            pk: key(tenant, service),
            sk: "BUDGET".into(),
            limit: initial.clamp(1, ceiling.max(1)),
            version: 0,
            leases: BTreeMap::new(),
            waiting: BTreeMap::new(),
            known: None,
            cut_at: 0,
            grown_at: 0,
        }
    }

    fn held(&self) -> usize {
        self.leases.values().map(|(n, _)| n).sum()
    }

    /// Learns from what a holder saw: throttling cuts the limit (once per cooldown), a full
    /// budget used without throttling grows it, while others wait too (they want more than the
    /// budget has). Whether the limit changed.
    fn learn(&mut self, seen: Seen, now: i64, ceiling: usize) -> bool {
        if seen.throttled {
            if now - self.cut_at < CUT_COOLDOWN_MS {
                return false;
            }
            // From the limit, not from what is leased now: holders give back what they do not
            // use, and the answer may be to a call sent when more was in flight.
            let was = self.limit.max(1);
            let cut = match self.known {
                // The first throttling ends the slow start: back to the step before.
                None => was as f64 / SLOW_START,
                Some(_) => was as f64 * DECREASE,
            }
            .floor() as usize;
            self.limit = cut.max(1);
            // One less than the limit throttled is the most the service may take: the limit
            // climbs back to it a permit a second, and probes past it now and then.
            self.known = Some((was - 1).max(self.limit));
            self.cut_at = now;
            return true;
        }
        let full = seen.full && self.held() >= self.limit;
        if !full || self.limit >= ceiling.max(1) {
            return false;
        }
        let (every, to) = match self.known {
            None => (
                GROW_EVERY_MS,
                (self.limit as f64 * SLOW_START).ceil() as usize,
            ),
            Some(known) if self.limit >= known => (PROBE_EVERY_MS, self.limit + 1),
            Some(_) => (GROW_EVERY_MS, self.limit + 1),
        };
        if now - self.cut_at.max(self.grown_at) < every {
            return false;
        }
        self.limit = to.clamp(self.limit + 1, ceiling.max(1));
        self.grown_at = now;
        true
    }

    /// Forgets expired leases and wishes; holds the limit to the ceiling.
    fn prune(&mut self, now: i64, ceiling: usize) {
        self.leases.retain(|_, (_, until)| *until > now);
        self.waiting.retain(|_, until| *until > now);
        self.limit = self.limit.clamp(1, ceiling.max(1));
    }

    fn held_by_others(&self, holder: &str) -> usize {
        self.leases
            .iter()
            .filter(|(h, _)| *h != holder)
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// `holder`'s fair share, as water fills: the limit split between every holder and waiter,
    /// itself included, where a holder that holds less than an equal part and does not wait for
    /// more keeps what it holds and the rest is split among the others.
    fn fair_share(&self, holder: &str) -> usize {
        let waiting = |h: &String| h != holder && self.waiting.contains_key(h);
        let hungry = 1 + self.waiting.keys().filter(|h| *h != holder).count();
        let mut content: Vec<usize> = self
            .leases
            .iter()
            .filter(|(h, _)| *h != holder && !waiting(h))
            .map(|(_, (n, _))| *n)
            .collect();
        content.sort_unstable();
        let mut pool = self.limit;
        let mut parties = hungry + content.len();
        for n in content {
            if n * parties >= pool {
                break;
            }
            pool -= n;
            parties -= 1;
        }
        pool.div_ceil(parties).max(1)
    }

    /// What `holder` should do with its lease now that it uses `want` (see
    /// [`TenantBudgets::rebalance`]); a growth or a wish is recorded in the row, and whether
    /// the row changed comes back with the verdict.
    fn settle(&mut self, holder: &str, want: usize, now: i64) -> (Rebalance, bool) {
        let Some(&(held, until)) = self.leases.get(holder) else {
            return (Rebalance::Gone, false);
        };
        let share = self.fair_share(holder);
        let others_wait = self.waiting.keys().any(|h| h != holder);
        // What it may keep: no more than it uses, its share while others wait, its part of a
        // limit that was cut below what is leased.
        let mut keep = held.min(want);
        if others_wait {
            keep = keep.min(share);
        }
        if self.held() > self.limit {
            keep = keep.min((held * self.limit / self.held()).max(1));
        }
        let mut now_held = held;
        let verdict = if keep < held {
            Rebalance::Shrink(keep)
        } else {
            let free = self.limit.saturating_sub(self.held());
            let cap = if others_wait { want.min(share) } else { want };
            let more = cap.saturating_sub(held).min(free);
            if more > 0 {
                now_held += more;
                self.leases.insert(holder.to_string(), (now_held, until));
                Rebalance::Grew(now_held)
            } else {
                Rebalance::Keep
            }
        };
        // Short of its share with nothing free: it waits, so that the others come down.
        let short = now_held < want.min(share) && self.held() >= self.limit;
        let wished = match (short, self.waiting.get(holder).copied()) {
            (true, until) if until.is_none_or(|u| u < now + WISH_REFRESH_MS) => {
                self.waiting.insert(holder.to_string(), now + WISH_MS);
                true
            }
            (false, Some(_)) => self.waiting.remove(holder).is_some(),
            _ => false,
        };
        (verdict, now_held > held || wished)
    }
}

/// What a holder should do with its permits now (see [`TenantBudgets::rebalance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    Keep,
    /// It holds this many now (already recorded).
    Grew(usize),
    /// It uses fewer, or others wait, or the limit was cut: it should come down to this many —
    /// in-process first, then [`TenantBudgets::shrink`] once its calls in flight fit.
    Shrink(usize),
    /// Its lease is gone (expired): it should stop calling.
    Gone,
}

pub struct TenantBudgets {
    client: Client,
    table: String,
}

/// Waiting for permits polls this often.
const POLL: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(200),
};
/// A waiter's wish stands this long, and is renewed when less than the refresh is left.
const WISH_MS: i64 = 4_000;
const WISH_REFRESH_MS: i64 = 2_000;

fn key(tenant: &str, service: &str) -> String {
    format!("BUDGET#{}#{service}", tenant.to_ascii_lowercase())
}

fn store_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("{what}: {e}"))
}

impl TenantBudgets {
    pub fn new(client: Client, table: String) -> TenantBudgets {
        TenantBudgets { client, table }
    }

    async fn row(&self, tenant: &str, service: &str) -> Result<Option<BudgetRow>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key(tenant, service)))
            .key("sk", AttributeValue::S("BUDGET".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem budget", DisplayErrorContext(&e)))?;
        out.item
            .map(from_item)
            .transpose()
            .map_err(|e| store_error("budget row", e))
    }

    /// Writes `row` if the stored version is still `expected` (none: the item must not exist).
    async fn put(&self, row: &BudgetRow, expected: Option<u64>) -> Result<bool, StoreError> {
        let item = serde_dynamo::to_item(row).map_err(|e| store_error("budget row", e))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = match expected {
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(
                    ":v",
                    to_attribute_value(v).map_err(|e| store_error("version", e))?,
                ),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(store_error("PutItem budget", DisplayErrorContext(&e))),
        }
    }

    /// Leases up to `terms.want` of the free permits of `service` in `tenant` (the limit
    /// learnt, never above the ceiling, less what live invocations hold), and no more than a
    /// fair share when others hold or wait. Waits (until `terms.give_up`) while every permit is
    /// leased, letting the holders know it waits so they shrink to their share; `Ok(0)` when
    /// none came free in time.
    pub async fn lease(
        &self,
        tenant: &str,
        service: &str,
        terms: &LeaseTerms<'_>,
    ) -> Result<usize, StoreError> {
        let LeaseTerms {
            holder,
            want,
            initial,
            ceiling,
            lease_for,
            give_up,
        } = *terms;
        let mut attempt = 1;
        loop {
            let now = Utc::now().timestamp_millis();
            let found = self.row(tenant, service).await?;
            let expected = found.as_ref().map(|r| r.version);
            let mut row =
                found.unwrap_or_else(|| BudgetRow::fresh(tenant, service, initial, ceiling));
            row.prune(now, ceiling);
            row.leases.remove(holder);
            let wished = row.waiting.remove(holder);
            let free = row.limit.saturating_sub(row.held_by_others(holder));
            let granted = free.min(want.max(1)).min(row.fair_share(holder));
            if granted > 0 {
                row.leases.insert(
                    holder.to_string(),
                    (granted, now + lease_for.as_millis() as i64),
                );
                row.version += 1;
                if self.put(&row, expected).await? {
                    return Ok(granted);
                }
                // Another invocation changed the budget meanwhile: read it again.
                continue;
            }
            if Instant::now() >= give_up {
                if wished.is_some() {
                    row.version += 1;
                    // Best effort: an unanswered wish expires on its own.
                    let _ = self.put(&row, expected).await;
                }
                return Ok(0);
            }
            if wished.is_none_or(|until| until < now + WISH_REFRESH_MS) {
                row.waiting.insert(holder.to_string(), now + WISH_MS);
                row.version += 1;
                if !self.put(&row, expected).await? {
                    continue;
                }
            }
            tokio::time::sleep(POLL.delay(attempt.min(10), None)).await;
            attempt += 1;
        }
    }

    /// What `holder` should do with its lease now, after learning from what it `seen`: come
    /// down to what it uses (`want`: its calls in flight and waiting), to its share while others
    /// wait, to its part of a limit cut below what is leased; or take free permits up to `want`
    /// (its share while others wait). Short of its share with nothing free, it waits too, so
    /// that the others come down to theirs.
    pub async fn rebalance(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        want: usize,
        ceiling: usize,
        seen: Seen,
    ) -> Result<Rebalance, StoreError> {
        for _ in 0..10 {
            let now = Utc::now().timestamp_millis();
            let Some(mut row) = self.row(tenant, service).await? else {
                return Ok(Rebalance::Gone);
            };
            let expected = row.version;
            row.prune(now, ceiling);
            if !row.leases.contains_key(holder) {
                return Ok(Rebalance::Gone);
            }
            let learnt = row.learn(seen, now, ceiling);
            let (verdict, changed) = row.settle(holder, want, now);
            if !learnt && !changed {
                return Ok(verdict);
            }
            row.version += 1;
            if self.put(&row, Some(expected)).await? {
                return Ok(verdict);
            }
            // Another holder wrote meanwhile: look again.
        }
        Ok(Rebalance::Keep)
    }

    /// Records that `holder` came down to `permits` (its calls in flight already fit). One
    /// write, whoever else writes the row meanwhile.
    pub async fn shrink(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        permits: usize,
    ) -> Result<(), StoreError> {
        let n = to_attribute_value(permits).map_err(|e| store_error("permits", e))?;
        self.update(
            tenant,
            service,
            holder,
            "SET leases.#h[0] = :n ADD version :one",
            "leases.#h[0] > :n",
            Some(n),
        )
        .await
    }

    /// Returns `holder`'s permits, and cuts the limit if it was `throttled` since it last
    /// looked. The permits go back in one write whoever else writes the row meanwhile: a lease
    /// left behind would stay taken until it expires. (A wish it made expires on its own.)
    pub async fn release(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        ceiling: usize,
        throttled: bool,
    ) -> Result<(), StoreError> {
        if throttled {
            self.learn_throttled(tenant, service, ceiling).await?;
        }
        self.update(
            tenant,
            service,
            holder,
            "REMOVE leases.#h ADD version :one",
            "attribute_exists(leases.#h)",
            None,
        )
        .await
    }

    /// Tells the budget the service throttled a holder about to return its lease.
    async fn learn_throttled(
        &self,
        tenant: &str,
        service: &str,
        ceiling: usize,
    ) -> Result<(), StoreError> {
        let seen = Seen {
            throttled: true,
            full: false,
        };
        for _ in 0..10 {
            let Some(mut row) = self.row(tenant, service).await? else {
                return Ok(());
            };
            let expected = row.version;
            let now = Utc::now().timestamp_millis();
            row.prune(now, ceiling);
            if !row.learn(seen, now, ceiling) {
                return Ok(());
            }
            row.version += 1;
            if self.put(&row, Some(expected)).await? {
                return Ok(());
            }
        }
        tracing::warn!(%tenant, %service, "throttling not recorded after 10 tries");
        Ok(())
    }

    /// One conditional update of `holder`'s entries in the budget row (`#h` its name, `:one`
    /// one, `:n` the value given); nothing when the condition does not hold.
    async fn update(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        update: &str,
        condition: &str,
        n: Option<AttributeValue>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key(tenant, service)))
            .key("sk", AttributeValue::S("BUDGET".into()))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#h", holder)
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        if let Some(n) = n {
            request = request.expression_attribute_values(":n", n);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem budget", DisplayErrorContext(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(limit: usize, leases: &[usize]) -> BudgetRow {
        let mut row = BudgetRow::fresh("t", "exchange", 8, 32);
        row.limit = limit;
        for (i, n) in leases.iter().enumerate() {
            row.leases.insert(format!("h{i}"), (*n, i64::MAX));
        }
        row
    }

    const THROTTLED: Seen = Seen {
        throttled: true,
        full: true,
    };
    const FULL: Seen = Seen {
        throttled: false,
        full: true,
    };

    #[test]
    fn one_overshoot_is_one_cut_however_many_holders_saw_it() {
        let mut r = row(32, &[8, 8, 8, 8]);
        let now = 1_000_000;
        // The first throttling: back to the slow start's step before.
        assert!(r.learn(THROTTLED, now, 32));
        assert_eq!((r.limit, r.known), (21, Some(31)));
        // The other holders report the same overshoot within the cooldown: no more cuts.
        for later in [1, 500, CUT_COOLDOWN_MS - 1] {
            assert!(!r.learn(THROTTLED, now + later, 32));
        }
        assert_eq!(r.limit, 21);
        // Throttled again once the holders came down: the limit is still too high.
        r.leases = row(21, &[6, 5, 5, 5]).leases;
        assert!(r.learn(THROTTLED, now + CUT_COOLDOWN_MS, 32));
        assert_eq!((r.limit, r.known), (18, Some(20)));
    }

    #[test]
    fn a_new_budget_grows_by_half_a_second_until_first_throttled() {
        let mut r = BudgetRow::fresh("t", "graph", 16, 128);
        let mut now = 1_000_000;
        for limit in [24, 36, 54] {
            r.leases = row(r.limit, &[r.limit]).leases;
            now += GROW_EVERY_MS;
            assert!(r.learn(FULL, now, 128));
            assert_eq!(r.limit, limit);
        }
        // Not within a second of the last growth, nor unless the budget is all leased and used.
        assert!(!r.learn(FULL, now + 500, 128));
        r.leases = row(54, &[53]).leases;
        assert!(!r.learn(FULL, now + GROW_EVERY_MS, 128));
        // Others waiting for permits do not stop it: they want more than the budget has.
        r.leases = row(54, &[54]).leases;
        r.waiting.insert("w".into(), i64::MAX);
        assert!(r.learn(FULL, now + GROW_EVERY_MS, 128));
        assert_eq!(r.limit, 81);
        // Never past the ceiling.
        let mut r = row(30, &[30]);
        assert!(r.learn(FULL, now, 32));
        assert_eq!(r.limit, 32);
        assert!(!r.learn(FULL, now + 10 * GROW_EVERY_MS, 32));
    }

    #[test]
    fn after_a_cut_the_limit_probes_one_more_now_and_then() {
        let mut r = row(39, &[20, 19]);
        r.known = Some(39);
        let now = 1_000_000;
        r.cut_at = now;
        for later in [GROW_EVERY_MS, PROBE_EVERY_MS - 1] {
            assert!(!r.learn(FULL, now + later, 128), "at the known level");
        }
        assert!(r.learn(FULL, now + PROBE_EVERY_MS, 128), "a probe");
        assert_eq!(r.limit, 40);
        // The service throttles the probe: a cut to 90 %, and the known level stays.
        r.leases = row(40, &[20, 20]).leases;
        let now = now + PROBE_EVERY_MS + 500;
        assert!(r.learn(THROTTLED, now, 128));
        assert_eq!((r.limit, r.known), (36, Some(39)));
        // Back to it a permit a second; the next probe as late again.
        for (later, limit) in [(1, 37), (2, 38), (3, 39)] {
            r.leases = row(r.limit, &[r.limit]).leases;
            assert!(r.learn(FULL, now + later * GROW_EVERY_MS, 128));
            assert_eq!(r.limit, limit);
        }
        r.leases = row(39, &[39]).leases;
        let back = now + 3 * GROW_EVERY_MS;
        assert!(!r.learn(FULL, back + PROBE_EVERY_MS - 1, 128));
        assert!(r.learn(FULL, back + PROBE_EVERY_MS, 128));
    }

    #[test]
    fn a_holder_gives_back_what_it_does_not_use_and_others_take_it() {
        let mut r = row(18, &[5, 13]);
        // h0's calls in flight and waiting came to one: the rest goes back.
        assert_eq!(r.settle("h0", 1, 0), (Rebalance::Shrink(1), false));
        r.leases.insert("h0".into(), (1, i64::MAX));
        // h1 has more calls waiting than permits: it takes what came free.
        assert_eq!(r.settle("h1", 100, 0), (Rebalance::Grew(17), true));
        assert_eq!(r.held(), 18);
    }

    #[test]
    fn a_fair_share_leaves_small_holders_what_they_hold() {
        // Two holders that use one each leave 16 to split between the other two.
        let r = row(18, &[1, 1, 8, 8]);
        assert_eq!(r.fair_share("h2"), 8);
        // A holder waiting for more counts as wanting an equal part.
        let mut r = row(18, &[1, 1, 8, 8]);
        r.waiting.insert("h0".into(), i64::MAX);
        assert_eq!(r.fair_share("h2"), 6);
    }

    #[test]
    fn a_holder_short_of_its_share_waits_until_the_others_come_down() {
        let mut r = row(18, &[1, 9, 8]);
        // Nothing free: h0 waits, so that the others come down to their share.
        assert_eq!(r.settle("h0", 100, 0), (Rebalance::Keep, true));
        assert!(r.waiting.contains_key("h0"));
        assert_eq!(r.settle("h1", 100, 0).0, Rebalance::Shrink(6));
        assert_eq!(r.settle("h2", 100, 0).0, Rebalance::Shrink(6));
        r.leases.insert("h1".into(), (6, i64::MAX));
        r.leases.insert("h2".into(), (6, i64::MAX));
        // h0 takes what came free, up to its share, and waits no more.
        assert_eq!(r.settle("h0", 100, 0), (Rebalance::Grew(6), true));
        assert!(r.waiting.is_empty());
        // A holder that uses what it holds does not wait.
        assert_eq!(r.settle("h0", 6, 0), (Rebalance::Keep, false));
    }
}
