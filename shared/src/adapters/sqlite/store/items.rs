//! Plan items, counted shards and batches, scan facts and re-read chunks.

use super::*;

#[async_trait]
impl RunItems for SqliteRunStore {
    async fn begin_scan(
        &self,
        run_id: &RunId,
        user: &ResolvedUser,
        shards_total: u32,
    ) -> Result<(), StoreError> {
        self.with_run(run_id, |run| {
            run.user = Some(user.clone());
            run.shards_total = shards_total;
        })
    }

    async fn put_items(&self, run_id: &RunId, items: &[PlanItem]) -> Result<(), StoreError> {
        let mut db = self.conn();
        let tx = db.transaction().map_err(|e| db_error("begin", e))?;
        for item in items {
            write_item(&tx, run_id, item)?;
        }
        tx.commit().map_err(|e| db_error("commit items", e))
    }

    async fn save_facts(
        &self,
        run_id: &RunId,
        part: &str,
        facts: &ScanFacts,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO facts (run_id, part, facts) VALUES (?1, ?2, ?3)",
                params![run_id.0, part, to_json(facts)?],
            )
            .map_err(|e| db_error("save facts", e))?;
        Ok(())
    }

    async fn scan_facts(&self, run_id: &RunId) -> Result<ScanFacts, StoreError> {
        let texts: Vec<String> = {
            let db = self.conn();
            let mut stmt = db
                .prepare("SELECT facts FROM facts WHERE run_id = ?1 ORDER BY part")
                .map_err(|e| db_error("read facts", e))?;
            let rows = stmt
                .query_map(params![run_id.0], |r| r.get::<_, String>(0))
                .map_err(|e| db_error("read facts", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| db_error("read facts", e))?
        };
        let mut all = ScanFacts::default();
        for t in texts {
            all.merge(from_json("facts", &t)?);
        }
        Ok(all.settle())
    }

    async fn complete_shard(
        &self,
        run_id: &RunId,
        shard_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        let (newly_counted, done) = self.mark_counted(run_id, "shard", shard_id)?;
        self.with_run(run_id, |run| {
            run.shards_done = done;
            BatchProgress {
                newly_counted,
                done,
                total: run.shards_total,
            }
        })
    }

    async fn start_removal(&self, run_id: &RunId, batches_total: u32) -> Result<bool, StoreError> {
        self.with_run(run_id, |run| {
            if run.status != RunStatus::Discovering {
                return false;
            }
            run.batches_total = batches_total;
            run.status = RunStatus::Removing;
            run.status_changed_at = Utc::now();
            run.lease_holder = None;
            run.lease_until = None;
            true
        })
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        let texts: Vec<String> = {
            let db = self.conn();
            let mut stmt = db
                .prepare("SELECT item FROM items WHERE run_id = ?1 ORDER BY item_id")
                .map_err(|e| db_error("read items", e))?;
            let rows = stmt
                .query_map(params![run_id.0], |r| r.get::<_, String>(0))
                .map_err(|e| db_error("read items", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| db_error("read items", e))?
        };
        texts.iter().map(|t| from_json("item", t)).collect()
    }

    async fn get_items(&self, run_id: &RunId, ids: &[ItemId]) -> Result<Vec<PlanItem>, StoreError> {
        let db = self.conn();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let text: Option<String> = db
                .query_row(
                    "SELECT item FROM items WHERE run_id = ?1 AND item_id = ?2",
                    params![run_id.0, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db_error("read item", e))?;
            if let Some(t) = text {
                out.push(from_json("item", &t)?);
            }
        }
        Ok(out)
    }

    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError> {
        let mut db = self.conn();
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error("begin", e))?;
        let text: Option<String> = tx
            .query_row(
                "SELECT item FROM items WHERE run_id = ?1 AND item_id = ?2",
                params![run_id.0, item],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error("read item", e))?;
        let Some(text) = text else {
            return Err(StoreError::backend(format!(
                "run {run_id} has no item {item}"
            )));
        };
        let mut current: PlanItem = from_json("item", &text)?;
        current.status = current.status.merge(status.clone());
        write_item(&tx, run_id, &current)?;
        tx.commit().map_err(|e| db_error("commit item", e))
    }

    async fn complete_batch(
        &self,
        run_id: &RunId,
        batch_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        let (newly_counted, done) = self.mark_counted(run_id, "batch", batch_id)?;
        self.with_run(run_id, |run| {
            run.batches_done = done;
            BatchProgress {
                newly_counted,
                done,
                total: run.batches_total,
            }
        })
    }

    async fn reread_chunks(&self, run_id: &RunId) -> Result<Vec<RereadChunk>, StoreError> {
        let texts: Vec<String> = {
            let db = self.conn();
            let mut stmt = db
                .prepare("SELECT data FROM reread WHERE run_id = ?1 ORDER BY chunk")
                .map_err(|e| db_error("read chunks", e))?;
            let rows = stmt
                .query_map(params![run_id.0], |r| r.get::<_, String>(0))
                .map_err(|e| db_error("read chunks", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| db_error("read chunks", e))?
        };
        texts
            .iter()
            .map(|t| from_json("re-read chunk", t))
            .collect()
    }

    async fn save_reread_chunk(
        &self,
        run_id: &RunId,
        chunk: &RereadChunk,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO reread (run_id, chunk, data) VALUES (?1, ?2, ?3)",
                params![run_id.0, chunk.chunk, to_json(chunk)?],
            )
            .map_err(|e| db_error("save chunk", e))?;
        Ok(())
    }
}
