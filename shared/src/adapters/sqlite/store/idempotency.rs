//! Idempotency keys in the SQLite file.

use super::*;

#[async_trait]
impl IdempotencyKeys for SqliteRunStore {
    /// A key holds only while its run is being worked on: on one machine, repeating a request
    /// whose run finished (or stopped) starts a new run; `revoke365 run` itself points to an
    /// interrupted one.
    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
        fingerprint: &str,
    ) -> Result<KeyHolder, StoreError> {
        let now = Utc::now();
        let held: Option<(String, String, String)> = self
            .conn()
            .query_row(
                "SELECT run_id, fingerprint, reserved_at FROM idempotency WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| db_error("read idempotency key", e))?;
        if let Some((holder, held_for, at)) = held {
            let reserved_at = DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(now);
            let holder = RunId(holder);
            let live = match self.get_run(&holder).await? {
                Some(run) => !run.status.is_terminal() && self.is_held(&holder),
                // Reserved by an intake still creating its run.
                None => true,
            };
            if reserved_at + IDEMPOTENCY_WINDOW > now && live {
                return Ok(KeyHolder::Held {
                    run_id: holder,
                    fingerprint: held_for,
                    reserved_at,
                });
            }
        }
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO idempotency (key, run_id, fingerprint, reserved_at) VALUES (?1, ?2, ?3, ?4)",
                params![key, run_id.0, fingerprint, now.to_rfc3339()],
            )
            .map_err(|e| db_error("reserve idempotency key", e))?;
        Ok(KeyHolder::Reserved)
    }

    async fn replace_idempotency_key(
        &self,
        key: &str,
        from: &RunId,
        to: &RunId,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE idempotency SET run_id = ?3, fingerprint = ?4, reserved_at = ?5 WHERE key = ?1 AND run_id = ?2",
                params![key, from.0, to.0, fingerprint, Utc::now().to_rfc3339()],
            )
            .map_err(|e| db_error("replace idempotency key", e))?;
        Ok(changed == 1)
    }

    async fn release_idempotency_key(&self, key: &str, run_id: &RunId) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM idempotency WHERE key = ?1 AND run_id = ?2",
                params![key, run_id.0],
            )
            .map_err(|e| db_error("release idempotency key", e))?;
        Ok(())
    }
}
