//! The audit trail as JSON lines beside the file, the anchored manifest, and the seal.

use super::*;

#[async_trait]
impl AuditTrail for SqliteRunStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| StoreError::backend(e.to_string()))?;
        line.push(b'\n');
        let path = self.audit_path(&record.run_id);
        let Some(file) = self.append_line(record, &path, &line)? else {
            return Ok(false);
        };
        // The record is on disk before this returns. The flush waits outside the lock and off
        // the async workers, so that concurrent batches' flushes overlap (the file system
        // commits them together) instead of queueing one behind another.
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| StoreError::backend(format!("audit flush: {e}")))??;
        Ok(true)
    }

    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        read_audit_file(&self.audit_path(run_id))
    }

    async fn anchor_audit(
        &self,
        run_id: &RunId,
        manifest: &AuditManifest,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::backend(e.to_string()))?;
        let mut file = match owner_only()
            .write(true)
            .create_new(true)
            .open(self.manifest_path(run_id))
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        file.write_all(&json)?;
        file.sync_data()?;
        Ok(true)
    }

    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError> {
        read_audit_manifest(&self.manifest_path(run_id))
    }

    fn audit_seal(&self) -> &dyn crate::ports::AuditSeal {
        &self.seal
    }
}
