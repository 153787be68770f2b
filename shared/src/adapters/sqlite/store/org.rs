//! The org settings the CLI was given.

use super::*;

#[async_trait]
impl OrgStore for SqliteRunStore {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        Ok(self.orgs.get(company_id).cloned())
    }

    async fn company_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.orgs.keys().cloned().collect())
    }
}
