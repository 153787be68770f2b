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
        let items = self
            .client
            .scan()
            .table_name(&self.orgs)
            .projection_expression("company_id")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Scan org settings", e))?;
        let mut ids: Vec<String> = items
            .iter()
            .filter_map(|i| i.get("company_id").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        ids.sort();
        Ok(ids)
    }
}
