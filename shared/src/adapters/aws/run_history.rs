//! Run history on DynamoDB: a Query of the runs table's `runs-by-company` index (partition
//! `company_id`, sort `history_key` = `<created_at>#<run_id>`), newest first. Never a Scan:
//! a history query names its company. Only run items carry `history_key`, so plan items,
//! pieces and keys stay out of the index.
//!
//! The index row is filtered on what it holds (status, the address the run was requested
//! for) before the run is read; a page stops at `limit` runs and its token is the index key
//! of the last one, so the next page starts right after it.

use crate::adapters::page_token;
use crate::error::StoreError;
use crate::model::{Run, RunFilter, RunId, RunPage, RunStatus, RunSummary, MAX_RUN_PAGE};
use crate::ports::RunStore;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_dynamo::from_item;
use std::collections::HashMap;

/// The history index (defined in `infra/resources.json`).
pub const HISTORY_INDEX: &str = "runs-by-company";

type Item = HashMap<String, AttributeValue>;

/// Fixed-width UTC time: the index sorts `history_key` as text.
fn sortable(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The sort key of a run in [`HISTORY_INDEX`].
pub fn history_key(run: &Run) -> String {
    format!("{}#{}", sortable(run.created_at), run.run_id)
}

/// What the index row tells before the run is read.
#[derive(Debug, Deserialize)]
struct HistoryRow {
    run_id: RunId,
    #[serde(default)]
    user_email: String,
    status: RunStatus,
}

impl HistoryRow {
    /// The filters the row can answer; `RunFilter::matches` on the run decides the rest.
    fn may_match(&self, filter: &RunFilter) -> bool {
        filter.status.is_none_or(|s| s == self.status)
            && filter
                .user
                .as_deref()
                .is_none_or(|u| self.user_email.eq_ignore_ascii_case(u.trim()))
    }
}

/// The index key of the last run of a page: the table key and the index key.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryPosition {
    pk: String,
    sk: String,
    company_id: String,
    history_key: String,
}

impl HistoryPosition {
    fn of(item: &Item) -> Option<HistoryPosition> {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Some(HistoryPosition {
            pk: text("pk")?,
            sk: text("sk")?,
            company_id: text("company_id")?,
            history_key: text("history_key")?,
        })
    }

    fn key(self) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pk)),
            ("sk".to_string(), AttributeValue::S(self.sk)),
            ("company_id".to_string(), AttributeValue::S(self.company_id)),
            (
                "history_key".to_string(),
                AttributeValue::S(self.history_key),
            ),
        ])
    }
}

pub(super) async fn list_runs(
    client: &Client,
    runs_table: &str,
    store: &dyn RunStore,
    filter: &RunFilter,
    limit: usize,
    after: Option<&str>,
) -> Result<RunPage, StoreError> {
    let company = filter.company_id.as_deref().ok_or(StoreError::BadQuery {
        field: "company_id",
        reason: "is required: on AWS run history is read per company (an index query, never a table scan)".into(),
    })?;
    let limit = limit.clamp(1, MAX_RUN_PAGE);
    let mut start = match after {
        None => None,
        Some(token) => {
            let position: HistoryPosition = page_token::decode(token)?;
            if position.company_id != company {
                return Err(page_token::bad_token(
                    "belongs to another company's history",
                ));
            }
            Some(position.key())
        }
    };
    let mut ids = Vec::new();
    let mut next = None;
    'pages: loop {
        let mut query = client
            .query()
            .table_name(runs_table)
            .index_name(HISTORY_INDEX)
            .scan_index_forward(false)
            .limit(limit.max(25) as i32)
            .expression_attribute_values(":c", AttributeValue::S(company.to_string()))
            .set_exclusive_start_key(start.take());
        query = match filter.since {
            Some(since) => query
                .key_condition_expression("company_id = :c AND history_key >= :since")
                .expression_attribute_values(":since", AttributeValue::S(sortable(since))),
            None => query.key_condition_expression("company_id = :c"),
        };
        let page = query.send().await.map_err(|e| {
            StoreError::backend(format!("Query run history: {}", DisplayErrorContext(&e)))
        })?;
        let items = page.items.unwrap_or_default();
        let more_pages = page.last_evaluated_key.filter(|k| !k.is_empty());
        let count = items.len();
        for (i, item) in items.into_iter().enumerate() {
            let row: HistoryRow = from_item(item.clone())
                .map_err(|e| StoreError::backend(format!("history row: {e}")))?;
            if !row.may_match(filter) {
                continue;
            }
            ids.push(row.run_id);
            if ids.len() == limit {
                let last_of_all = i + 1 == count && more_pages.is_none();
                if !last_of_all {
                    next = HistoryPosition::of(&item).map(|p| page_token::encode(&p));
                }
                break 'pages;
            }
        }
        match more_pages {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    // The index is eventually consistent: each run is read from its own item.
    let runs = try_join_all(ids.iter().map(|id| store.get_run(id))).await?;
    let runs: Vec<Run> = runs
        .into_iter()
        .flatten()
        .filter(|run| filter.matches(run))
        .collect();
    // A run without a result yet counts what its items say it has done so far.
    let summaries = try_join_all(runs.iter().map(|run| async move {
        Ok::<_, StoreError>(match RunSummary::counts_need_items(run) {
            true => RunSummary::with_items(run, &store.items(&run.run_id).await?),
            false => RunSummary::of(run),
        })
    }))
    .await?;
    Ok(RunPage {
        runs: summaries,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::resources::resources;

    /// The index the code queries is the one `infra/resources.json` provisions, on the
    /// attributes `create_run` writes.
    #[test]
    fn the_history_index_is_the_defined_one() {
        let index = resources()
            .tables
            .runs
            .indexes
            .iter()
            .find(|i| i.name == HISTORY_INDEX)
            .expect("infra/resources.json defines the history index");
        assert_eq!(
            (index.partition_key.as_str(), index.sort_key.as_str()),
            ("company_id", "history_key")
        );
    }

    #[test]
    fn history_keys_sort_as_their_times_do() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let a = sortable(at("2026-12-01T09:59:59.9Z"));
        let b = sortable(at("2026-12-01T10:00:00Z"));
        assert!(a < b, "{a} {b}");
        assert_eq!(b.len(), a.len());
    }
}
