//! Plan items, shard and batch markers, scan facts and re-read chunks.

use super::*;

#[async_trait]
impl RunItems for DynamoRunStore {
    async fn begin_scan(
        &self,
        run_id: &RunId,
        user: &ResolvedUser,
        shards_total: u32,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, USER_PIECES, user).await?;
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET shards_total = :n, updated_at = :now, updated_ms = :ms",
            "attribute_exists(pk)",
            &[],
            HashMap::from([
                (":n".to_string(), av(shards_total)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn put_items(&self, run_id: &RunId, items: &[PlanItem]) -> Result<(), StoreError> {
        let rows = items
            .iter()
            .map(|i| {
                to_item(ItemRow {
                    pk: run_pk(run_id),
                    sk: item_sk(i.id),
                    item_id: Some(i.id),
                    grant: Some(i.grant.clone()),
                    status: Some(i.status.clone()),
                    item_state: Some(item_state(&i.status)),
                    item: None,
                })
                .map_err(|e| serde_error("item row", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_rows(rows).await
    }

    async fn save_facts(
        &self,
        run_id: &RunId,
        part: &str,
        facts: &ScanFacts,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, &facts_pieces(part), facts).await?;
        Ok(())
    }

    async fn scan_facts(&self, run_id: &RunId) -> Result<ScanFacts, StoreError> {
        let parts = self.pieces::<ScanFacts>(run_id, "facts:").await?;
        let mut all = ScanFacts::default();
        if parts.is_empty() {
            // A run of the first release kept its facts on the run item.
            if let Some(row) = self.run_row(run_id).await? {
                all.indirect_access = row.indirect_access.unwrap_or_default();
                all.scan_errors = row.scan_errors.unwrap_or_default();
            }
        }
        for facts in parts.into_values() {
            all.merge(facts);
        }
        Ok(all.settle())
    }

    async fn complete_shard(
        &self,
        run_id: &RunId,
        shard_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        self.count_once(run_id, shard_sk(shard_id), "shards_done", "shards_total")
            .await
    }

    async fn start_removal(&self, run_id: &RunId, batches_total: u32) -> Result<bool, StoreError> {
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET #s = :removing, batches_total = :n, status_changed_at = :now, updated_at = :now, updated_ms = :ms REMOVE lease_holder, lease_until_ms",
            "#s = :discovering",
            &[("#s", "status")],
            HashMap::from([
                (":removing".to_string(), av(RunStatus::Removing)?),
                (":discovering".to_string(), av(RunStatus::Discovering)?),
                (":n".to_string(), av(batches_total)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
            ]),
        )
        .await
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        self.query_prefix(run_id, "ITEM#")
            .await?
            .into_iter()
            .map(|row| {
                let row: ItemRow = from_item(row).map_err(|e| serde_error("item row", e))?;
                row.into_item()
            })
            .collect()
    }

    async fn get_items(&self, run_id: &RunId, ids: &[ItemId]) -> Result<Vec<PlanItem>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| self.key(run_pk(run_id), item_sk(*id)))
                .collect();
            let mut pending = Some(HashMap::from([(
                self.runs.clone(),
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::backend(e.to_string()))?,
            )]));
            let mut retry = StoreRetry::new();
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(pending.take())
                    .send()
                    .await
                    .map_err(|e| backend("BatchGetItem items", e))?;
                for row in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.runs)
                    .unwrap_or_default()
                {
                    let row: ItemRow = from_item(row).map_err(|e| serde_error("item row", e))?;
                    found.push(row.into_item()?);
                }
                match out.unprocessed_keys {
                    Some(left) if left.values().any(|k| !k.keys().is_empty()) => {
                        if !retry.again().await {
                            return Err(StoreError::backend("BatchGetItem left keys unread"));
                        }
                        pending = Some(left);
                    }
                    _ => break,
                }
            }
        }
        found.sort_by_key(|i| i.id);
        Ok(found)
    }

    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([
            (":status".to_string(), av(status)?),
            (":state".to_string(), s(item_state(status))),
        ]);
        // A twin delivery's "already gone" must not overwrite "removed".
        let condition = if matches!(status, ItemStatus::AlreadyGone { .. }) {
            values.insert(":removed".into(), s(item_state(&ItemStatus::Removed)));
            "attribute_exists(pk) AND (attribute_not_exists(item_state) OR item_state <> :removed)"
        } else {
            "attribute_exists(pk)"
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), item_sk(item))))
            .update_expression("SET #st = :status, item_state = :state")
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if is_condition_failure(&e) && matches!(status, ItemStatus::AlreadyGone { .. }) =>
            {
                Ok(())
            }
            Err(e) => Err(backend(
                &format!("UpdateItem item {item} of run {run_id}"),
                e,
            )),
        }
    }

    async fn complete_batch(
        &self,
        run_id: &RunId,
        batch_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        self.count_once(run_id, batch_sk(batch_id), "batches_done", "batches_total")
            .await
    }

    async fn reread_chunks(&self, run_id: &RunId) -> Result<Vec<RereadChunk>, StoreError> {
        Ok(self
            .pieces::<RereadChunk>(run_id, "reread:")
            .await?
            .into_values()
            .collect())
    }

    async fn save_reread_chunk(
        &self,
        run_id: &RunId,
        chunk: &RereadChunk,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, &reread_pieces(chunk.chunk), chunk)
            .await?;
        Ok(())
    }
}
