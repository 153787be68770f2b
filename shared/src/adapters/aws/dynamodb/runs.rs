//! Runs and their lifecycle on the runs table.

use super::*;

#[async_trait]
impl RunRecords for DynamoRunStore {
    async fn create_run(&self, run: &Run) -> Result<(), StoreError> {
        let row = RunRow {
            pk: run_pk(&run.run_id),
            sk: RUN_SK.into(),
            run_id: run.run_id.clone(),
            company_id: run.request.company_id.clone(),
            user_email: run.request.user_email.clone(),
            status: run.status,
            request: Some(run.request.clone()),
            created_at: run.created_at,
            updated_at: run.updated_at,
            updated_ms: run.updated_at.timestamp_millis(),
            status_changed_at: run.status_changed_at,
            shards_total: 0,
            shards_done: 0,
            batches_total: 0,
            batches_done: 0,
            lease_holder: None,
            lease_until_ms: None,
            redrives: 0,
            failure: None,
            cancel_requested: false,
            active: Some("1".into()),
            user: None,
            result: None,
            indirect_access: None,
            scan_errors: None,
            restore: run.restore.clone(),
            tenant_id: run.tenant_id.clone(),
            history_key: Some(crate::adapters::aws::run_history::history_key(run)),
        };
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(to_item(row).map_err(|e| serde_error("run row", e))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("PutItem run", e))?;
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        let Some(row) = self.run_row(run_id).await? else {
            return Ok(None);
        };
        let user = self
            .pieces::<ResolvedUser>(run_id, USER_PIECES)
            .await?
            .remove(USER_PIECES);
        let result = if row.status.is_terminal() {
            self.pieces::<Report>(run_id, RESULT_PIECES)
                .await?
                .remove(RESULT_PIECES)
        } else {
            None
        };
        let restore_result = if row.status.is_terminal() && row.restore.is_some() {
            self.pieces::<RestoreReport>(run_id, RESTORE_RESULT_PIECES)
                .await?
                .remove(RESTORE_RESULT_PIECES)
        } else {
            None
        };
        DynamoRunStore::run_of(row, user, result, restore_result).map(Some)
    }

    async fn list_runs(
        &self,
        filter: &crate::model::RunFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<crate::model::RunPage, StoreError> {
        crate::adapters::aws::run_history::list_runs(
            &self.client,
            &self.runs,
            self,
            filter,
            limit,
            after,
        )
        .await
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        self.put_pieces(run_id, RESULT_PIECES, report).await?;
        self.mark_finished(run_id, report.status).await
    }

    async fn finish_restore(
        &self,
        run_id: &RunId,
        report: &RestoreReport,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, RESTORE_RESULT_PIECES, report)
            .await?;
        self.mark_finished(run_id, report.status).await
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        let now = Utc::now();
        // A finished run keeps its result: a late failure of a stray message changes nothing.
        self.update_run(
            run_id,
            "SET #s = :failed, failure = :failure, status_changed_at = :now, updated_at = :now, updated_ms = :ms REMOVE active, lease_holder, lease_until_ms",
            "attribute_exists(pk) AND NOT (#s IN (:c, :cwe, :failed, :cancelled))",
            &[("#s", "status")],
            HashMap::from([
                (":failed".to_string(), av(RunStatus::Failed)?),
                (":failure".to_string(), av(failure)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
                (":c".to_string(), av(RunStatus::Completed)?),
                (":cwe".to_string(), av(RunStatus::CompletedWithErrors)?),
                (":cancelled".to_string(), av(RunStatus::Cancelled)?),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn request_cancel(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        // Only while the run is not finished; a finished run is returned as it is.
        self.update_run(
            run_id,
            "SET cancel_requested = :t, updated_at = :now",
            "attribute_exists(pk) AND NOT (#s IN (:c, :cwe, :failed, :cancelled))",
            &[("#s", "status")],
            HashMap::from([
                (":t".to_string(), AttributeValue::Bool(true)),
                (":now".to_string(), av(Utc::now())?),
                (":c".to_string(), av(RunStatus::Completed)?),
                (":cwe".to_string(), av(RunStatus::CompletedWithErrors)?),
                (":failed".to_string(), av(RunStatus::Failed)?),
                (":cancelled".to_string(), av(RunStatus::Cancelled)?),
            ]),
        )
        .await?;
        self.get_run(run_id).await
    }
}
