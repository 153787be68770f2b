//! Writing the audit trail as hash chains, anchoring their heads in the run when it verifies,
//! and checking a run's trail (`revoke365 audit verify`, `GET /revocations/{id}/audit?verify=1`).

use crate::error::StoreError;
use crate::model::{
    check_audit, AuditCheck, AuditManifest, AuditPhase, AuditRecord, ChainHead, ItemId, RunId,
    TrailFacts,
};
use crate::ports::RunStore;
use std::collections::BTreeMap;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

/// Appends one chain's records, one at a time, each linked to the one before it. The head is
/// read from the store when the writer starts and again after any write it cannot account
/// for (a record an earlier delivery wrote, a failed call), so a retried batch continues its
/// chain: a record's id is fixed, and the conditional write refuses a second one.
pub(crate) struct ChainWriter<'a> {
    store: &'a dyn RunStore,
    run_id: RunId,
    chain: String,
    /// `None` while unknown; `Some(None)` for a chain without records.
    head: Mutex<Option<Option<ChainHead>>>,
    /// Per item, its attempts recorded as not sent: read once, when first asked.
    unsent: OnceCell<BTreeMap<ItemId, u32>>,
}

impl<'a> ChainWriter<'a> {
    pub(crate) fn new(store: &'a dyn RunStore, run_id: &RunId, chain: String) -> ChainWriter<'a> {
        ChainWriter {
            store,
            run_id: run_id.clone(),
            chain,
            head: Mutex::new(None),
            unsent: OnceCell::new(),
        }
    }

    /// The writer of a chain of one record (verification's): its id is fixed, so a second
    /// delivery's record is refused and the chain's head need not be read.
    pub(crate) fn single(
        store: &'a dyn RunStore,
        run_id: &RunId,
        chain: String,
    ) -> ChainWriter<'a> {
        ChainWriter {
            store,
            run_id: run_id.clone(),
            chain,
            head: Mutex::new(Some(None)),
            unsent: OnceCell::new(),
        }
    }

    /// Writes `record` at the end of the chain unless a record with its id exists; returns
    /// whether this call wrote it.
    pub(crate) async fn append(&self, record: AuditRecord) -> Result<bool, StoreError> {
        let head = self.head.lock().await;
        self.append_locked(head, record).await
    }

    /// As [`ChainWriter::append`], unless the time to stop (see
    /// [`Deadline::bound`](super::Deadline::bound)) came while the record waited its turn:
    /// then nothing is written and `None` returned.
    pub(crate) async fn append_in_time(
        &self,
        record: AuditRecord,
    ) -> Result<Option<bool>, StoreError> {
        let head = self.head.lock().await;
        if super::past_stop() {
            return Ok(None);
        }
        self.append_locked(head, record).await.map(Some)
    }

    /// How many of `item`'s attempts at its write were recorded, by earlier deliveries, as not
    /// sent ([`AuditPhase::NotSent`]).
    pub(crate) async fn unsent_attempts(&self, item: ItemId) -> Result<u32, StoreError> {
        let unsent = self
            .unsent
            .get_or_try_init(|| async {
                let records = self.store.audit_chain(&self.run_id, &self.chain).await?;
                let mut unsent: BTreeMap<ItemId, u32> = BTreeMap::new();
                for id in records
                    .iter()
                    .filter(|r| r.phase == AuditPhase::NotSent)
                    .filter_map(|r| r.item_id)
                {
                    *unsent.entry(id).or_default() += 1;
                }
                Ok::<_, StoreError>(unsent)
            })
            .await?;
        Ok(unsent.get(&item).copied().unwrap_or_default())
    }

    async fn append_locked(
        &self,
        mut head: MutexGuard<'_, Option<Option<ChainHead>>>,
        record: AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut current = match head.take() {
            Some(known) => known,
            None => self.read_head().await?,
        };
        // A twin delivery of the batch may have taken the place this writer thought was the
        // end: link after what is there now (a few times at most; twins are two).
        let mut tries = 0;
        let (sealed, written) = loop {
            let sealed = record.clone().sealed(&self.chain, current.as_ref());
            match self.store.append_audit(&sealed).await {
                Ok(written) => break (sealed, written),
                Err(StoreError::ChainPlaceTaken { .. }) if tries < 8 => {
                    tries += 1;
                    current = self.read_head().await?;
                }
                Err(e) => return Err(e),
            }
        };
        if written {
            *head = Some(Some(ChainHead {
                length: sealed.seq.unwrap_or_default() + 1,
                head: sealed.hash.unwrap_or_default(),
            }));
        }
        Ok(written)
    }

    /// The chain's head as the store holds it now.
    async fn read_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let records = self.store.audit_chain(&self.run_id, &self.chain).await?;
        Ok(AuditManifest::of(&records).chains.remove(&self.chain))
    }
}

/// Anchors the heads of every chain of the run's trail in the run, sealed with the audit key
/// (once; a redelivered verification finds it anchored and leaves it).
pub(crate) async fn anchor(store: &dyn RunStore, run_id: &RunId) -> Result<(), StoreError> {
    if store.audit_manifest(run_id).await?.is_some() {
        return Ok(());
    }
    let heads = store.audit_chain_heads(run_id).await?;
    let mut manifest = AuditManifest::of(&heads);
    manifest.mac = Some(
        store
            .audit_seal()
            .mac(&manifest.sealed_message(run_id))
            .await?,
    );
    store.anchor_audit(run_id, &manifest).await?;
    Ok(())
}

/// Recomputes the run's chains and compares them with the manifest anchored in the run,
/// whose seal is checked with the audit key. A trail whose run is gone is held to what a
/// verified, chained run's must show (nothing says it may be less).
pub async fn check_run_audit(
    store: &dyn RunStore,
    run_id: &RunId,
) -> Result<AuditCheck, StoreError> {
    Ok(checked_trail(store, run_id).await?.0)
}

/// As [`check_run_audit`], with the records it checked: a restore acts on exactly the
/// records that verified, not on a second read.
pub(crate) async fn checked_trail(
    store: &dyn RunStore,
    run_id: &RunId,
) -> Result<(AuditCheck, Vec<AuditRecord>), StoreError> {
    let run = store.get_run(run_id).await?;
    let records = store.audit_records(run_id).await?;
    let manifest = store.audit_manifest(run_id).await?;
    let mut facts = match &run {
        Some(run) => TrailFacts::of(run),
        None => TrailFacts {
            chained: true,
            verified: true,
            seal: None,
        },
    };
    if let Some(m) = &manifest {
        if let Some(mac) = &m.mac {
            let seal = store.audit_seal();
            facts.seal = Some(seal.verify(&m.sealed_message(run_id), mac).await?);
        }
    }
    let mut check = check_audit(run_id, &records, manifest.as_ref(), facts);
    check.run_status = run.map(|r| r.status);
    Ok((check, records))
}
