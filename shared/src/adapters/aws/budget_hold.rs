//! One invocation's hold on its tenant's shared budgets: it leases its permits of each
//! Microsoft 365 service before the step calls the tenant, keeps them in use and fair while the
//! step runs (giving back what its calls do not use, coming down to its share when other
//! invocations wait, taking free permits or waiting for its share when its calls wait), and
//! returns them with what it learnt.

use super::tenant_budget::{LeaseTerms, Rebalance, Seen, TenantBudgets};
use crate::adapters::http::HttpCore;
use crate::config::HttpSettings;
use crate::ports::BudgetWant;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tracing::warn;

/// The Microsoft 365 services whose budget is shared across invocations.
pub const SHARED_SERVICES: [&str; 2] = ["exchange", "graph"];
/// The longest a step waits for permits other invocations hold before it is queued again.
const BUDGET_WAIT: Duration = Duration::from_secs(10);
/// How often a holder looks at who else wants the budget.
const REBALANCE_EVERY: Duration = Duration::from_millis(250);
/// How long a holder coming down to its share waits for its calls in flight to fit.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Permits held for one delivery; give them back with [`BudgetHold::give_back`].
pub struct BudgetHold {
    budgets: Arc<TenantBudgets>,
    core: Arc<HttpCore>,
    http: HttpSettings,
    tenant: String,
    holder: String,
    /// Per shared service, what the hold told the budget so far.
    told: Arc<[Told; 2]>,
    rebalancer: Option<JoinHandle<()>>,
}

/// What a hold holds of one service, the throttling answers it reported, and its calls in
/// flight and waiting at the last look.
#[derive(Debug, Default)]
struct Told {
    permits: AtomicUsize,
    throttled: AtomicU64,
    demand: AtomicUsize,
}

impl Told {
    /// What the process saw since the budget was last told: throttling, and whether its calls
    /// in flight fill what it holds.
    fn seen(&self, core: &HttpCore, tenant: &str, service: &'static str) -> Seen {
        let throttled = core.learned(tenant, service).map_or(0, |l| l.throttled);
        let before = self.throttled.swap(throttled, Ordering::SeqCst);
        let permits = self.permits.load(Ordering::SeqCst);
        Seen {
            throttled: throttled > before,
            full: permits > 0 && core.in_flight(tenant, service) >= permits,
        }
    }
}

/// Why no hold came about: every permit of `service` stayed with other live invocations.
#[derive(Debug)]
pub struct Saturated {
    pub service: &'static str,
}

impl BudgetHold {
    /// Leases `want` (at most) of each shared service for `holder` until `left` (the time the
    /// step has) plus 30 s, waiting at most a quarter of `left` (10 s at most) for permits.
    pub async fn take(
        budgets: Arc<TenantBudgets>,
        core: Arc<HttpCore>,
        http: &HttpSettings,
        tenant: &str,
        holder: &str,
        want: BudgetWant,
        left: Duration,
    ) -> Result<Result<BudgetHold, Saturated>, crate::error::StoreError> {
        let mut hold = BudgetHold {
            budgets,
            core,
            http: http.clone(),
            tenant: tenant.to_string(),
            holder: holder.to_string(),
            told: Arc::new(Default::default()),
            rebalancer: None,
        };
        for (service, told) in SHARED_SERVICES.into_iter().zip(hold.told.clone().iter()) {
            let terms = LeaseTerms {
                holder,
                want: want.of(service),
                initial: http.budget(service).initial,
                ceiling: http.budget(service).ceiling,
                lease_for: left + Duration::from_secs(30),
                give_up: Instant::now() + (left / 4).min(BUDGET_WAIT),
            };
            let permits = match hold.budgets.lease(tenant, service, &terms).await {
                Ok(permits) => permits,
                Err(e) => {
                    hold.give_back().await;
                    return Err(e);
                }
            };
            if permits == 0 {
                hold.give_back().await;
                return Ok(Err(Saturated { service }));
            }
            hold.core.lease(tenant, service, permits);
            told.permits.store(permits, Ordering::SeqCst);
            // Until it has been seen calling, it wants what it got.
            told.demand.store(permits, Ordering::SeqCst);
        }
        hold.rebalancer = Some(tokio::spawn(rebalance(
            hold.budgets.clone(),
            hold.core.clone(),
            hold.http.clone(),
            hold.tenant.clone(),
            hold.holder.clone(),
            want,
            hold.told.clone(),
        )));
        Ok(Ok(hold))
    }

    /// Returns the permits, telling the budget of throttling not yet reported. A lease not
    /// returned expires on its own.
    pub async fn give_back(mut self) {
        if let Some(task) = self.rebalancer.take() {
            task.abort();
        }
        for (service, told) in SHARED_SERVICES.into_iter().zip(self.told.iter()) {
            let seen = told.seen(&self.core, &self.tenant, service);
            let ceiling = self.http.budget(service).ceiling;
            if let Err(e) = self
                .budgets
                .release(&self.tenant, service, &self.holder, ceiling, seen.throttled)
                .await
            {
                warn!(error = %e, "budget lease not returned; it expires on its own");
            }
        }
    }
}

/// While the step runs: four times a second, tell the budget what was seen (throttling cuts the
/// tenant's limit, a full budget used cleanly grows it), then give back what the step does not
/// use and come down to the part the budget gives when others wait or the limit was cut (the
/// process's limit first, the shared record once the calls in flight fit, so the tenant never
/// sees more than its budget), or take free permits up to what the step uses.
async fn rebalance(
    budgets: Arc<TenantBudgets>,
    core: Arc<HttpCore>,
    http: HttpSettings,
    tenant: String,
    holder: String,
    want: BudgetWant,
    told: Arc<[Told; 2]>,
) {
    loop {
        tokio::time::sleep(REBALANCE_EVERY).await;
        for (service, told) in SHARED_SERVICES.into_iter().zip(told.iter()) {
            let ceiling = http.budget(service).ceiling;
            let seen = told.seen(&core, &tenant, service);
            // What it uses: the most calls in flight and waiting at once over the last two
            // looks (a step writing its records between calls keeps its permits that long).
            let demand = core.take_demand(&tenant, service);
            let used = demand.max(told.demand.swap(demand, Ordering::SeqCst));
            tracing::debug!(
                %holder,
                service,
                permits = told.permits.load(Ordering::SeqCst),
                in_flight = core.in_flight(&tenant, service),
                used,
                "budget look"
            );
            match budgets
                .rebalance(
                    &tenant,
                    service,
                    &holder,
                    want.of(service).min(used),
                    ceiling,
                    seen,
                )
                .await
            {
                Ok(Rebalance::Grew(permits)) => {
                    core.resize(&tenant, service, permits);
                    told.permits.store(permits, Ordering::SeqCst);
                }
                Ok(Rebalance::Shrink(permits)) => {
                    core.resize(&tenant, service, permits);
                    told.permits.store(permits, Ordering::SeqCst);
                    let until = Instant::now() + DRAIN_WAIT;
                    while core.in_flight(&tenant, service) > permits && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if core.in_flight(&tenant, service) <= permits {
                        if let Err(e) = budgets.shrink(&tenant, service, &holder, permits).await {
                            warn!(error = %e, "budget share not recorded; tried again");
                        }
                    }
                }
                Ok(Rebalance::Keep | Rebalance::Gone) => {}
                Err(e) => warn!(error = %e, "budget not rebalanced; tried again"),
            }
        }
    }
}
