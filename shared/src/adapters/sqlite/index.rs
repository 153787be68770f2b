//! The permission index in the CLI's SQLite file: one row per snapshot, per trustee, per
//! lookup key of a trustee and per grant, with indexes by trustee and by mailbox so that a
//! lookup reads only its own rows.

use super::db::{db_error, from_json, to_json};
use super::store::SqliteRunStore;
use crate::error::StoreError;
use crate::model::{
    IndexHits, IndexSettings, IndexedGrant, Snapshot, SnapshotSummary, SweepProgress, SweptMailbox,
    Trustee,
};
use crate::ports::{PermissionIndex, SweepJournal};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use std::collections::BTreeSet;

fn sql(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| db_error(what, e)
}

fn delete_snapshot(db: &Connection, snapshot_id: &str) -> Result<(), StoreError> {
    for table in [
        "index_grants",
        "index_keys",
        "index_trustees",
        "index_snapshots",
    ] {
        db.execute(
            &format!("DELETE FROM {table} WHERE snapshot_id = ?1"),
            params![snapshot_id],
        )
        .map_err(sql("drop an old snapshot"))?;
    }
    Ok(())
}

fn trustees_where(
    db: &Connection,
    snapshot_id: &str,
    ids: &BTreeSet<String>,
) -> Result<Vec<Trustee>, StoreError> {
    let mut stmt = db
        .prepare_cached(
            "SELECT trustee FROM index_trustees WHERE snapshot_id = ?1 AND trustee_id = ?2",
        )
        .map_err(sql("read trustees"))?;
    let mut out = Vec::new();
    for id in ids {
        let rows = stmt
            .query_map(params![snapshot_id, id], |r| r.get::<_, String>(0))
            .map_err(sql("read trustees"))?;
        for row in rows {
            out.push(from_json(
                "index trustee",
                &row.map_err(sql("read trustees"))?,
            )?);
        }
    }
    Ok(out)
}

fn grants_of(
    db: &Connection,
    query: &str,
    snapshot_id: &str,
    value: &str,
) -> Result<Vec<IndexedGrant>, StoreError> {
    let mut stmt = db.prepare_cached(query).map_err(sql("read grants"))?;
    let rows = stmt
        .query_map(params![snapshot_id, value], |r| r.get::<_, String>(0))
        .map_err(sql("read grants"))?;
    rows.map(|row| from_json("index grant", &row.map_err(sql("read grants"))?))
        .collect()
}

#[async_trait]
impl PermissionIndex for SqliteRunStore {
    async fn save_snapshot(
        &self,
        snapshot: &Snapshot,
        keep: &IndexSettings,
    ) -> Result<(), StoreError> {
        let mut db = self.conn();
        let tx = db.transaction().map_err(sql("store a snapshot"))?;
        let s = &snapshot.summary;
        tx.execute(
            "INSERT INTO index_snapshots (snapshot_id, company_id, taken_at, summary) VALUES (?1, ?2, ?3, ?4)",
            params![s.snapshot_id, self.index_key(&s.company_id), s.taken_at.to_rfc3339(), to_json(s)?],
        )
        .map_err(sql("store a snapshot"))?;
        {
            let mut trustee = tx
                .prepare("INSERT OR REPLACE INTO index_trustees VALUES (?1, ?2, ?3)")
                .map_err(sql("store trustees"))?;
            let mut key = tx
                .prepare("INSERT OR IGNORE INTO index_keys VALUES (?1, ?2, ?3)")
                .map_err(sql("store trustees"))?;
            for t in &snapshot.trustees {
                trustee
                    .execute(params![s.snapshot_id, t.trustee_id, to_json(t)?])
                    .map_err(sql("store trustees"))?;
                for k in t.keys() {
                    key.execute(params![s.snapshot_id, k, t.trustee_id])
                        .map_err(sql("store trustees"))?;
                }
            }
            let mut grant = tx
                .prepare("INSERT INTO index_grants VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql("store grants"))?;
            for g in &snapshot.grants {
                grant
                    .execute(params![s.snapshot_id, g.trustee_id, g.mailbox, to_json(g)?])
                    .map_err(sql("store grants"))?;
            }
        }
        // Keep the newest `keep_snapshots`, and every one younger than `keep_days`.
        let older: Vec<(String, String)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT snapshot_id, taken_at FROM index_snapshots WHERE company_id = ?1 ORDER BY taken_at DESC LIMIT -1 OFFSET ?2",
                )
                .map_err(sql("prune snapshots"))?;
            let rows = stmt
                .query_map(
                    params![self.index_key(&s.company_id), keep.keep_snapshots as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql("prune snapshots"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("prune snapshots"))?
        };
        let cutoff = s.taken_at - chrono::Duration::days(i64::from(keep.keep_days));
        for (id, taken_at) in older {
            let taken = DateTime::parse_from_rfc3339(&taken_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(cutoff);
            if taken < cutoff {
                delete_snapshot(&tx, &id)?;
            }
        }
        tx.commit().map_err(sql("store a snapshot"))
    }

    async fn snapshots(&self, company_id: &str) -> Result<Vec<SnapshotSummary>, StoreError> {
        let db = self.conn();
        let mut stmt = db
            .prepare_cached(
                "SELECT summary FROM index_snapshots WHERE company_id = ?1 ORDER BY taken_at DESC",
            )
            .map_err(sql("list snapshots"))?;
        let rows = stmt
            .query_map(params![self.index_key(company_id)], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sql("list snapshots"))?;
        rows.map(|row| from_json("snapshot", &row.map_err(sql("list snapshots"))?))
            .collect()
    }

    async fn held_by(&self, snapshot_id: &str, keys: &[String]) -> Result<IndexHits, StoreError> {
        let db = self.conn();
        let mut ids = BTreeSet::new();
        {
            let mut stmt = db
                .prepare_cached(
                    "SELECT trustee_id FROM index_keys WHERE snapshot_id = ?1 AND key = ?2",
                )
                .map_err(sql("look up a trustee"))?;
            for key in keys {
                let rows = stmt
                    .query_map(params![snapshot_id, key.trim().to_ascii_lowercase()], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(sql("look up a trustee"))?;
                for row in rows {
                    ids.insert(row.map_err(sql("look up a trustee"))?);
                }
            }
        }
        let trustees = trustees_where(&db, snapshot_id, &ids)?;
        let mut grants = Vec::new();
        for id in &ids {
            grants.extend(grants_of(
                &db,
                "SELECT grant_json FROM index_grants WHERE snapshot_id = ?1 AND trustee_id = ?2",
                snapshot_id,
                id,
            )?);
        }
        Ok(IndexHits { trustees, grants })
    }

    async fn held_on(&self, snapshot_id: &str, mailbox: &str) -> Result<IndexHits, StoreError> {
        let db = self.conn();
        let grants = grants_of(
            &db,
            "SELECT grant_json FROM index_grants WHERE snapshot_id = ?1 AND mailbox = ?2",
            snapshot_id,
            &mailbox.trim().to_ascii_lowercase(),
        )?;
        let ids = grants.iter().map(|g| g.trustee_id.clone()).collect();
        let trustees = trustees_where(&db, snapshot_id, &ids)?;
        Ok(IndexHits { trustees, grants })
    }

    async fn everything(&self, snapshot_id: &str) -> Result<IndexHits, StoreError> {
        let db = self.conn();
        let read = |query: &str| -> Result<Vec<String>, StoreError> {
            let mut stmt = db.prepare(query).map_err(sql("read a snapshot"))?;
            let rows = stmt
                .query_map(params![snapshot_id], |r| r.get::<_, String>(0))
                .map_err(sql("read a snapshot"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read a snapshot"))
        };
        let trustees =
            read("SELECT trustee FROM index_trustees WHERE snapshot_id = ?1 ORDER BY trustee_id")?
                .iter()
                .map(|t| from_json("index trustee", t))
                .collect::<Result<_, _>>()?;
        let grants =
            read("SELECT grant_json FROM index_grants WHERE snapshot_id = ?1 ORDER BY rowid")?
                .iter()
                .map(|g| from_json("index grant", g))
                .collect::<Result<_, _>>()?;
        Ok(IndexHits { trustees, grants })
    }
}

/// The company's journal rows, whatever sweep they belong to.
fn drop_journal(db: &Connection, company_id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM sweep_reads WHERE sweep_id IN (SELECT sweep_id FROM sweep_journal WHERE company_id = ?1)",
        params![company_id],
    )
    .map_err(sql("drop a sweep journal"))?;
    db.execute(
        "DELETE FROM sweep_journal WHERE company_id = ?1",
        params![company_id],
    )
    .map_err(sql("drop a sweep journal"))?;
    Ok(())
}

#[async_trait]
impl SweepJournal for SqliteRunStore {
    async fn unfinished_sweep(
        &self,
        company_id: &str,
    ) -> Result<Option<SweepProgress>, StoreError> {
        let db = self.conn();
        let found: Option<(String, String)> = db
            .query_row(
                "SELECT sweep_id, started_at FROM sweep_journal WHERE company_id = ?1",
                params![self.index_key(company_id)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .map_err(sql("read a sweep journal"))?;
        let Some((sweep_id, started_at)) = found else {
            return Ok(None);
        };
        let started_at = DateTime::parse_from_rfc3339(&started_at)
            .map_err(|e| StoreError::backend(format!("sweep journal start time: {e}")))?
            .with_timezone(&Utc);
        let mut stmt = db
            .prepare("SELECT mailbox, read_json FROM sweep_reads WHERE sweep_id = ?1")
            .map_err(sql("read a sweep journal"))?;
        let rows = stmt
            .query_map(params![sweep_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql("read a sweep journal"))?;
        let mut done = std::collections::BTreeMap::new();
        for row in rows {
            let (mailbox, json) = row.map_err(sql("read a sweep journal"))?;
            done.insert(mailbox, from_json::<SweptMailbox>("sweep read", &json)?);
        }
        Ok(Some(SweepProgress {
            sweep_id,
            started_at,
            done,
        }))
    }

    async fn begin_sweep(
        &self,
        company_id: &str,
        sweep_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut db = self.conn();
        let tx = db.transaction().map_err(sql("begin a sweep journal"))?;
        let company_id = self.index_key(company_id);
        drop_journal(&tx, &company_id)?;
        tx.execute(
            "INSERT INTO sweep_journal (company_id, sweep_id, started_at) VALUES (?1, ?2, ?3)",
            params![company_id, sweep_id, started_at.to_rfc3339()],
        )
        .map_err(sql("begin a sweep journal"))?;
        tx.commit().map_err(sql("begin a sweep journal"))
    }

    async fn save_sweep_reads(
        &self,
        _company_id: &str,
        sweep_id: &str,
        reads: &[(String, SweptMailbox)],
    ) -> Result<(), StoreError> {
        let mut db = self.conn();
        let tx = db.transaction().map_err(sql("journal sweep reads"))?;
        {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO sweep_reads (sweep_id, mailbox, read_json) VALUES (?1, ?2, ?3)")
                .map_err(sql("journal sweep reads"))?;
            for (mailbox, read) in reads {
                insert
                    .execute(params![sweep_id, mailbox, to_json(read)?])
                    .map_err(sql("journal sweep reads"))?;
            }
        }
        tx.commit().map_err(sql("journal sweep reads"))
    }

    async fn end_sweep(&self, company_id: &str) -> Result<(), StoreError> {
        drop_journal(&self.conn(), &self.index_key(company_id))
    }
}
