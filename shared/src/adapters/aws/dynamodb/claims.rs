//! Claims and leases: who holds a run, and what the sweeper re-drives.

use super::*;

#[async_trait]
impl RunLeases for DynamoRunStore {
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        working: RunStatus,
        holder: &str,
        lease: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let values = HashMap::from([
            (":from".to_string(), av(from)?),
            (":working".to_string(), av(working)?),
            (":holder".to_string(), s(holder)),
            (":until".to_string(), millis(now + lease)),
            (":now".to_string(), av(now)?),
            (":ms".to_string(), millis(now)),
        ]);
        let taken = self
            .update_run(
                run_id,
                "SET #s = :working, lease_holder = :holder, lease_until_ms = :until, status_changed_at = :now, updated_at = :now, updated_ms = :ms",
                "attribute_exists(pk) AND (#s = :from OR (#s = :working AND (attribute_not_exists(lease_until_ms) OR lease_until_ms < :ms OR lease_holder = :holder)))",
                &[("#s", "status")],
                values,
            )
            .await?;
        if taken {
            return Ok(Claim::Acquired);
        }
        let row = self
            .run_row(run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        Ok(if row.status == working {
            Claim::Busy {
                holder: row.lease_holder.unwrap_or_default(),
                until: row
                    .lease_until_ms
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .unwrap_or(now),
            }
        } else {
            Claim::NotHere(row.status)
        })
    }

    async fn release(&self, run_id: &RunId, holder: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET lease_until_ms = :ms",
            "lease_holder = :holder",
            &[],
            HashMap::from([
                (":ms".to_string(), millis(now)),
                (":holder".to_string(), s(holder)),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn stalled_runs(&self, before: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let items = self
            .client
            .query()
            .table_name(&self.runs)
            .index_name(ACTIVE_INDEX)
            .key_condition_expression("active = :one AND updated_ms < :before")
            .expression_attribute_values(":one", s("1"))
            .expression_attribute_values(":before", millis(before))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Query active runs", e))?;
        let ids: Vec<RunId> = items
            .iter()
            .filter_map(|item| item.get("run_id").and_then(|v| v.as_s().ok()))
            .map(|id| RunId(id.clone()))
            .collect();
        let mut stalled = Vec::new();
        for id in ids {
            // The index is eventually consistent: read the run itself.
            let Some(run) = self.get_run(&id).await? else {
                continue;
            };
            let live = run.lease_until.is_some_and(|u| u.timestamp_millis() > now);
            if !run.status.is_terminal() && run.updated_at < before && !live {
                stalled.push(run);
            }
        }
        Ok(stalled)
    }

    async fn count_redrive(&self, run_id: &RunId) -> Result<u32, StoreError> {
        let now = Utc::now();
        let out = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .update_expression("ADD redrives :one SET updated_at = :now, updated_ms = :ms")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", av(now)?)
            .expression_attribute_values(":ms", millis(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("UpdateItem redrives", e))?;
        Ok(out
            .attributes
            .and_then(|a| a.get("redrives").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }
}
