//! One tenant's budget across every invocation: a lease semaphore per (tenant, service) in
//! the runs table. The item holds the limit learnt for the tenant and the permits each live
//! invocation leased; a lease expires with its invocation, so a dead invocation's permits come
//! back. An invocation that saw throttling lowers the limit when it returns its permits; one
//! that used all it had without throttling raises it by one, never above the ceiling.
//!
//! (`MaximumConcurrency` on an event source is per function across all tenants, so it cannot
//! be a tenant's budget.)

use crate::config::RetryPolicy;
use crate::error::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_attribute_value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What an invocation asks of a budget.
#[derive(Debug, Clone)]
pub struct LeaseTerms<'a> {
    pub holder: &'a str,
    /// The most permits it can use.
    pub want: usize,
    /// The service's ceiling: the budget never grows past it.
    pub ceiling: usize,
    /// The lease ends this long from now unless returned first.
    pub lease_for: Duration,
    /// Waits for a free permit until then.
    pub give_up: Instant,
}

/// How a lease ended: what the invocation learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// Throttling answers seen while holding the lease.
    pub throttled: u64,
    /// The most calls it had in flight.
    pub peak_in_flight: usize,
    /// The limit it ended with (what the service took, after any throttling).
    pub limit: usize,
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
}

impl BudgetRow {
    fn fresh(tenant: &str, service: &str, ceiling: usize) -> BudgetRow {
        BudgetRow {
            pk: key(tenant, service),
            sk: "BUDGET".into(),
            limit: ceiling.max(1),
            version: 0,
            leases: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
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

    /// `holder`'s fair share: the limit split between every holder and waiter, itself included.
    fn fair_share(&self, holder: &str) -> usize {
        let others = self.leases.keys().chain(self.waiting.keys());
        let parties: BTreeSet<&String> = others.filter(|h| *h != holder).collect();
        self.limit.div_ceil(parties.len() + 1).max(1)
    }
}

/// What a holder should do with its permits now (see [`TenantBudgets::rebalance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    Keep,
    /// It holds this many now (already recorded).
    Grew(usize),
    /// Others wait: it should come down to this many — in-process first, then
    /// [`TenantBudgets::shrink`] once its calls in flight fit.
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
            Err(e)
                if e.as_service_error().and_then(|se| se.code())
                    == Some("ConditionalCheckFailedException") =>
            {
                Ok(false)
            }
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
            ceiling,
            lease_for,
            give_up,
        } = *terms;
        let mut attempt = 1;
        loop {
            let now = Utc::now().timestamp_millis();
            let found = self.row(tenant, service).await?;
            let expected = found.as_ref().map(|r| r.version);
            let mut row = found.unwrap_or_else(|| BudgetRow::fresh(tenant, service, ceiling));
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

    /// What `holder` should do with its lease now: come down to its fair share while others
    /// wait, or take free permits up to `want` while nobody does.
    pub async fn rebalance(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        want: usize,
        ceiling: usize,
    ) -> Result<Rebalance, StoreError> {
        let now = Utc::now().timestamp_millis();
        let Some(mut row) = self.row(tenant, service).await? else {
            return Ok(Rebalance::Gone);
        };
        let expected = row.version;
        row.prune(now, ceiling);
        let Some(&(held, until)) = row.leases.get(holder) else {
            return Ok(Rebalance::Gone);
        };
        if !row.waiting.is_empty() {
            let share = row.fair_share(holder);
            return Ok(if held > share {
                Rebalance::Shrink(share)
            } else {
                Rebalance::Keep
            });
        }
        let free = row.limit.saturating_sub(row.held_by_others(holder) + held);
        let more = want.max(1).saturating_sub(held).min(free);
        if more == 0 {
            return Ok(Rebalance::Keep);
        }
        row.leases.insert(holder.to_string(), (held + more, until));
        row.version += 1;
        Ok(if self.put(&row, Some(expected)).await? {
            Rebalance::Grew(held + more)
        } else {
            Rebalance::Keep
        })
    }

    /// Records that `holder` came down to `permits` (its calls in flight already fit).
    pub async fn shrink(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        permits: usize,
    ) -> Result<(), StoreError> {
        for _ in 0..10 {
            let Some(mut row) = self.row(tenant, service).await? else {
                return Ok(());
            };
            let expected = row.version;
            match row.leases.get_mut(holder) {
                Some((held, _)) if *held > permits => *held = permits.max(1),
                _ => return Ok(()),
            }
            row.version += 1;
            if self.put(&row, Some(expected)).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Returns `holder`'s permits and teaches the budget what the lease learnt.
    pub async fn release(
        &self,
        tenant: &str,
        service: &str,
        holder: &str,
        ceiling: usize,
        outcome: LeaseOutcome,
    ) -> Result<(), StoreError> {
        for _ in 0..10 {
            let Some(mut row) = self.row(tenant, service).await? else {
                return Ok(());
            };
            let expected = row.version;
            let Some((permits, _)) = row.leases.remove(holder) else {
                return Ok(());
            };
            if outcome.throttled > 0 {
                // What the others hold stood beside what this one found the service takes.
                let now = Utc::now().timestamp_millis();
                let others: usize = row
                    .leases
                    .values()
                    .filter(|(_, until)| *until > now)
                    .map(|(n, _)| n)
                    .sum();
                let cut = (row.limit as f64 * 0.9).floor() as usize;
                row.limit = cut.min(others + outcome.limit).max(1);
            } else if outcome.peak_in_flight >= permits && permits >= row.limit {
                // It had the whole budget and used it: the service may take one more.
                row.limit = (row.limit + 1).min(ceiling.max(1));
            }
            row.version += 1;
            if self.put(&row, Some(expected)).await? {
                return Ok(());
            }
        }
        tracing::warn!(%tenant, %service, "budget lease not returned after 10 tries; it expires on its own");
        Ok(())
    }
}
