//! The audit trail in its own table, the anchored manifest, and the seal.

use super::*;

#[async_trait]
impl AuditTrail for DynamoRunStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        match (record.chain.as_deref(), record.seq) {
            (Some(_), Some(_)) => self.append_chained(std::slice::from_ref(record)).await,
            _ => self.put_audit_record(record).await,
        }
    }

    async fn append_audit_group(&self, records: &[AuditRecord]) -> Result<bool, StoreError> {
        self.append_chained(records).await
    }

    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_audit(run_id, None).await
    }

    /// Where one chain ends: its head item holds a copy of its last record (one read, however
    /// long the trail).
    async fn audit_chain(
        &self,
        run_id: &RunId,
        chain: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.audit)
            .key("run_id", s(&run_id.0))
            .key("record_id", s(chain_head_id(chain)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem audit chain head", e))?;
        match out.item {
            Some(item) => {
                let row: AuditRow = from_item(item).map_err(|e| serde_error("audit row", e))?;
                Ok(row.record.into_iter().collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// The chains' head items only: a prefix of the sort key, however long the trail.
    async fn audit_chain_heads(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_audit(run_id, Some(CHAIN_HEAD_PREFIX)).await
    }

    /// The manifest is a small attribute of the run item (one entry per removal batch), as
    /// JSON, set once.
    async fn anchor_audit(
        &self,
        run_id: &RunId,
        manifest: &AuditManifest,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(manifest).map_err(|e| serde_error("manifest", e))?;
        self.update_run(
            run_id,
            "SET audit_manifest = :m",
            "attribute_exists(pk) AND attribute_not_exists(audit_manifest)",
            &[],
            HashMap::from([(":m".to_string(), s(json))]),
        )
        .await
    }

    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .projection_expression("audit_manifest")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem audit manifest", e))?;
        match out.item.as_ref().and_then(|i| i.get("audit_manifest")) {
            Some(AttributeValue::S(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|e| serde_error("audit manifest", e)),
            Some(_) => Err(StoreError::backend("audit manifest is not a string")),
            None => Ok(None),
        }
    }

    fn audit_seal(&self) -> &dyn crate::ports::AuditSeal {
        &self.seal
    }
}
