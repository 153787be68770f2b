//! Side-effect intents and outcomes.

use super::*;

#[async_trait]
impl EffectLog for SqliteRunStore {
    async fn begin_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
    ) -> Result<EffectState, StoreError> {
        let db = self.conn();
        let state: Option<String> = db
            .query_row(
                "SELECT state FROM effects WHERE run_id = ?1 AND effect = ?2",
                params![run_id.0, effect.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error("read effect", e))?;
        match state
            .map(|s| from_json::<EffectState>("effect", &s))
            .transpose()?
        {
            Some(EffectState::Started) | Some(EffectState::Unknown) => Ok(EffectState::Unknown),
            Some(done) => Ok(done),
            None => {
                db.execute(
                    "INSERT INTO effects (run_id, effect, state) VALUES (?1, ?2, ?3)",
                    params![run_id.0, effect.as_str(), to_json(&EffectState::Started)?],
                )
                .map_err(|e| db_error("record effect", e))?;
                Ok(EffectState::Started)
            }
        }
    }

    async fn end_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
        outcome: &EffectState,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO effects (run_id, effect, state) VALUES (?1, ?2, ?3)",
                params![run_id.0, effect.as_str(), to_json(outcome)?],
            )
            .map_err(|e| db_error("record effect", e))?;
        Ok(())
    }
}
