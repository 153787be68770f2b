//! The alert poller's memory on one machine, in the run store's SQLite file: each company's
//! feed watermarks (`alert_watermarks`), which alert started which run (`alert_runs`), what
//! an alert decided without a run (`alert_marks`) and the contain runs started per company and
//! hour (`alert_contain_budget`).

use super::db::db_error;
use super::store::SqliteRunStore;
use crate::error::StoreError;
use crate::model::{AlertSourceKind, RunId};
use crate::ports::AlertLedger;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[async_trait]
impl AlertLedger for SqliteRunStore {
    async fn watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self
            .conn()
            .query_row(
                "SELECT at FROM alert_watermarks WHERE company_id = ?1 AND feed = ?2",
                params![company_id, feed.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error("read alert watermark", e))?;
        Ok(at.as_deref().and_then(parse_time))
    }

    async fn save_watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO alert_watermarks (company_id, feed, at) VALUES (?1, ?2, ?3)",
                params![company_id, feed.as_str(), at.to_rfc3339()],
            )
            .map_err(|e| db_error("save alert watermark", e))?;
        Ok(())
    }

    async fn alert_run(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT run_id, until FROM alert_runs WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| db_error("read alert run", e))?;
        Ok(row
            .filter(|(_, until)| parse_time(until).is_some_and(|u| u > Utc::now()))
            .map(|(run_id, _)| RunId(run_id)))
    }

    async fn remember_alert_run(
        &self,
        key: &str,
        run_id: &RunId,
        until: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError> {
        if let Some(held) = self.alert_run(key).await? {
            return Ok(Some(held));
        }
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO alert_runs (key, run_id, until) VALUES (?1, ?2, ?3)",
                params![key, run_id.0, until.to_rfc3339()],
            )
            .map_err(|e| db_error("remember alert run", e))?;
        Ok(None)
    }

    async fn take_contain_budget(
        &self,
        company_id: &str,
        hour: &str,
        limit: u32,
    ) -> Result<bool, StoreError> {
        // One statement: SQLite's lock makes it atomic for every process on the file. A spent
        // hour matches the WHERE of no row, so nothing changes.
        let changed = self
            .conn()
            .execute(
                "INSERT INTO alert_contain_budget (company_id, hour, taken) VALUES (?1, ?2, 1)
                 ON CONFLICT (company_id, hour) DO UPDATE SET taken = taken + 1 WHERE taken < ?3",
                params![company_id, hour, limit],
            )
            .map_err(|e| db_error("take contain budget", e))?;
        Ok(changed == 1)
    }

    async fn mark_alert(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = self
            .conn()
            .execute(
                "INSERT INTO alert_marks (key, until) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE until < ?3",
                params![key, until.to_rfc3339(), Utc::now().to_rfc3339()],
            )
            .map_err(|e| db_error("mark alert", e))?;
        Ok(changed == 1)
    }

    async fn alert_marked(&self, key: &str) -> Result<bool, StoreError> {
        let until: Option<String> = self
            .conn()
            .query_row(
                "SELECT until FROM alert_marks WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error("read alert mark", e))?;
        Ok(until
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|u| u > Utc::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_alert_keeps_its_first_run_until_its_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteRunStore::open(dir.path(), Vec::new()).unwrap();
        let (first, second) = (RunId("r1".into()), RunId("r2".into()));
        let later = Utc::now() + chrono::Duration::days(30);
        assert_eq!(
            store.remember_alert_run("k", &first, later).await.unwrap(),
            None
        );
        assert_eq!(
            store.remember_alert_run("k", &second, later).await.unwrap(),
            Some(first.clone())
        );
        assert_eq!(store.alert_run("k").await.unwrap(), Some(first));
        // An expired entry is free again.
        let past = Utc::now() - chrono::Duration::seconds(1);
        store
            .remember_alert_run("old", &second, past)
            .await
            .unwrap();
        assert_eq!(store.alert_run("old").await.unwrap(), None);

        let feed = AlertSourceKind::Defender;
        assert_eq!(store.watermark("acme", feed).await.unwrap(), None);
        let at = DateTime::parse_from_rfc3339("2026-01-15T09:30:12Z")
            .unwrap()
            .with_timezone(&Utc);
        store.save_watermark("acme", feed, at).await.unwrap();
        assert_eq!(store.watermark("acme", feed).await.unwrap(), Some(at));
        assert_eq!(
            store
                .watermark("acme", AlertSourceKind::EntraIdProtection)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_hourly_contain_budget_counts_per_company_and_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteRunStore::open(dir.path(), Vec::new()).unwrap();
        let take = |company: &'static str, hour: &'static str| {
            let store = &store;
            async move { store.take_contain_budget(company, hour, 2).await.unwrap() }
        };
        assert!(take("acme", "2026-12-07T14").await);
        assert!(take("acme", "2026-12-07T14").await);
        assert!(!take("acme", "2026-12-07T14").await, "the third of two");
        assert!(take("acme", "2026-12-07T15").await, "a new hour");
        assert!(take("contoso", "2026-12-07T14").await, "another company");

        let later = Utc::now() + chrono::Duration::days(1);
        assert!(!store.alert_marked("k").await.unwrap());
        assert!(store.mark_alert("k", later).await.unwrap());
        assert!(!store.mark_alert("k", later).await.unwrap(), "marked once");
        assert!(store.alert_marked("k").await.unwrap());
        let past = Utc::now() - chrono::Duration::seconds(1);
        assert!(store.mark_alert("old", past).await.unwrap());
        assert!(!store.alert_marked("old").await.unwrap());
        assert!(
            store.mark_alert("old", later).await.unwrap(),
            "an expired mark is free"
        );
    }
}
