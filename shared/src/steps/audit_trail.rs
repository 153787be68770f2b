//! Writing the audit trail as hash chains, anchoring their heads in the run when it verifies,
//! and checking a run's trail (`revoke365 audit verify`, `GET /revocations/{id}/audit?verify=1`).

use crate::error::StoreError;
use crate::model::{
    check_audit, AuditCheck, AuditManifest, AuditPhase, AuditRecord, ChainHead, ItemId, RunId,
    TrailFacts,
};
use crate::ports::RunStore;
use std::collections::BTreeMap;
use tokio::sync::{oneshot, Mutex, MutexGuard, OnceCell};

/// Appends one chain's records, each linked to the one before it. The head is read from the
/// store when the writer starts and again after any write it cannot account for (a record an
/// earlier delivery wrote, a failed call), so a retried batch continues its chain: a record's
/// id is fixed, and the conditional write refuses a second one.
///
/// Records appended at once are written together (a group commit): while one write is out,
/// the records that arrive queue up, and the next writer takes them all in one store write.
/// Each caller still returns only once its record is stored.
pub(crate) struct ChainWriter<'a> {
    store: &'a dyn RunStore,
    run_id: RunId,
    chain: String,
    /// `None` while unknown; `Some(None)` for a chain without records. Held by the writer.
    head: Mutex<Option<Option<ChainHead>>>,
    /// Records waiting for the next writer, each with where its answer goes.
    queued: std::sync::Mutex<Vec<Queued>>,
    /// Per item, its attempts recorded as not sent: read once, when first asked.
    unsent: OnceCell<BTreeMap<ItemId, u32>>,
}

/// A record waiting to be written; `in_time`: not written once the time to stop came.
struct Queued {
    record: AuditRecord,
    in_time: bool,
    answer: oneshot::Sender<Result<Option<bool>, StoreError>>,
}

/// Most records one group write takes (a store transaction holds 100 items; the head is one).
const MOST_IN_A_GROUP: usize = 50;
/// How often a write links after the chain's head again when a twin delivery of the batch took
/// the place it thought was the end (twins are two, so a few times at most).
const RELINK_TRIES: u32 = 8;

impl<'a> ChainWriter<'a> {
    pub(crate) fn new(store: &'a dyn RunStore, run_id: &RunId, chain: String) -> ChainWriter<'a> {
        ChainWriter {
            store,
            run_id: run_id.clone(),
            chain,
            head: Mutex::new(None),
            queued: Default::default(),
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
            queued: Default::default(),
            unsent: OnceCell::new(),
        }
    }

    /// Writes `record` at the end of the chain unless a record with its id exists; returns
    /// whether this call wrote it.
    pub(crate) async fn append(&self, record: AuditRecord) -> Result<bool, StoreError> {
        Ok(self.queue(record, false).await?.unwrap_or(false))
    }

    /// As [`ChainWriter::append`], unless the time to stop (see
    /// [`Deadline::bound`](super::Deadline::bound)) came while the record waited its turn:
    /// then nothing is written and `None` returned.
    pub(crate) async fn append_in_time(
        &self,
        record: AuditRecord,
    ) -> Result<Option<bool>, StoreError> {
        self.queue(record, true).await
    }

    /// Queues `record`, then waits for the writer's turn: a writer before may have written it
    /// with its group already; if not, this one writes what is queued.
    async fn queue(&self, record: AuditRecord, in_time: bool) -> Result<Option<bool>, StoreError> {
        let (answer, mut answered) = oneshot::channel();
        self.lock_queue().push(Queued {
            record,
            in_time,
            answer,
        });
        let mut head = self.head.lock().await;
        if let Ok(answer) = answered.try_recv() {
            return answer;
        }
        while !self.lock_queue().is_empty() {
            let take = self.lock_queue().len().min(MOST_IN_A_GROUP);
            let group: Vec<Queued> = self.lock_queue().drain(..take).collect();
            self.write_group(&mut head, group).await;
            if let Ok(answer) = answered.try_recv() {
                return answer;
            }
        }
        drop(head);
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::backend("audit record left unanswered")))
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `group` in one store write where it can; one record at a time where a record
    /// exists already or the write failed, so each caller gets its own answer.
    async fn write_group(
        &self,
        head: &mut MutexGuard<'_, Option<Option<ChainHead>>>,
        group: Vec<Queued>,
    ) {
        let stop = super::past_stop();
        let (stopped, group): (Vec<Queued>, Vec<Queued>) =
            group.into_iter().partition(|q| q.in_time && stop);
        for q in stopped {
            let _ = q.answer.send(Ok(None));
        }
        if group.len() > 1 {
            if let Ok(true) = self.append_together(head, &group).await {
                for q in group {
                    let _ = q.answer.send(Ok(Some(true)));
                }
                return;
            }
            // Not written together: one at a time below, each with its own answer (the head
            // was taken, so the next write reads it again).
        }
        for q in group {
            let written = self.append_locked(head, q.record).await;
            let _ = q.answer.send(written.map(Some));
        }
    }

    /// Seals `group` after the head and writes it in one store write; `Ok(false)`: nothing
    /// was written (a record exists already, or the store takes one at a time).
    async fn append_together(
        &self,
        head: &mut MutexGuard<'_, Option<Option<ChainHead>>>,
        group: &[Queued],
    ) -> Result<bool, StoreError> {
        let mut current = match head.take() {
            Some(known) => known,
            None => self.read_head().await?,
        };
        for _ in 0..RELINK_TRIES {
            let mut sealed = Vec::with_capacity(group.len());
            let mut end = current.clone();
            for q in group {
                let record = q.record.clone().sealed(&self.chain, end.as_ref());
                end = Some(ChainHead {
                    length: record.seq.unwrap_or_default() + 1,
                    head: record.hash.clone().unwrap_or_default(),
                });
                sealed.push(record);
            }
            let began = std::time::Instant::now();
            let written = self.store.append_audit_group(&sealed).await;
            tracing::debug!(
                records = sealed.len(),
                ms = began.elapsed().as_millis() as u64,
                ok = written.is_ok(),
                "audit records written together"
            );
            match written {
                Ok(true) => {
                    **head = Some(end);
                    return Ok(true);
                }
                Ok(false) => return Ok(false),
                Err(StoreError::ChainPlaceTaken { .. }) => current = self.read_head().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
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
        head: &mut MutexGuard<'_, Option<Option<ChainHead>>>,
        record: AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut current = match head.take() {
            Some(known) => known,
            None => self.read_head().await?,
        };
        // A twin delivery of the batch may have taken the place this writer thought was the
        // end: link after what is there now.
        let mut tries = 0;
        let (sealed, written) = loop {
            let sealed = record.clone().sealed(&self.chain, current.as_ref());
            let began = std::time::Instant::now();
            let written = self.store.append_audit(&sealed).await;
            tracing::debug!(
                ms = began.elapsed().as_millis() as u64,
                "audit record written"
            );
            match written {
                Ok(written) => break (sealed, written),
                Err(StoreError::ChainPlaceTaken { .. }) if tries < RELINK_TRIES => {
                    tries += 1;
                    current = self.read_head().await?;
                }
                Err(e) => return Err(e),
            }
        };
        if written {
            **head = Some(Some(ChainHead {
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
