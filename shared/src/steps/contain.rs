//! The first phase of a `contain` run: every grant the newest permission-index snapshot lists
//! for the user is removed at once — each re-read just before its removal (that read is its
//! audit before-state) — before the live discovery reads the tenant as for any run. The live
//! discovery then finds what is newer than the snapshot, and verification re-reads it all: the
//! index makes containment fast, never less complete.

use super::audit_trail::ChainWriter;
use super::item_outcome::record_outcome;
use super::plan::items_of;
use super::revoke::remove_item;
use super::Tenant;
use crate::error::StepError;
use crate::model::{
    AuditPhase, AuditResult, Containment, ItemId, ItemStatus, OrgSettings, PlanItem, ResolvedUser,
    Run, SnapshotRef, Trustee, TrusteeKind,
};
use crate::ports::{DirectoryUser, RunStore, ScanFacts, UserLookup};
use crate::restore::read_grant;
use chrono::Utc;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use tracing::{info, info_span, warn, Instrument};

/// Ids of the items the containment phase plans: far above any discovery shard's.
pub(crate) const CONTAIN_ITEM_BASE: ItemId = 4_000_000_000;

/// The audit chain of the containment phase's records.
const CONTAIN_CHAIN: &str = "contain";

/// The facts part the phase's summary is kept under.
const FACTS_PART: &str = "contain";

/// Whether `id` is an item the containment phase planned.
pub(crate) fn is_contained(id: ItemId) -> bool {
    id >= CONTAIN_ITEM_BASE
}

/// Runs the containment phase of `run` and stores what it did with the run's facts. A run that
/// cannot use the index (none kept, no snapshot, too old, another tenant, a dry run) removes
/// nothing here, and its result says why.
pub(crate) async fn contain(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
) -> Result<(), StepError> {
    let span = info_span!("contain", run_id = %run.run_id);
    async {
        let containment = match remove_indexed(store, tenant, org, run).await? {
            Ok(done) => done,
            Err(why) => {
                info!(reason = %why, "containment from the index not used; a normal run");
                Containment::not_used(why)
            }
        };
        let facts = ScanFacts {
            containment: Some(containment),
            ..ScanFacts::default()
        };
        store.save_facts(&run.run_id, FACTS_PART, &facts).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// `Err(reason)` when the index cannot be used.
async fn remove_indexed(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
) -> Result<Result<Containment, String>, StepError> {
    let request = &run.request;
    if request.dry_run {
        return Ok(Err("a dry run removes nothing".into()));
    }
    let Some(index) = store.permission_index() else {
        return Ok(Err("this deployment keeps no permission index".into()));
    };
    let Some(snapshot) = index
        .find_snapshot(&org.company_id, &SnapshotRef::Newest)
        .await?
    else {
        return Ok(Err(format!(
            "company '{}' has no permission-index snapshot yet (run a sweep)",
            org.company_id
        )));
    };
    let max_age = chrono::Duration::days(i64::from(org.index.max_index_age_days));
    let age = Utc::now() - snapshot.taken_at;
    if age > max_age {
        return Ok(Err(format!(
            "the newest snapshot ({}, taken {}) is older than max_index_age_days ({})",
            snapshot.snapshot_id,
            snapshot.taken_at.to_rfc3339(),
            org.index.max_index_age_days
        )));
    }
    if !snapshot.tenant_id.eq_ignore_ascii_case(&org.tenant_id) {
        return Ok(Err(format!(
            "the newest snapshot ({}) is of another tenant than the company's",
            snapshot.snapshot_id
        )));
    }
    // The removals start at the limits the sweep learnt, not from the cautious defaults.
    (tenant.seed_limits)(&snapshot.limits);
    let user = match tenant.directory.find_user(&request.user_email).await? {
        UserLookup::Found { user, .. } => user,
        _ => {
            return Ok(Err(
                "the user is not exactly one directory user; the live discovery says why".into(),
            ))
        }
    };
    let hits = index
        .held_by(
            &snapshot.snapshot_id,
            &user_keys(&user, &request.user_email),
        )
        .await?;
    let mine: BTreeMap<&str, &Trustee> = hits
        .trustees
        .iter()
        .filter(|t| t.kind != TrusteeKind::Group)
        .map(|t| (t.trustee_id.as_str(), t))
        .collect();
    let reader = reader(&user, &request.user_email, mine.values().copied());
    let scope = request.effective_scope(&org.m365_permission_removal_scope);
    let own = reader.addresses.clone();
    let grants = hits.grants.iter().filter(|g| {
        mine.contains_key(g.trustee_id.as_str())
            && scope.contains(&g.right)
            && !own.contains(&g.mailbox)
            && (request.target_mailboxes.is_empty()
                || request.target_mailboxes.contains(&g.mailbox))
    });
    let planned = items_of(
        run,
        grants.enumerate().map(|(i, g)| {
            (
                CONTAIN_ITEM_BASE + i as ItemId,
                g.to_grant(&user.user_principal_name),
            )
        }),
    );
    let indexed_grants = planned.len();
    // A redelivered discovery keeps what an earlier try did.
    let earlier: BTreeMap<ItemId, PlanItem> = store
        .items(&run.run_id)
        .await?
        .into_iter()
        .filter(|i| is_contained(i.id))
        .map(|i| (i.id, i))
        .collect();
    let items: Vec<PlanItem> = planned
        .into_iter()
        .map(|i| earlier.get(&i.id).cloned().unwrap_or(i))
        .collect();
    store.put_items(&run.run_id, &items).await?;
    let trail = &ChainWriter::new(store, &run.run_id, CONTAIN_CHAIN.into());
    let reader = &reader;
    let results = join_all(items.iter().filter(|i| !i.status.is_finished()).map(
        |item| async move {
            let Some(current) = read_grant(tenant, reader, &item.grant).await? else {
                let gone = "not there when re-read before its removal (the index listed it)";
                return record_outcome(
                    store,
                    trail,
                    run,
                    item,
                    AuditPhase::Outcome,
                    (
                        ItemStatus::AlreadyGone {
                            warning: gone.into(),
                        },
                        AuditResult::AlreadyGone,
                        Some(gone.into()),
                    ),
                )
                .await;
            };
            let item = PlanItem {
                grant: current,
                ..item.clone()
            };
            store
                .put_items(&run.run_id, std::slice::from_ref(&item))
                .await?;
            remove_item(store, trail, tenant, run, &item).await
        },
    ))
    .await;
    results
        .into_iter()
        .collect::<Result<Vec<bool>, StepError>>()?;
    let seconds = (Utc::now() - run.created_at).num_milliseconds() as f64 / 1000.0;
    let removed = store
        .items(&run.run_id)
        .await?
        .iter()
        .filter(|i| is_contained(i.id) && i.status == ItemStatus::Removed)
        .count();
    info!(
        indexed_grants,
        removed,
        seconds_to_containment = seconds,
        snapshot_id = %snapshot.snapshot_id,
        "indexed grants removed"
    );
    Ok(Ok(Containment {
        snapshot_id: Some(snapshot.snapshot_id),
        snapshot_taken_at: Some(snapshot.taken_at),
        indexed_grants,
        seconds_to_containment: Some(seconds),
        seconds_to_sessions_revoked: None,
        not_used: None,
    }))
}

/// The values the index may know the user by.
fn user_keys(user: &DirectoryUser, requested: &str) -> Vec<String> {
    let mut keys: Vec<String> = [
        Some(user.id.as_str()),
        Some(user.user_principal_name.as_str()),
        user.mail.as_deref(),
        Some(requested),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .chain(smtp_proxies(user))
    .map(|k| k.trim().to_ascii_lowercase())
    .filter(|k| !k.is_empty())
    .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn smtp_proxies(user: &DirectoryUser) -> impl Iterator<Item = String> + '_ {
    user.proxy_addresses.iter().filter_map(|p| {
        p.split_once(':')
            .filter(|(kind, _)| kind.eq_ignore_ascii_case("smtp"))
            .map(|(_, a)| a.to_string())
    })
}

/// The user as the re-reads match them: the directory's addresses and id, and every name
/// and SID the snapshot saw them shown as.
fn reader<'a>(
    user: &DirectoryUser,
    requested: &str,
    trustees: impl Iterator<Item = &'a Trustee>,
) -> ResolvedUser {
    let trustees: Vec<&Trustee> = trustees.collect();
    let mut addresses = user_keys(user, requested);
    addresses.retain(|k| k.contains('@'));
    addresses.extend(trustees.iter().filter_map(|t| t.address.clone()));
    addresses.sort();
    addresses.dedup();
    let shown: Vec<String> = trustees
        .iter()
        .flat_map(|t| t.shown_as.iter())
        .map(|s| s.trim().to_string())
        .collect();
    let is_sid = |s: &String| s.to_ascii_uppercase().starts_with("S-1-");
    let mut names: Vec<String> = shown
        .iter()
        .filter(|s| !s.contains('@') && !is_sid(s))
        .map(|s| s.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    if trustees.is_empty() {
        warn!("the snapshot does not know the user; nothing to contain from it");
    }
    ResolvedUser {
        id: user.id.clone(),
        upn: user.user_principal_name.clone(),
        display_name: user.display_name.clone(),
        addresses,
        mailbox_dn: trustees.iter().find_map(|t| t.distinguished_name.clone()),
        mailbox_name: None,
        names,
        sids: shown
            .iter()
            .filter(|s| is_sid(s))
            .map(|s| s.to_ascii_uppercase())
            .collect(),
        matched_by: None,
        account_enabled: user.account_enabled,
        recipient_type: None,
        groups: Vec::new(),
    }
}

/// One grant counts once across both phases: a live item for a grant the containment phase
/// removed (a re-read that lagged its removal) is dropped from what the report counts.
pub(crate) fn fold_duplicates(items: &mut Vec<PlanItem>) {
    let contained: std::collections::BTreeSet<_> = items
        .iter()
        .filter(|i| is_contained(i.id) && i.status.is_removed())
        .map(|i| i.grant.key())
        .collect();
    items.retain(|i| is_contained(i.id) || !contained.contains(&i.grant.key()));
}
