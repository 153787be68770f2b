//! The org settings in the org table.

use super::*;

#[async_trait]
impl OrgStore for DynamoRunStore {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.orgs)
            .key("company_id", s(company_id))
            .send()
            .await
            .map_err(|e| backend("GetItem org settings", e))?;
        out.item
            .map(crate::adapters::aws::org_table::row_settings)
            .transpose()
    }

    async fn company_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.orgs)
                .projection_expression("company_id")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Scan org settings", e))?;
            ids.extend(
                page.items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.get("company_id").and_then(|v| v.as_s().ok()).cloned()),
            );
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.sort();
        Ok(ids)
    }
}
