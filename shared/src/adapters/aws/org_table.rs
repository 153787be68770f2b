//! The org-settings table as `revoke365 org` manages it: one item per company
//! (`company_id`, `settings` as a map). The functions only read it (`DynamoRunStore`);
//! items written by hand with the settings as a JSON string read too.

use super::resources::AwsNames;
use crate::error::StoreError;
use crate::model::{validate_companies, OrgSettings};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_item};
use std::collections::HashMap;

pub struct OrgTable {
    client: Client,
    table: String,
}

#[derive(Serialize)]
struct OrgRowOut<'a> {
    company_id: &'a str,
    settings: &'a OrgSettings,
}

#[derive(Deserialize)]
struct OrgRowIn {
    company_id: String,
    settings: Option<serde_json::Value>,
}

impl OrgRowIn {
    fn settings(self) -> Result<OrgSettings, StoreError> {
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::backend(format!(
                "org settings of '{}' are not valid: {e}",
                self.company_id
            ))
        };
        let org: OrgSettings = match &self.settings {
            Some(serde_json::Value::String(text)) => {
                serde_json::from_str(text).map_err(|e| bad(&e))
            }
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| bad(&e)),
            None => Err(bad(&"the item has no settings")),
        }?;
        // An item written by hand is held to the rules `put` checks, and to its own key: the
        // settings of another company under this one's id would run on the wrong tenant.
        org.validate().map_err(|e| bad(&e))?;
        if org.company_id != self.company_id {
            return Err(bad(&format!(
                "company_id: the settings name company '{}', not the item's",
                org.company_id
            )));
        }
        Ok(org)
    }
}

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    e: SdkError<E, R>,
) -> StoreError {
    StoreError::backend(format!("{what}: {}", DisplayErrorContext(&e)))
}

impl OrgTable {
    pub fn new(client: Client, names: &AwsNames) -> OrgTable {
        OrgTable {
            client,
            table: names.org_table.clone(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes each company's settings (replacing what the table held for it). Nothing is
    /// written unless every company is valid.
    pub async fn put(&self, orgs: &[OrgSettings]) -> Result<(), StoreError> {
        validate_companies(orgs).map_err(|e| StoreError::backend(e.to_string()))?;
        for org in orgs {
            let row = OrgRowOut {
                company_id: &org.company_id,
                settings: org,
            };
            let item = to_item(row).map_err(|e| StoreError::backend(format!("org row: {e}")))?;
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| backend(&format!("PutItem org settings {}", org.company_id), e))?;
        }
        Ok(())
    }

    pub async fn get(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("company_id", AttributeValue::S(company_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(&format!("GetItem org settings {company_id}"), e))?;
        out.item.map(row_settings).transpose()
    }

    /// Every company's settings, by company id. The table holds one small item per company:
    /// reading all of it is what listing means.
    pub async fn list(&self) -> Result<Vec<OrgSettings>, StoreError> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Scan org settings", e))?;
        let mut orgs = items
            .into_iter()
            .map(row_settings)
            .collect::<Result<Vec<_>, _>>()?;
        orgs.sort_by(|a, b| a.company_id.cmp(&b.company_id));
        Ok(orgs)
    }
}

/// A company's settings from its org-table item, held to [`OrgSettings::validate`] and to the
/// item's key: what every reader of the table (the CLI, the functions) uses, so an item
/// written by hand is never used unchecked.
pub(crate) fn row_settings(
    item: HashMap<String, AttributeValue>,
) -> Result<OrgSettings, StoreError> {
    let row: OrgRowIn =
        from_item(item).map_err(|e| StoreError::backend(format!("org row: {e}")))?;
    row.settings()
}
