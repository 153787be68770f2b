//! Side-effect intents and outcomes.

use super::*;

#[async_trait]
impl EffectLog for DynamoRunStore {
    async fn begin_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
    ) -> Result<EffectState, StoreError> {
        let row = EffectRow {
            pk: run_pk(run_id),
            sk: effect_sk(effect),
            state: EffectState::Started,
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("effect row", e))?,
            ))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(EffectState::Started),
            Err(e) if is_condition_failure(&e) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.runs)
                    .set_key(Some(self.key(run_pk(run_id), effect_sk(effect))))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend("GetItem effect", e))?;
                let row: Option<EffectRow> = out
                    .item
                    .map(from_item)
                    .transpose()
                    .map_err(|e| serde_error("effect row", e))?;
                Ok(match row.map(|r| r.state) {
                    Some(EffectState::Started) | Some(EffectState::Unknown) | None => {
                        EffectState::Unknown
                    }
                    Some(done) => done,
                })
            }
            Err(e) => Err(backend("PutItem effect", e)),
        }
    }

    async fn end_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
        outcome: &EffectState,
    ) -> Result<(), StoreError> {
        let row = EffectRow {
            pk: run_pk(run_id),
            sk: effect_sk(effect),
            state: outcome.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("effect row", e))?,
            ))
            .send()
            .await
            .map_err(|e| backend("PutItem effect outcome", e))?;
        Ok(())
    }
}
