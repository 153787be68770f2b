//! The tables of the permission index in the CLI's SQLite file (made with the run store's).

pub(super) const INDEX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS index_snapshots (
    snapshot_id TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL,
    taken_at    TEXT NOT NULL,
    summary     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS index_snapshots_by_company ON index_snapshots (company_id, taken_at);
CREATE TABLE IF NOT EXISTS index_trustees (
    snapshot_id TEXT NOT NULL,
    trustee_id  TEXT NOT NULL,
    trustee     TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, trustee_id)
);
CREATE TABLE IF NOT EXISTS index_keys (
    snapshot_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    trustee_id  TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key, trustee_id)
);
CREATE TABLE IF NOT EXISTS index_grants (
    snapshot_id TEXT NOT NULL,
    trustee_id  TEXT NOT NULL,
    mailbox     TEXT NOT NULL,
    grant_json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS index_grants_by_trustee ON index_grants (snapshot_id, trustee_id);
CREATE INDEX IF NOT EXISTS index_grants_by_mailbox ON index_grants (snapshot_id, mailbox);
CREATE TABLE IF NOT EXISTS sweep_journal (
    company_id TEXT PRIMARY KEY,
    sweep_id   TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_reads (
    sweep_id  TEXT NOT NULL,
    mailbox   TEXT NOT NULL,
    read_json TEXT NOT NULL,
    PRIMARY KEY (sweep_id, mailbox)
);
";
