//! The hash chains that make an audit trail tamper-evident, and their verification.
//!
//! Each removal batch writes its records as one chain (`batch#00003`), verification writes
//! its own (`verification`), so concurrent batches never contend on one head. A record's
//! `hash` is the SHA-256 of its canonical JSON without `hash`, and it carries the hash of the
//! record before it in its chain. When the run verifies, a manifest of every chain's length and
//! head hash is anchored in the run. Checking the records against each other and against the
//! manifest names any record that was changed, removed or inserted.

use super::{AuditRecord, RunId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The chain of a removal batch's records.
pub fn batch_chain(batch_id: u32) -> String {
    format!("batch#{batch_id:05}")
}

/// The chain of the verification record.
pub const VERIFICATION_CHAIN: &str = "verification";

/// Where a chain ends: how many records it holds and the hash of its last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub length: u64,
    pub head: String,
}

/// Every chain of a run's audit trail, as it stood when the run verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditManifest {
    pub chains: BTreeMap<String, ChainHead>,
    /// The seal: a MAC of [`AuditManifest::sealed_message`] under the audit key, which no
    /// writer of the trail holds. Without it (or with one that does not verify) the manifest
    /// proves nothing: recomputing every hash and the manifest is easy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl AuditManifest {
    /// The heads of the chains these records form (unchained records are left out).
    pub fn of(records: &[AuditRecord]) -> AuditManifest {
        let mut chains: BTreeMap<String, ChainHead> = BTreeMap::new();
        for r in records {
            let (Some(chain), Some(seq), Some(hash)) = (&r.chain, r.seq, &r.hash) else {
                continue;
            };
            let entry = chains.entry(chain.clone()).or_insert(ChainHead {
                length: 0,
                head: String::new(),
            });
            if seq + 1 > entry.length {
                entry.length = seq + 1;
                entry.head = hash.clone();
            }
        }
        AuditManifest { chains, mac: None }
    }

    /// What the seal is taken over: the SHA-256 of the run id and every chain's length and
    /// head in one canonical form (chains sorted by name), so that moving a manifest to another
    /// run or changing any head breaks it. A digest, as KMS takes at most 4 KB and a large
    /// run's manifest has hundreds of chains.
    pub fn sealed_message(&self, run_id: &RunId) -> Vec<u8> {
        let chains = serde_json::to_string(&self.chains).expect("chain heads serialize");
        let canonical = format!("revoke365-audit-manifest/v1\n{run_id}\n{chains}");
        Sha256::digest(canonical.as_bytes()).to_vec()
    }
}

/// When audit trails began to be hash-chained (the release of 2026-12-01): a run created
/// since then has every record chained, so an unchained one, or a trail with no chain at all,
/// was rewritten.
pub const CHAINED_SINCE: &str = "2026-12-01T13:55:00Z";

/// Whether `run` was created by a release that chains its trail. Both signs are out of reach
/// of a writer of the trail: the run id is the key of the run and of every record (run ids
/// have been UUIDv7, whose first 48 bits are the creation time, since manifests were
/// sealed), and `created_at` is on the run, not in the trail. A marker the trail carried
/// could be deleted with the chains.
pub fn chained_run(run: &super::Run) -> bool {
    let v7 = uuid::Uuid::parse_str(&run.run_id.0).is_ok_and(|u| u.get_version_num() == 7);
    let since = chrono::DateTime::parse_from_rfc3339(CHAINED_SINCE).expect("a valid date");
    v7 || run.created_at >= since
}

/// The canonical form a record's hash is taken over: its JSON with keys sorted, without
/// `hash`, and without null members (an optional field added later hashes like an absent one,
/// so older records keep their hash).
pub fn canonical_json(record: &AuditRecord) -> String {
    fn strip_nulls(v: Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
            other => other,
        }
    }
    let mut value = serde_json::to_value(record).expect("an audit record serializes");
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    // serde_json's map is a BTreeMap (no `preserve_order`): keys come out sorted.
    strip_nulls(value).to_string()
}

/// The hash a record should carry.
pub fn record_hash(record: &AuditRecord) -> String {
    hex::encode(Sha256::digest(canonical_json(record).as_bytes()))
}

impl AuditRecord {
    /// Links this record after `prev` (the head of `chain`, `None` for its first record) and
    /// seals it with its hash.
    pub fn sealed(mut self, chain: &str, prev: Option<&ChainHead>) -> AuditRecord {
        self.chain = Some(chain.to_string());
        self.seq = Some(prev.map_or(0, |p| p.length));
        self.prev_hash = prev.map(|p| p.head.clone());
        self.hash = None;
        self.hash = Some(record_hash(&self));
        self
    }
}

/// What checking a run's audit trail found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// Every record is in its chain and every chain ends where the manifest says.
    Intact,
    /// The chains hold together but the run has not verified (it is running, interrupted, or
    /// failed before verification), so no manifest anchors them: records removed from the end
    /// of a chain would not show. Not proof: a restore waits for the run to verify.
    Unanchored,
    /// Records of a run created before audit trails were chained: nothing to check them
    /// against, and nothing proves them.
    Unchained,
    /// Some record was changed, removed or inserted (see the problems).
    Tampered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Modified,
    Removed,
    Inserted,
}

/// One record that is not as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProblem {
    pub kind: ProblemKind,
    /// The record found changed or inserted, or the one after a removed record.
    pub record_id: Option<String>,
    pub chain: Option<String>,
    pub seq: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheck {
    pub run_id: RunId,
    pub status: AuditStatus,
    /// The run's status when checked: an `unanchored` trail is legitimate only while the run
    /// has not verified (it is running, interrupted, or failed before verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<super::RunStatus>,
    pub records: usize,
    pub chains: usize,
    pub problems: Vec<AuditProblem>,
}

impl AuditCheck {
    /// Nothing was found changed, removed or inserted (the trail may still be unanchored or
    /// unchained: only `status` `intact` proves it).
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What checking a trail needs to know besides its records and manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailFacts {
    /// The run was created after chaining began ([`chained_run`]): every record is chained.
    pub chained: bool,
    /// The run verified (it completed, with or without errors, or was cancelled): its
    /// manifest was anchored then.
    pub verified: bool,
    /// Whether the manifest's seal verified under the audit key (`None`: no manifest, or a
    /// manifest without a seal).
    pub seal: Option<bool>,
}

impl TrailFacts {
    /// What a run's status and creation say about its trail (the seal still to be checked).
    pub fn of(run: &super::Run) -> TrailFacts {
        TrailFacts {
            chained: chained_run(run),
            verified: matches!(
                run.status,
                super::RunStatus::Completed
                    | super::RunStatus::CompletedWithErrors
                    | super::RunStatus::Cancelled
            ),
            seal: None,
        }
    }
}

fn problem(
    kind: ProblemKind,
    record_id: Option<&str>,
    chain: &str,
    seq: Option<u64>,
    message: String,
) -> AuditProblem {
    AuditProblem {
        kind,
        record_id: record_id.map(str::to_string),
        chain: Some(chain.to_string()),
        seq,
        message,
    }
}

/// Recomputes every chain of `run_id`'s records and compares their ends with the manifest
/// anchored in the run (if it has one), whose seal `facts` says whether it verified.
pub fn check_audit(
    run_id: &RunId,
    records: &[AuditRecord],
    manifest: Option<&AuditManifest>,
    facts: TrailFacts,
) -> AuditCheck {
    let mut problems = Vec::new();
    let mut chains: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    let mut unchained = Vec::new();
    for r in records {
        match (&r.chain, r.seq, &r.hash) {
            (Some(chain), Some(_), Some(_)) => chains.entry(chain).or_default().push(r),
            _ => unchained.push(r),
        }
    }
    for r in records.iter().filter(|r| &r.run_id != run_id) {
        problems.push(AuditProblem {
            kind: ProblemKind::Inserted,
            record_id: Some(r.record_id.clone()),
            chain: r.chain.clone(),
            seq: r.seq,
            message: format!(
                "record {} belongs to run {}, not {run_id}",
                r.record_id, r.run_id
            ),
        });
    }
    problems.extend(trail_problems(manifest, facts));
    let anchored_or_chained = manifest.is_some() || !chains.is_empty() || facts.chained;
    if anchored_or_chained {
        for r in &unchained {
            problems.push(AuditProblem {
                kind: ProblemKind::Inserted,
                record_id: Some(r.record_id.clone()),
                chain: r.chain.clone(),
                seq: r.seq,
                message: format!(
                    "record {} is in no chain, in a run whose records are chained",
                    r.record_id
                ),
            });
        }
    }
    for (chain, list) in &mut chains {
        list.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.record_id.cmp(&b.record_id)));
        problems.extend(check_chain(
            chain,
            list,
            manifest.and_then(|m| m.chains.get(*chain)),
        ));
    }
    if let Some(m) = manifest {
        for (chain, head) in m
            .chains
            .iter()
            .filter(|(c, _)| !chains.contains_key(c.as_str()))
        {
            problems.push(problem(
                ProblemKind::Removed,
                None,
                chain,
                Some(0),
                format!("chain {chain}: all {} record(s) are missing", head.length),
            ));
        }
    }
    let status = if !problems.is_empty() {
        AuditStatus::Tampered
    } else if manifest.is_some() {
        AuditStatus::Intact
    } else if chains.is_empty() && !records.is_empty() {
        AuditStatus::Unchained
    } else {
        AuditStatus::Unanchored
    };
    AuditCheck {
        run_id: run_id.clone(),
        status,
        run_status: None,
        records: records.len(),
        chains: chains.len(),
        problems,
    }
}

/// What is wrong with the trail as a whole: a verified run without its manifest, a manifest
/// without its seal, a seal that does not verify.
fn trail_problems(manifest: Option<&AuditManifest>, facts: TrailFacts) -> Vec<AuditProblem> {
    let whole = |kind: ProblemKind, message: &str| AuditProblem {
        kind,
        record_id: None,
        chain: None,
        seq: None,
        message: message.to_string(),
    };
    match (manifest, facts.seal) {
        // Before chaining no manifest was written: its absence is then no sign.
        (None, _) if facts.verified && facts.chained => vec![whole(
            ProblemKind::Removed,
            "the run verified but the manifest anchored then is missing",
        )],
        (None, _) => Vec::new(),
        (Some(m), _) if m.mac.is_none() => vec![whole(
            ProblemKind::Modified,
            "the manifest carries no seal (MAC): it was not written as the run verified",
        )],
        (Some(_), Some(true)) => Vec::new(),
        (Some(_), _) => vec![whole(
            ProblemKind::Modified,
            "the manifest's seal (MAC) does not verify under the audit key: the manifest or the chains it anchors were rewritten (or the key is not the one that sealed it)",
        )],
    }
}

/// Walks one chain (sorted by seq) and compares its end with its manifest entry.
fn check_chain(
    chain: &str,
    records: &[&AuditRecord],
    anchored: Option<&ChainHead>,
) -> Vec<AuditProblem> {
    let mut problems = Vec::new();
    let mut by_seq: BTreeMap<u64, Vec<&AuditRecord>> = BTreeMap::new();
    for r in records {
        by_seq.entry(r.seq.unwrap_or_default()).or_default().push(r);
    }
    // The hash of the record before the next one, as the chain stands.
    let mut prev: Option<&str> = None;
    let mut expected: u64 = 0;
    let mut last = "";
    let seqs: Vec<u64> = by_seq.keys().copied().collect();
    for (i, seq) in seqs.iter().copied().enumerate() {
        let candidates = &by_seq[&seq];
        // Two records claiming one place: the original is the one that links to the record
        // before it and that the next one links to.
        let next_prev = seqs
            .get(i + 1)
            .and_then(|n| by_seq[n].first())
            .and_then(|n| n.prev_hash.as_deref());
        let r = *candidates
            .iter()
            .find(|r| {
                r.prev_hash.as_deref() == prev
                    && record_hash(r) == r.hash.as_deref().unwrap_or_default()
                    && next_prev.is_none_or(|h| Some(h) == r.hash.as_deref())
            })
            .unwrap_or(&candidates[0]);
        for other in candidates.iter().filter(|o| o.record_id != r.record_id) {
            let id = other.record_id.as_str();
            problems.push(problem(
                ProblemKind::Inserted,
                Some(id),
                chain,
                Some(seq),
                format!("record {id} (chain {chain}, #{seq}) takes the place of another record"),
            ));
        }
        let id = r.record_id.as_str();
        let stored_hash = r.hash.as_deref().unwrap_or_default();
        if record_hash(r) != stored_hash {
            problems.push(problem(
                ProblemKind::Modified,
                Some(id),
                chain,
                Some(seq),
                format!("record {id} (chain {chain}, #{seq}) was changed after it was written"),
            ));
        } else if seq > expected {
            let after = if last.is_empty() {
                String::new()
            } else {
                format!(" after {last}")
            };
            problems.push(problem(
                ProblemKind::Removed,
                Some(id),
                chain,
                Some(expected),
                format!(
                    "chain {chain}: record(s) #{expected} to #{} are missing{after}, before {id}",
                    seq - 1
                ),
            ));
        } else if r.prev_hash.as_deref() != prev {
            problems.push(problem(
                ProblemKind::Inserted,
                Some(id),
                chain,
                Some(seq),
                format!(
                    "record {id} (chain {chain}, #{seq}) does not follow the record before it: it was inserted, or the one before it was replaced"
                ),
            ));
        }
        prev = Some(stored_hash);
        expected = seq + 1;
        last = id;
    }
    let Some(anchored) = anchored else {
        return problems;
    };
    if expected < anchored.length {
        problems.push(problem(
            ProblemKind::Removed,
            None,
            chain,
            Some(expected),
            format!(
                "chain {chain}: the last {} record(s) are missing (after {last})",
                anchored.length - expected
            ),
        ));
    } else if expected > anchored.length {
        for r in records
            .iter()
            .filter(|r| r.seq.unwrap_or_default() >= anchored.length)
        {
            problems.push(problem(
                ProblemKind::Inserted,
                Some(&r.record_id),
                chain,
                r.seq,
                format!(
                    "record {} (chain {chain}, #{}) was added after the run verified",
                    r.record_id,
                    r.seq.unwrap_or_default()
                ),
            ));
        }
    } else if prev != Some(anchored.head.as_str()) && problems.is_empty() {
        problems.push(problem(
            ProblemKind::Modified,
            Some(last),
            chain,
            Some(expected.saturating_sub(1)),
            format!("chain {chain}: its last record {last} is not the one the run verified"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuditPhase;

    fn record(id: &str) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "run_id": "r1", "record_id": id, "phase": "before",
            "recorded_at": "2026-01-02T03:04:05.123456789Z", "user_email": "a@b.example",
            "company_id": "acme", "requested_by": null, "reason": null,
        }))
        .unwrap()
    }

    #[test]
    fn the_hash_covers_every_field_but_itself_and_ignores_nulls() {
        let sealed = record("item#00001#before").sealed("batch#00000", None);
        assert_eq!(sealed.phase, AuditPhase::Before);
        assert_eq!(sealed.hash.as_deref(), Some(record_hash(&sealed).as_str()));
        // Null members are left out, so an optional field added later (null on an older
        // record read by newer code) does not change the older record's hash.
        let canonical = canonical_json(&sealed);
        assert!(
            !canonical.contains("null") && !canonical.contains("\"hash\""),
            "{canonical}"
        );
        assert!(canonical.contains("\"prev_hash\"") == sealed.prev_hash.is_some());
        let mut changed = sealed.clone();
        changed.reason = Some("other".into());
        assert_ne!(record_hash(&changed), record_hash(&sealed));
    }

    #[test]
    fn a_chain_written_in_order_checks_intact_against_its_manifest() {
        let first = record("item#00001#before").sealed("batch#00000", None);
        let head = AuditManifest::of(std::slice::from_ref(&first)).chains["batch#00000"].clone();
        let second = record("item#00001#outcome").sealed("batch#00000", Some(&head));
        let records = vec![second, first];
        let mut manifest = AuditManifest::of(&records);
        manifest.mac = Some("sealed".into());
        let check = check_audit(&RunId("r1".into()), &records, Some(&manifest), SEALED);
        assert_eq!((check.status, check.chains), (AuditStatus::Intact, 1));
        let running = TrailFacts {
            verified: false,
            seal: None,
            ..SEALED
        };
        let unanchored = check_audit(&RunId("r1".into()), &records, None, running);
        assert_eq!(unanchored.status, AuditStatus::Unanchored);
        let other_run = check_audit(&RunId("r2".into()), &records, Some(&manifest), SEALED);
        assert_eq!(other_run.status, AuditStatus::Tampered);
    }

    const SEALED: TrailFacts = TrailFacts {
        chained: true,
        verified: true,
        seal: Some(true),
    };

    /// A chained, verified run's trail proves itself only with its manifest and a seal that
    /// verifies; unchained records are `unchained` only in a run from before chaining.
    #[test]
    fn a_verified_run_needs_its_manifest_and_seal_and_a_chained_run_its_chains() {
        let first = record("item#00001#before").sealed("batch#00000", None);
        let records = vec![first.clone()];
        let mut manifest = AuditManifest::of(&records);
        manifest.mac = Some("sealed".into());
        let id = RunId("r1".into());
        let status = |records: &[AuditRecord], m: Option<&AuditManifest>, facts| {
            check_audit(&id, records, m, facts).status
        };
        assert_eq!(
            status(&records, Some(&manifest), SEALED),
            AuditStatus::Intact
        );
        let broken = TrailFacts {
            seal: Some(false),
            ..SEALED
        };
        assert_eq!(
            status(&records, Some(&manifest), broken),
            AuditStatus::Tampered
        );
        let unsealed = AuditManifest::of(&records);
        assert_eq!(
            status(&records, Some(&unsealed), SEALED),
            AuditStatus::Tampered
        );
        assert_eq!(status(&records, None, SEALED), AuditStatus::Tampered);
        let mut stripped = record("item#00001#before");
        stripped.chain = None;
        let running = TrailFacts {
            verified: false,
            seal: None,
            ..SEALED
        };
        let stripped = [stripped];
        assert_eq!(status(&stripped, None, running), AuditStatus::Tampered);
        let legacy = TrailFacts {
            chained: false,
            verified: true,
            seal: None,
        };
        assert_eq!(status(&stripped, None, legacy), AuditStatus::Unchained);
        assert_eq!(status(&[], None, running), AuditStatus::Unanchored);
    }
}
